"""Load plans: the exact reading recipe of one item (DESIGN §6).

:func:`load_plan` combines an item's collection profile, the scale/offset/nodata the item
publishes (in whichever of the raster extension's forms) and the per-scene decisions into the
asset, data type, nodata, scale, offset and resampling of every pipeline band, each with where
it came from. The scene manifest records the plan (:meth:`LoadPlan.record`) and ingestion reads
that record back (:mod:`tessera_assets.sources.plan_record`), so what was decided is what is read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pystac

from tessera_assets.sources.bands import S2_BANDS, Sensor
from tessera_assets.sources.decisions import (
    Decision,
    item_datetime,
    landsat_qa_bits,
    s1_orbit,
    s2_boa_offset,
    solar_day,
)
from tessera_assets.sources.profiles import (
    BandDefaults,
    CollectionProfile,
    ProfileError,
    profile_for,
)

SPECTRAL, MASK = "bilinear", "nearest"
"""Resampling of reflectance / backscatter, and of class or bit-field assets."""


@dataclass(frozen=True)
class BandPlan:
    """How to read one pipeline band from one item."""

    band: str
    asset: str
    href: str
    data_type: str
    nodata: float | int | None
    scale: float
    offset: float
    resampling: str
    source: str
    """Where data type / nodata / scale / offset came from."""

    def as_record(self) -> dict[str, Any]:
        nodata = self.nodata
        if isinstance(nodata, float) and math.isnan(nodata):
            nodata = "nan"  # JSON has no NaN
        return {"asset": self.asset, "data_type": self.data_type, "nodata": nodata,
                "scale": float(self.scale), "offset": float(self.offset),
                "resampling": self.resampling, "source": self.source}

    @classmethod
    def from_record(cls, band: str, record: Mapping[str, Any], href: str) -> BandPlan:
        """The band plan :meth:`as_record` wrote (the href is the item's, not recorded)."""
        nodata = record["nodata"]
        return cls(
            band=band, asset=str(record["asset"]), href=href,
            data_type=str(record["data_type"]),
            nodata=math.nan if nodata == "nan" else nodata,
            scale=float(record["scale"]), offset=float(record["offset"]),
            resampling=str(record["resampling"]), source=str(record["source"]),
        )


@dataclass(frozen=True)
class LoadPlan:
    """Everything the ingest step needs to read one item, and why (recorded per scene)."""

    item_id: str
    collection: str
    profile: CollectionProfile
    bands: tuple[BandPlan, ...]
    """Pipeline bands in pipeline order, then the QA band (S2 ``SCL``, Landsat ``qa_pixel``)."""
    when: datetime
    day: date
    boa_offset: Decision | None = None
    orbit: Decision | None = None
    qa_bits: Decision | None = None

    @property
    def sensor(self) -> Sensor:
        return self.profile.sensor

    def band(self, name: str) -> BandPlan:
        for b in self.bands:
            if b.band == name:
                return b
        raise KeyError(f"{self.item_id}: no band {name!r} in the load plan")

    def assets(self) -> list[str]:
        return [b.asset for b in self.bands]

    def resampling(self) -> dict[str, str]:
        return {b.asset: b.resampling for b in self.bands}

    def stac_cfg(self) -> dict[str, Any]:
        """odc-stac configuration giving every asset its data type and nodata, so items
        without ``raster:bands`` load as their true integer type instead of float NaN."""
        assets = {b.asset: {"data_type": b.data_type, "nodata": b.nodata} for b in self.bands}
        return {self.collection: {"assets": assets}}

    def record(self) -> str:
        """The band plan as compact JSON for the manifest (a string survives geoparquet)."""
        return json.dumps({b.band: b.as_record() for b in self.bands}, sort_keys=True,
                          separators=(",", ":"))


def _first(*values: Any) -> Any:
    for v in values:
        if v is not None:
            return v
    return None


def _band_meta(asset: pystac.Asset) -> tuple[dict[str, Any], str]:
    """scale/offset/nodata/data_type as the asset publishes them: raster v1 ``raster:bands``,
    raster v2 flat ``raster:*`` fields, or STAC 1.1 ``bands``. Values that a geoparquet round
    trip turned into ``None`` count as absent."""
    extra = asset.extra_fields
    rb = (extra.get("raster:bands") or [None])[0] or {}
    b11 = (extra.get("bands") or [None])[0] or {}
    meta = {
        "scale": _first(rb.get("scale"), extra.get("raster:scale"), b11.get("raster:scale")),
        "offset": _first(rb.get("offset"), extra.get("raster:offset"), b11.get("raster:offset")),
        "nodata": _first(rb.get("nodata"), extra.get("nodata"), b11.get("nodata")),
        "data_type": _first(rb.get("data_type"), extra.get("data_type"), b11.get("data_type")),
    }
    if rb:
        source = "raster:bands"
    elif any(k in extra for k in ("raster:scale", "raster:offset", "nodata", "data_type")):
        source = "asset raster fields"
    else:
        source = ""
    return {k: v for k, v in meta.items() if v is not None}, source


def _plan_band(item: pystac.Item, profile: CollectionProfile, band: str, key: str,
               boa: int) -> BandPlan:
    asset = item.assets[key]
    meta, source = _band_meta(asset)
    default = profile.defaults.get(band) or BandDefaults("float32", math.nan)
    scale = float(meta.get("scale", default.scale))
    offset = float(meta.get("offset", default.offset))
    nodata = meta.get("nodata", default.nodata)
    nodata = float(nodata) if isinstance(nodata, int | float) else nodata
    used = [k for k in ("scale", "offset", "nodata", "data_type") if k in meta]
    if used:
        why = f"{source} ({', '.join(used)})"
        missing = [k for k in ("scale", "offset", "nodata", "data_type") if k not in meta]
        if missing and default.note:
            why += f"; {', '.join(missing)} from profile: {default.note}"
    else:
        why = f"profile defaults: {default.note}" if default.note else "profile defaults"
    if profile.sensor == "s2" and band in S2_BANDS:
        declared = meta.get("offset")
        offset = -boa * scale  # the DN's real offset follows the BOA decision
        if declared is not None and not math.isclose(declared, offset, abs_tol=1e-9):
            why += f"; declared offset {declared:g} overridden by the BOA decision"
    return BandPlan(
        band=band, asset=key, href=asset.href,
        data_type=str(meta.get("data_type", default.data_type)), nodata=nodata,
        scale=scale, offset=offset,
        resampling=MASK if band in (profile.qa_band, *profile.nearest_bands) else SPECTRAL,
        source=why,
    )


def load_plan(item: pystac.Item, profile: CollectionProfile | None = None) -> LoadPlan:
    """The reading recipe of one item: asset per pipeline band with its data type, nodata,
    scale and offset (and where each came from), resampling, and the per-scene decisions
    (S2 BOA offset, S1 orbit direction, Landsat QA bits). Raises :class:`ProfileError` with
    the reason when the item cannot be used."""
    profile = profile or profile_for(item)
    missing = profile.missing_assets(item)
    if missing:
        raise ProfileError(f"{item.id}: missing assets {missing} ({profile.name})")
    boa = orbit = qa = None
    if profile.sensor == "s2":
        boa = s2_boa_offset(item, profile)
    elif profile.sensor == "s1":
        orbit = s1_orbit(item)
    elif profile.sensor == "landsat":
        qa = landsat_qa_bits(item, profile.qa_asset or "qa_pixel")
    offset_dn = int(boa.value) if boa else 0
    bands = tuple(_plan_band(item, profile, band, key, offset_dn)
                  for band, key in profile.band_keys().items())
    return LoadPlan(
        item_id=item.id, collection=item.collection_id or profile.collections[0],
        profile=profile, bands=bands, when=item_datetime(item), day=solar_day(item),
        boa_offset=boa, orbit=orbit, qa_bits=qa,
    )
