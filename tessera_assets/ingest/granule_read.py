"""Reading one granule's assets onto a tile's geobox: one open per asset, and no reprojection
where the file is already on the tile's grid (issue 14).

This does, per asset, what odc-stac's rasterio reader did for a one-item ``odc.stac.load``
(``odc.loader._rio``: the same region, overview choice, nodata handling and GDAL warp call),
so the pixels are the same bytes, without odc-stac's per-load machinery (item parsing,
xarray assembly, a GDAL environment per asset) and with two exact shortcuts:

- a file on the tile's grid (same CRS, same resolution, whole-pixel offset) is a plain
  window read (odc-stac also pastes it, after a costly region computation);
- a nearest-neighbour band on a grid whose pixels are whole multiples of the tile's and on
  its pixel lattice (Sentinel-2's 20 m SCL on the 10 m grid) is a window read repeated per
  pixel, which is what GDAL's nearest warp computes there.

Everything else (bilinear 20 m bands, other CRSs, sub-pixel offsets) goes through
:func:`rasterio.warp.reproject` exactly as odc-stac calls it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import rasterio
import rasterio.env
import rasterio.warp
from affine import Affine
from odc.geo.converters import rio_geobox
from odc.geo.geobox import GeoBox
from odc.geo.overlap import compute_reproject_roi
from odc.geo.roi import roi_is_empty, roi_shape, w_
from odc.geo.warp import resampling_s2rio
from rasterio.crs import CRS
from rasterio.io import DatasetReader

from tessera_assets.ingest.upsample import bilinear_x2, source_window
from tessera_assets.sources.load_plan import MASK, SPECTRAL, BandPlan

log = logging.getLogger(__name__)

_EPS = 1e-9
"""Largest pixel-offset error still counted as on the lattice (pure float noise)."""


def read_assets(
    hrefs: Sequence[str],
    bands: Sequence[BandPlan],
    geobox: GeoBox,
    dtype: Any,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """(band, y, x) of one granule: each asset opened once and read onto ``geobox`` (into
    ``out`` when given: a day's stack is filled in place, without copies)."""
    if out is None:
        out = np.empty((len(bands), *geobox.shape), dtype)
    for i, (href, band) in enumerate(zip(hrefs, bands, strict=True)):
        with _open(href) as src:
            if np.dtype(band.data_type) == out.dtype:
                read_band(src, href, band, geobox, out[i])
            else:
                out[i] = read_band(src, href, band, geobox)
    return out


def _open(href: str) -> DatasetReader:
    """``rasterio.open`` without its own GDAL environment inside ours (``read_env``): a nested
    ``rasterio.Env`` clears and re-sets every GDAL option of the outer one when it exits, which
    costs about as much as opening a local COG."""
    if not rasterio.env.hasenv():
        return rasterio.open(href, "r", sharing=False)
    return DatasetReader(href, sharing=False)


def read_band(
    src: DatasetReader, href: str, band: BandPlan, geobox: GeoBox, out: np.ndarray | None = None
) -> np.ndarray:
    """Band 1 of ``src`` (opened from ``href``) on ``geobox`` in the plan's data type, into
    ``out`` when given; the plan's nodata where the file has no data or does not reach."""
    dtype = np.dtype(band.data_type)
    fill = _dst_nodata(dtype, band.nodata, None)
    if out is None:
        out = np.empty(geobox.shape, dtype)
    out[...] = 0 if fill is None else fill
    src_nodata = src.nodatavals[0]
    dst_nodata = _dst_nodata(dtype, band.nodata, src_nodata)
    lattice = _on_lattice(src, geobox, dtype)
    # Fill and nodata agree (and the file's nodata is the plan's): where GDAL writes nodata
    # and where the tile is not covered look the same, as the shortcuts assume.
    same = (
        src_nodata is not None
        and fill is not None
        and _same(src_nodata, dst_nodata)
        and _same(float(fill), dst_nodata)
    )
    if lattice is not None:
        factor, row, col = lattice
        if factor == 1:
            _paste(src, out, row, col, src_nodata, dst_nodata)
            return out
        if same and band.resampling == MASK:
            _repeat(src, out, factor, row, col)
            return out
        if same and factor == 2 and band.resampling == SPECTRAL and dtype.kind in "ui":
            _bilinear_x2(src, href, band, geobox, out, row, col)
            return out
    _general(src, href, band, geobox, out)
    return out


# -- the exact shortcuts -------------------------------------------------------------------


def _on_lattice(src: DatasetReader, geobox: GeoBox, dtype: np.dtype) -> tuple[int, int, int] | None:
    """(factor, row, col) when ``src``'s pixels are ``factor`` x ``factor`` blocks of the tile's
    (same CRS, north-up) whose top-left corner sits at tile pixel (row, col); else None."""
    if src.count < 1 or np.dtype(src.dtypes[0]) != dtype:
        return None
    s, g = src.transform, geobox.transform
    if s.b or s.d or g.b or g.d or g.e >= 0 or s.e >= 0:
        return None
    fx, fy = s.a / g.a, s.e / g.e
    factor = round(fx)
    if factor < 1 or abs(fx - factor) > _EPS or abs(fy - factor) > _EPS:
        return None
    col, row = (s.c - g.c) / g.a, (s.f - g.f) / g.e
    if abs(col - round(col)) > _EPS or abs(row - round(row)) > _EPS:
        return None
    if src.crs is None or src.crs != _rio_crs(str(geobox.crs)):
        return None
    return factor, round(row), round(col)


@lru_cache(maxsize=64)
def _rio_crs(text: str) -> CRS:
    return CRS.from_user_input(text)


def _span(offset: int, size: int, factor: int, limit: int) -> tuple[int, int]:
    """Tile pixels [lo, hi) covered by ``size`` source pixels starting at tile pixel
    ``offset``, ``factor`` tile pixels each."""
    return max(0, offset), min(limit, offset + size * factor)


def _paste(
    src: DatasetReader,
    out: np.ndarray,
    row: int,
    col: int,
    src_nodata: float | None,
    dst_nodata: Any,
) -> None:
    h, w = out.shape
    r0, r1 = _span(row, src.height, 1, h)
    c0, c1 = _span(col, src.width, 1, w)
    if r0 >= r1 or c0 >= c1:
        return
    pix = src.read(1, window=((r0 - row, r1 - row), (c0 - col, c1 - col)))
    _remap_nodata(pix, src_nodata, dst_nodata)
    out[r0:r1, c0:c1] = pix


def _repeat(src: DatasetReader, out: np.ndarray, factor: int, row: int, col: int) -> None:
    """Nearest neighbour onto a grid ``factor`` times finer: each tile pixel centre lies
    strictly inside one source pixel, the one GDAL's nearest warp takes."""
    h, w = out.shape
    r0, r1 = _span(row, src.height, factor, h)
    c0, c1 = _span(col, src.width, factor, w)
    if r0 >= r1 or c0 >= c1:
        return
    rows = (np.arange(r0, r1) - row) // factor
    cols = (np.arange(c0, c1) - col) // factor
    sr, sc = int(rows[0]), int(cols[0])
    pix = src.read(1, window=((sr, int(rows[-1]) + 1), (sc, int(cols[-1]) + 1)))
    out[r0:r1, c0:c1] = pix[np.ix_(rows - sr, cols - sc)]


_agrees: dict[tuple[Any, ...], bool] = {}
"""Per file grid and tile: whether :func:`bilinear_x2` gave GDAL's bytes when first compared."""


def _bilinear_x2(
    src: DatasetReader,
    href: str,
    band: BandPlan,
    geobox: GeoBox,
    out: np.ndarray,
    row: int,
    col: int,
) -> None:
    """A bilinear band at exactly half the tile's resolution: GDAL's warp in numpy
    (:mod:`upsample`), compared with GDAL's own the first time a file grid meets a tile."""
    window = source_window(src.shape, out.shape, row, col)
    if window is None:
        return
    key = (src.transform, src.shape, src.crs.to_wkt(), *_tile_key(geobox), out.dtype.str)
    if _agrees.get(key) is False:
        _general(src, href, band, geobox, out)
        return
    region, pix = bilinear_x2(
        src.read(1, window=window), window, src.shape, src.nodatavals[0], out.shape, row, col
    )
    if key not in _agrees:
        gdal = out.copy()
        _general(src, href, band, geobox, gdal)
        numpy = out.copy()
        numpy[region] = pix
        _agrees[key] = bool(np.array_equal(gdal, numpy))
        if not _agrees[key]:
            log.warning(
                "bilinear x2 differs from GDAL's warp for %s on %s: GDAL's warp kept for this grid",
                href.split("?", 1)[0],
                geobox,
            )
            out[:] = gdal
            return
    out[region] = pix


# -- the general case: what odc-stac's reader does -------------------------------------------


def _general(
    src: DatasetReader, href: str, band: BandPlan, geobox: GeoBox, out: np.ndarray
) -> None:
    """``odc.loader._rio._rio_read`` for one band: overview choice, paste or GDAL warp."""
    ttol = 0.9 if band.resampling == "nearest" else 0.05
    if src.gcps[0]:  # georeferenced by control points: no grid to share
        rr = compute_reproject_roi(rio_geobox(src), geobox, ttol=ttol)
    else:
        rr = _reproject_roi(src.crs.to_wkt(), src.transform, src.shape, geobox, ttol)
    if rr.read_shrink > 1:
        level = _overview(rr.read_shrink, src.overviews(1))
        if level is not None:
            with rasterio.open(href, "r", sharing=False, overview_level=level) as ovr:
                _warp_or_paste(ovr, rr, band, geobox, out)
            return
    _warp_or_paste(src, rr, band, geobox, out)


_rois: dict[tuple[Any, ...], Any] = {}


def _reproject_roi(
    crs_wkt: str, transform: Affine, shape: tuple[int, int], geobox: GeoBox, ttol: float
) -> Any:
    """odc-geo's source and destination regions, once per file grid: the bands of a granule
    (and a granule's every acquisition) share a grid, and the computation costs milliseconds."""
    key = (crs_wkt, transform, shape, *_tile_key(geobox), ttol)
    if key not in _rois:
        if len(_rois) >= 1024:
            _rois.clear()
        _rois[key] = compute_reproject_roi(GeoBox(shape, transform, crs_wkt), geobox, ttol=ttol)
    return _rois[key]


def _tile_key(geobox: GeoBox) -> tuple[Any, ...]:
    """What identifies a geobox, cheap to hash (hashing a GeoBox costs a millisecond)."""
    return (tuple(geobox.shape), geobox.transform, str(geobox.crs))


def _warp_or_paste(
    src: DatasetReader, rr: Any, band: BandPlan, geobox: GeoBox, out: np.ndarray
) -> None:
    src_nodata = src.nodatavals[0]
    dst_nodata = _dst_nodata(out.dtype, band.nodata, src_nodata)
    if roi_is_empty(rr.roi_dst):
        return
    if roi_is_empty(rr.roi_src):  # no overlap: odc-stac writes nodata over the region
        if dst_nodata is not None:
            out[rr.roi_dst] = dst_nodata
        return
    pix = np.ndarray(roi_shape(rr.roi_dst), dtype=out.dtype)
    if rr.paste_ok and rr.read_shrink == 1:
        src.read(1, out=pix, window=w_[rr.roi_src])
        _remap_nodata(pix, src_nodata, dst_nodata)
    else:
        rasterio.warp.reproject(
            rasterio.band(src, 1),
            pix,
            src_nodata=src_nodata,
            dst_crs=str(geobox.crs),
            dst_transform=geobox[rr.roi_dst].transform,
            dst_nodata=dst_nodata,
            resampling=resampling_s2rio(band.resampling),
        )
    out[rr.roi_dst] = pix


def _overview(shrink: int, overviews: Sequence[int]) -> int | None:
    """odc-stac's overview choice: the coarsest level not coarser than ``shrink``."""
    if not overviews or shrink < overviews[0]:
        return None
    level = 0
    for i, factor in enumerate(overviews):
        if factor > shrink:
            break
        level = i
    return level


# -- nodata, as odc-stac resolves it ---------------------------------------------------------


def _dst_nodata(dtype: np.dtype, nodata: float | int | None, src_nodata: float | None) -> Any:
    """The plan's nodata; else NaN for floats; else the file's nodata (None without one)."""
    if nodata is not None:
        return dtype.type(nodata)
    if dtype.kind == "f":
        return np.nan
    return None if src_nodata is None else dtype.type(src_nodata)


def _same(a: float | None, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if math.isnan(a):
        return math.isnan(b)
    return a == b


def _remap_nodata(pix: np.ndarray, src_nodata: float | None, dst_nodata: Any) -> None:
    """Source nodata pixels become the destination's nodata (where the two differ)."""
    if dst_nodata is None or _same(src_nodata, dst_nodata):
        return
    if pix.dtype.kind == "f":
        if src_nodata is None or math.isnan(src_nodata):
            missing = np.isnan(pix)
        else:
            missing = np.isnan(pix) | (pix == src_nodata)
    elif src_nodata is None:
        return
    else:
        missing = pix == src_nodata
    np.copyto(pix, dst_nodata, where=missing)
