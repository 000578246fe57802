"""Area answers as files: a zipped Zarr (int8 codes + scales, the store's own encoding) or a
GeoTIFF of dequantised float32 bands (NaN = no embedding)."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import rasterio
import xarray as xr
import zarr

from tessera_assets.products.embeddings import dequantise

FORMATS = {"zarr": "application/zip", "geotiff": "image/tiff"}


def to_zarr_zip(ds: xr.Dataset) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "region.zarr.zip"
        store = zarr.storage.ZipStore(path, mode="w")
        ds.drop_vars("spatial_ref").assign_attrs(crs=f"EPSG:{ds.odc.crs.epsg}").to_zarr(
            store, mode="w", consolidated=False
        )
        store.close()
        return path.read_bytes()


def to_geotiff(ds: xr.Dataset) -> bytes:
    data = dequantise(ds["embeddings"].values, ds["scales"].values)
    gbox = ds.odc.geobox
    buf = io.BytesIO()
    with rasterio.MemoryFile() as mem:
        with mem.open(
            driver="GTiff",
            width=gbox.width,
            height=gbox.height,
            count=data.shape[0],
            dtype="float32",
            crs=str(gbox.crs),
            transform=gbox.affine,
            nodata=np.nan,
            compress="deflate",
        ) as dst:
            dst.write(data)
        buf.write(mem.read())
    return buf.getvalue()


def encode(ds: xr.Dataset, fmt: str) -> bytes:
    return to_zarr_zip(ds) if fmt == "zarr" else to_geotiff(ds)
