"""Raw cubes: load each acquisition day of a tile-year onto the tile's 10 m grid.

A cube is a lazy (dask) ``xr.Dataset`` with one slice per acquisition day: each slice is one
task that reads that day's granules and mosaics them (the first granule valid at a pixel wins),
so memory is bounded by one day of one tile and the store can write slice by slice.

Every granule is read through the load plan the scene manifest records for it
(:func:`tessera_assets.sources.plan_record.recorded_plan`), so each catalog's asset keys, data
types and nodata are honoured, exactly as the manifest says, by
:func:`tessera_assets.ingest.granule_read.read_assets` (each asset opened once, odc-stac's
pixels without its per-load cost). Reads are retried (GDAL retries
each HTTP request; a whole granule is retried after transient errors), and a scene that still
cannot be read is reported by item id and asset and then either fails the partition or is
skipped and recorded in the cube's ``tessera:skipped_scenes`` attribute (it becomes part of
the region's lineage record), per ``ReadConfig.on_unreadable``. Before the lazy cube is
returned, every asset's header is opened (``check_assets``), so scenes that cannot be opened
at all are known before anything is written.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import pystac
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords

from tessera_assets.catalog.signing import SigningError, signed
from tessera_assets.grid import Tile
from tessera_assets.ingest.cog_reading import (
    Attempts,
    ReadConfig,
    Unreadable,
    check_assets,
    read_env,
)
from tessera_assets.ingest.granule_read import read_assets
from tessera_assets.ingest.validity import (
    has_data,
    landsat_clear,
    landsat_has_data,
    s1_present,
    s2_clear,
)
from tessera_assets.sources.bands import (
    LANDSAT_BANDS,
    S1_ORBITS,
    S1_POLARISATIONS,
    S2_BANDS,
    Sensor,
)
from tessera_assets.sources.load_plan import BandPlan
from tessera_assets.sources.manifest import MOSAIC_RULES, SceneManifest
from tessera_assets.sources.plan_record import recorded_decision, recorded_plan

log = logging.getLogger(__name__)

S2_CUBE_BANDS: tuple[str, ...] = (*S2_BANDS, "SCL")
S1_CUBE_BANDS: tuple[str, ...] = tuple(f"{p}_{o}" for o in S1_ORBITS for p in S1_POLARISATIONS)
"""``vv_ascending, vh_ascending, vv_descending, vh_descending``: orbit-major, so orbit ``o``
is bands ``2o`` and ``2o + 1``."""
LANDSAT_CUBE_BANDS: tuple[str, ...] = (*LANDSAT_BANDS, "qa_pixel")


class IngestError(RuntimeError):
    """A scene could not be read; the message names the item and asset."""


class _UnreadableScene(Exception):
    def __init__(self, what: Unreadable) -> None:
        super().__init__(str(what))
        self.what = what


def first_valid(stack: np.ndarray, valid: np.ndarray, has_data: np.ndarray) -> np.ndarray:
    """Per pixel, take the first granule that is valid there; where none is, the first that has
    data at all; where none has data, zeros.

    ``stack`` is (granule, band, y, x); ``valid``/``has_data`` are (granule, y, x) booleans.
    """
    any_valid = valid.any(axis=0)
    pick = np.where(any_valid, valid.argmax(axis=0), has_data.argmax(axis=0))
    if stack.dtype.kind not in "ui":  # floats: NaN * 0 is no selection
        out = np.take_along_axis(stack, pick[None, None], axis=0)[0]
        return np.where(has_data.any(axis=0)[None], out, 0).astype(stack.dtype)
    # Integers: a one-hot sum (exact, a pass per granule) instead of a gather.
    pick = np.where(has_data.any(axis=0), pick, -1)
    out = stack[0] * (pick == 0).astype(stack.dtype)[None]
    for g in range(1, len(stack)):
        out += stack[g] * (pick == g).astype(stack.dtype)[None]
    return out


# -- reading one day's granules ------------------------------------------------------------


class DayReader:
    """Reads the granules of acquisition days onto one geobox, with retries and the
    unreadable-scene policy; skipped scenes are appended to ``skipped`` (a list the cube's
    attributes share, so skips found while the store computes the slices reach the lineage
    record, which the store writes after the data)."""

    def __init__(self, geobox: GeoBox, read: ReadConfig, skipped: list[dict[str, Any]]) -> None:
        self.geobox = geobox
        self.read = read
        self.skipped = skipped
        self._lock = threading.Lock()

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return ("DayReader", str(self.geobox), repr(self.read.redacted()))

    def stack(self, items: Sequence[pystac.Item], bands: Sequence[str], dtype: Any
              ) -> tuple[np.ndarray, list[pystac.Item]]:
        """(granule, band, y, x) of the readable granules, in the given (mosaic) order, and
        those granules."""
        stack = np.empty((len(items), len(bands), *self.geobox.shape), dtype)
        used: list[pystac.Item] = []
        for item in items:
            try:  # read in place: the next readable granule's slot
                self._load_item(item, bands, dtype, stack[len(used)])
                used.append(item)
            except _UnreadableScene as exc:
                if self.read.on_unreadable == "fail":
                    raise IngestError(f"cannot read {exc.what}") from exc
                self.skip(exc.what, stage="read")
        return stack[:len(used)], used

    def skip(self, what: Unreadable, stage: str) -> None:
        log.warning("skipping unreadable scene (%s): %s", stage, what)
        with self._lock:
            self.skipped.append({**what.as_record(), "stage": stage})

    def _load_item(self, item: pystac.Item, bands: Sequence[str], dtype: Any,
                   out: np.ndarray) -> np.ndarray:
        plan = recorded_plan(item)
        band_plans = [plan.band(b) for b in bands]
        keys = [b.asset for b in band_plans]
        ready = item
        attempt = Attempts()

        def once() -> np.ndarray:
            nonlocal ready  # signed in the attempt: a token request is bounded and retried too
            fresh = attempt.next() > 1
            (ready,) = signed([item], keys, timeout_s=self.read.timeout_s,
                              policy=self.read.retry_policy())
            hrefs = [ready.assets[k].href for k in keys]
            with read_env(self.read, hrefs, fresh=fresh):
                return read_assets(hrefs, band_plans, self.geobox, dtype, out)

        try:
            return self.read.retry_policy().call(once, what=f"reading {item.id}")
        except SigningError as err:
            raise _UnreadableScene(Unreadable(item.id, ",".join(keys), item.assets[keys[0]].href,
                                              attempt.reason(err))) from err
        except Exception as err:
            raise _UnreadableScene(self._culprit(ready, band_plans, err, attempt)) from err

    def _culprit(self, item: pystac.Item, band_plans: Sequence[BandPlan], err: Exception,
                 attempt: Attempts) -> Unreadable:
        """Read asset by asset (fresh, not from GDAL's cache) to say exactly which one is
        unreadable; the reason keeps GDAL's root error text and the number of attempts."""
        for band in band_plans:
            href = item.assets[band.asset].href
            try:
                with read_env(self.read, [href], fresh=True):
                    read_assets([href], [band], self.geobox, np.dtype(band.data_type))
            except Exception as inner:
                return Unreadable(item.id, band.asset, href, attempt.reason(inner))
        keys = [b.asset for b in band_plans]
        return Unreadable(item.id, ",".join(keys), item.assets[keys[0]].href,
                          attempt.reason(err))


# -- per-day loaders (each runs inside one dask task) -------------------------------------


def _s2_day(reader: DayReader, items: Sequence[pystac.Item]) -> np.ndarray:
    stack, _ = reader.stack(items, S2_CUBE_BANDS, np.uint16)
    if not len(stack):
        return np.zeros((len(S2_CUBE_BANDS), *reader.geobox.shape), np.uint16)
    scl, bands = stack[:, -1], stack[:, :-1]
    data = has_data(bands)  # once: s2_clear(scl, bands) is s2_clear(scl) & has_data(bands)
    return first_valid(stack, s2_clear(scl) & data, (scl != 0) | data)


def _landsat_day(reader: DayReader, items: Sequence[pystac.Item]) -> np.ndarray:
    stack, used = reader.stack(items, LANDSAT_CUBE_BANDS, np.uint16)
    if not len(stack):
        return np.zeros((len(LANDSAT_CUBE_BANDS), *reader.geobox.shape), np.uint16)
    qa = stack[:, -1]
    bits = [recorded_decision(item, "qa_bits") for item in used]  # each granule's own
    data = has_data(stack[:, :-1])
    clear = np.stack([landsat_clear(q, b) for q, b in zip(qa, bits, strict=True)]) & data
    present = np.stack([landsat_has_data(q, b) for q, b in zip(qa, bits, strict=True)]) & data
    return first_valid(stack, clear, present)


def _s1_day(reader: DayReader, items: Sequence[pystac.Item]) -> np.ndarray:
    npol = len(S1_POLARISATIONS)
    out = np.full((len(S1_ORBITS) * npol, *reader.geobox.shape), np.nan, np.float32)
    for o, orbit in enumerate(S1_ORBITS):
        granules = [i for i in items if recorded_decision(i, "orbit") == orbit]
        if not granules:
            continue
        stack, _ = reader.stack(granules, S1_POLARISATIONS, np.float32)
        if not len(stack):
            continue
        ok = s1_present(stack)
        stack = np.where(ok, stack, np.nan)
        has = ok.any(axis=1)
        mosaic = first_valid(stack, has, has)
        out[o * npol:(o + 1) * npol] = np.where(has.any(axis=0)[None], mosaic, np.nan)
    return out


# -- cube assembly -------------------------------------------------------------------------

_BANDS: dict[Sensor, tuple[str, ...]] = {
    "s2": S2_CUBE_BANDS, "s1": S1_POLARISATIONS, "landsat": LANDSAT_CUBE_BANDS,
}


def _checked_days(manifest: SceneManifest, sensor: Sensor, reader: DayReader
                  ) -> dict[int, list[pystac.Item]]:
    """The manifest's days, minus scenes whose assets cannot be opened (policy ``skip``);
    with policy ``fail`` an unopenable asset raises here, before anything is written."""
    days = manifest.days(sensor)
    if not reader.read.check_assets or not days:
        return days
    targets = [(item, plan_band.asset) for items in days.values() for item in items
               for plan_band in recorded_plan(item).bands
               if plan_band.band in _BANDS[sensor]]
    bad = check_assets(targets, reader.read)
    if not bad:
        return days
    if reader.read.on_unreadable == "fail":
        raise IngestError(
            f"{len(bad)} asset(s) of {manifest.tile_id} {manifest.year} cannot be read "
            f"(on_unreadable='fail'): " + "; ".join(str(b) for b in bad)
        )
    dropped = {b.item_id for b in bad}
    for b in bad:
        reader.skip(b, stage="check")
    kept = {d: [i for i in items if i.id not in dropped] for d, items in days.items()}
    return {d: items for d, items in kept.items() if items}


def _cube(
    manifest: SceneManifest,
    sensor: Sensor,
    tile: Tile,
    read: ReadConfig | None,
    loader: Callable[[DayReader, Sequence[pystac.Item]], np.ndarray],
    bands: tuple[str, ...],
    dtype: np.dtype,
    var: str,
) -> xr.Dataset:
    read = read or ReadConfig()
    geobox = tile.geobox
    skipped: list[dict[str, Any]] = []
    reader = DayReader(geobox, read, skipped)
    days = _checked_days(manifest, sensor, reader)
    doys = np.array(sorted(days), dtype=np.int16)
    shape = (len(bands), *geobox.shape)
    slices = [
        da.from_delayed(dask.delayed(loader, pure=True)(reader, days[int(d)]),
                        shape=shape, dtype=dtype)
        for d in doys
    ]
    data = (da.stack(slices) if slices
            else da.zeros((0, *shape), dtype=dtype, chunks=(1, *shape)))
    xy = xr_coords(geobox)
    return xr.Dataset(
        {var: (("doy", "band", "y", "x"), data)},
        coords={"doy": doys, "band": list(bands), **xy},
        attrs={
            "tessera:skipped_scenes": skipped,
            "tessera:on_unreadable": read.on_unreadable,
            "tessera:mosaic_rule": MOSAIC_RULES[sensor],
        },
    )


def s2_cube(manifest: SceneManifest, tile: Tile, *, read: ReadConfig | None = None
            ) -> xr.Dataset:
    """Sentinel-2 L2A DN (uint16, official band order) plus SCL, one slice per day."""
    return _cube(manifest, "s2", tile, read, _s2_day, S2_CUBE_BANDS, np.dtype(np.uint16),
                 "bands")


def s1_cube(manifest: SceneManifest, tile: Tile, *, read: ReadConfig | None = None
            ) -> xr.Dataset:
    """Sentinel-1 RTC gamma0 (linear float32, NaN = missing), bands :data:`S1_CUBE_BANDS`."""
    return _cube(manifest, "s1", tile, read, _s1_day, S1_CUBE_BANDS, np.dtype(np.float32),
                 "backscatter")


def landsat_cube(manifest: SceneManifest, tile: Tile, *, read: ReadConfig | None = None
                 ) -> xr.Dataset:
    """Landsat C2 L2 SR DN (uint16) plus QA_PIXEL, resampled to the 10 m tile grid."""
    return _cube(manifest, "landsat", tile, read, _landsat_day, LANDSAT_CUBE_BANDS,
                 np.dtype(np.uint16), "bands")
