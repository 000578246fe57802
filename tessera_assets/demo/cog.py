"""Cloud-Optimized GeoTIFF writing (GDAL's COG driver through rasterio).

Files are tiled, ZSTD-compressed (fast to write; any GDAL >= 2.3 reads it) and always carry at least one overview level, like the
archives they imitate, so readers take the same code paths (windowed and overview reads).
No timestamps are written, so the same array always gives the same bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.io import MemoryFile

from tessera_assets.demo.grids import Grid

BLOCKSIZE = 128
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"


@dataclass(frozen=True)
class FileInfo:
    """What STAC's file extension records about a written file."""

    size: int
    multihash: str  # sha2-256 multihash, as Earth Search's ``file:checksum``
    md5: str  # plain hex MD5, as Planetary Computer's ``file:checksum``


@cache
def _crs(epsg: int) -> CRS:
    return CRS.from_epsg(epsg)


def _overview_count(width: int, height: int) -> int:
    """GDAL's default (halve until one block) but never zero: tiny demo rasters get one."""
    count, size = 0, max(width, height)
    while size > BLOCKSIZE:
        size = (size + 1) // 2
        count += 1
    return max(1, count)


def write_cog(
    path: Path,
    array: np.ndarray,
    grid: Grid,
    epsg: int,
    *,
    nodata: float | int | None,
    categorical: bool = False,
    colormap: dict[int, tuple[int, int, int, int]] | None = None,
    tags: dict[str, str] | None = None,
) -> FileInfo:
    """Write a single-band COG and describe the file for the STAC ``file`` extension.

    ``categorical`` rasters (class maps, bit fields) get nearest-neighbour overviews, others
    are averaged.
    """
    if array.shape != grid.shape:
        raise ValueError(f"array {array.shape} does not match grid {grid.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    levels = [2**k for k in range(1, _overview_count(grid.width, grid.height) + 1)]
    profile = {
        "driver": "MEM",
        "width": grid.width,
        "height": grid.height,
        "count": 1,
        "dtype": array.dtype.name,
        "crs": _crs(epsg),
        "transform": grid.transform,
        "nodata": nodata,
    }
    # Overviews are built in memory and copied as they are: about twice as fast as letting
    # the COG driver compute them through a temporary file.
    with MemoryFile() as memfile, memfile.open(**profile) as mem:
        mem.write(array, 1)
        if colormap:
            mem.write_colormap(1, colormap)
        if tags:
            mem.update_tags(**tags)
        mem.build_overviews(levels, Resampling.nearest if categorical else Resampling.average)
        rasterio.shutil.copy(
            mem,
            str(path),
            driver="COG",
            blocksize=BLOCKSIZE,
            compress="ZSTD",
            level=1,
            predictor=3 if array.dtype.kind == "f" else 2,
            overviews="FORCE_USE_EXISTING",
            num_threads=1,
        )
    data = path.read_bytes()
    return FileInfo(
        len(data), "1220" + hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()
    )
