"""Fill and absent data are never valid observations (issue 10.3).

Where no granule of a day has data, the day mosaic writes zeros: QA_PIXEL 0 for Landsat (which
has none of the cloud/fill bits set, so it used to pass the clear mask), SCL 0 and DN 0 for
Sentinel-2, NaN backscatter (code 0) for Sentinel-1. The masks must call all of them invalid.
"""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from tessera_assets.catalog.geoparquet import GeoparquetCatalog
from tessera_assets.ingest.cubes import first_valid, landsat_cube
from tessera_assets.ingest.harmonise import s1_code
from tessera_assets.ingest.prepared_cubes import landsat_masked, s1_calibrated, s2_masked
from tessera_assets.ingest.validity import landsat_has_data, landsat_valid, s2_valid
from tessera_assets.sources.manifest import build_manifest, search_tile
from tessera_assets_tests.stacapi.archive import LOCATIONS, build_archive

pytestmark = [
    pytest.mark.filterwarnings("ignore:Could not parse bucket:UserWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]

CLEAR_LAND = 21824  # QA_PIXEL of a clear land pixel (bit 6 "clear" set)


def test_qa_pixel_zero_is_not_clear() -> None:
    qa = np.array([0, 1, CLEAR_LAND], np.uint16)  # mosaic "no granule", fill bit, clear
    assert landsat_valid(qa).tolist() == [0, 0, 1]
    assert landsat_has_data(qa).tolist() == [False, False, True]


def test_band_data_is_required_for_a_valid_pixel() -> None:
    scl = np.array([[4, 4, 0]], np.uint8)  # vegetation, vegetation, no data
    bands = np.zeros((10, 1, 3), np.uint16)
    bands[:, 0, 0] = 1200  # only the first pixel has reflectance
    assert s2_valid(scl, bands).tolist() == [[1, 0, 0]]
    qa = np.full((1, 3), CLEAR_LAND, np.uint16)
    sr = np.zeros((6, 1, 3), np.uint16)
    sr[:, 0, 1] = 9000
    assert landsat_valid(qa, bands=sr).tolist() == [[0, 1, 0]]


def test_a_day_without_data_is_invalid_in_every_masked_cube() -> None:
    """Masked cubes of a two-day tile-year: day 2 is what the mosaic writes where no granule
    had data (zeros / NaN), and also a pixel whose SCL survived but whose bands did not."""
    shape = (2, 11, 2, 2)
    s2_raw = np.zeros(shape, np.uint16)
    s2_raw[0, :10] = 1500
    s2_raw[0, 10] = 4  # day 1 clear everywhere
    s2_raw[1, 10, 0, 0] = 4  # day 2: SCL clear at one pixel, no band data anywhere
    coords = {"doy": [10, 20], "band": list(range(11))}
    cube = xr.Dataset(
        {"bands": (("doy", "band", "y", "x"), da.from_array(s2_raw, chunks=1))}, coords=coords
    )
    manifest = build_manifest(LOCATIONS[0].tile, 2024, {})
    masked = s2_masked(cube, manifest).compute()
    assert masked["valid"].values[0].all() and not masked["valid"].values[1].any()

    backscatter = np.full((2, 4, 2, 2), np.nan, np.float32)
    backscatter[0] = 0.05
    backscatter[1, 0, 0, 0] = -32768.0  # a catalog's nodata value
    s1 = s1_calibrated(
        xr.Dataset({"backscatter": (("doy", "band", "y", "x"), da.from_array(backscatter))})
    ).compute()
    assert (s1["codes"].values[0] > 0).all() and not s1["codes"].values[1].any()
    assert np.array_equal(s1["codes"].values[0], s1_code(backscatter[0]))


def test_landsat_mosaic_without_granule_data_is_invalid() -> None:
    """Two granules, three pixels: clear, fill in one and clear in the other, no data in
    either. The mosaic keeps the clear values and writes 0 where neither has data, and 0 is
    not clear."""
    qa = np.array([[[CLEAR_LAND, 1, 0]], [[1, CLEAR_LAND, 0]]], np.uint16)
    sr = np.where(qa[:, None] == CLEAR_LAND, 9000, 0).astype(np.uint16).repeat(6, axis=1)
    stack = np.concatenate([sr, qa[:, None]], axis=1)
    clear = np.stack([landsat_valid(q, bands=s).astype(bool) for q, s in zip(qa, sr, strict=True)])
    mosaic = first_valid(stack, clear, landsat_has_data(qa))
    assert mosaic[-1].tolist() == [[CLEAR_LAND, CLEAR_LAND, 0]]
    assert landsat_valid(mosaic[-1], bands=mosaic[:-1]).tolist() == [[1, 1, 0]]


def test_landsat_fill_of_a_real_scene_is_invalid(tmp_path: Path) -> None:
    """A real Earth Search Landsat C2 L2 item over a tile that its (cropped) COG only partly
    covers: about a fifth of the tile is outside the file and the mosaic writes QA_PIXEL 0
    there. Before the fix those pixels counted as clear with reflectance 0."""
    archive = build_archive(tmp_path, tmp_path.as_uri(), locations=["colorado"])
    tile = next(loc for loc in LOCATIONS if loc.name == "colorado").tile
    catalog = GeoparquetCatalog(archive.parquet["earth-search"])
    manifest = build_manifest(
        tile, 2023, search_tile(catalog, tile, 2023, {"landsat": "landsat-c2-l2"})
    )
    assert manifest.counts()["landsat"] == 1
    cube = landsat_cube(manifest, tile)
    qa = cube["bands"].values[:, -1]
    masked = landsat_masked(cube, manifest).compute()
    valid = masked["valid"].values.astype(bool)
    no_reflectance = (masked["reflectance"].values == 0).all(axis=1)
    assert 0.1 < (qa == 0).mean() < 0.5  # the part of the tile without data
    assert valid.mean() > 0.3  # the rest is mostly clear
    assert not (valid & no_reflectance).any()
    assert not valid[qa == 0].any()
