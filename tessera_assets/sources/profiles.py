"""Collection profiles: how each catalog's items map onto the pipeline's bands (DESIGN §6).

Every catalog publishes the same satellites differently: asset keys (``red`` / ``B04`` /
``B04_10m``, ``vv`` / ``0_VV``), where scale, offset and nodata live (``raster:bands``, flat
``raster:scale``, or nowhere), whether Sentinel-2 DN still carry the baseline-04.00 BOA offset,
and whether a Sentinel-1 item states its orbit direction at all. A profile captures one
catalog-collection's conventions; :mod:`tessera_assets.sources.load_plan` combines it with the
item's own metadata and the per-scene decisions into the reading recipe the ingest step follows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import pystac

from tessera_assets.sources.bands import (
    LANDSAT_BANDS,
    LANDSAT_C2_OFFSET,
    LANDSAT_C2_SCALE,
    S1_POLARISATIONS,
    S2_BANDS,
    S2_COMMON_NAMES,
    S2_NATIVE_RESOLUTION,
    Sensor,
)


class ProfileError(ValueError):
    """An item or collection the profiles cannot interpret."""


@dataclass(frozen=True)
class BandDefaults:
    """What to assume for a band when the item says nothing (and why)."""

    data_type: str
    nodata: float | int | None
    scale: float = 1.0
    offset: float = 0.0
    note: str = ""


@dataclass(frozen=True)
class CollectionProfile:
    """Asset keys and quirks of one catalog's collection."""

    name: str
    sensor: Sensor
    band_assets: Mapping[str, str]
    """Pipeline band name → asset key, in pipeline band order."""
    qa_asset: str | None = None
    qa_band: str | None = None
    """The pipeline's name for the QA asset (``SCL``, ``qa_pixel``)."""
    nearest_bands: frozenset[str] = field(default_factory=frozenset)
    catalog: str = ""
    collections: tuple[str, ...] = ()
    signature: str | None = None
    """An asset key that tells this profile apart from others serving the same collection id
    (``sentinel-2-l2a`` is Earth Search's, Planetary Computer's and CDSE's)."""
    defaults: Mapping[str, BandDefaults] = field(default_factory=dict)
    boa_rule: Literal["dn-carry-offset", "removed-in-cog", "none"] = "none"

    @property
    def bands(self) -> tuple[str, ...]:
        return tuple(self.band_assets)

    def band_keys(self) -> dict[str, str]:
        """Pipeline band → asset key in load-plan order: the bands, then the QA band."""
        keys = dict(self.band_assets)
        if self.qa_asset and self.qa_band:
            keys[self.qa_band] = self.qa_asset
        return keys

    def assets(self) -> list[str]:
        return list(self.band_keys().values())

    def missing_assets(self, item: pystac.Item) -> list[str]:
        return [k for k in self.assets() if k not in item.assets]

    def matches(self, item: pystac.Item) -> bool:
        coll = item.collection_id or ""
        if not any(coll == c or (c.endswith("*") and coll.startswith(c[:-1]))
                   for c in self.collections):
            return False
        return self.signature is None or self.signature in item.assets


# --------------------------------------------------------------------------- the profiles

_S2_REFL = BandDefaults("uint16", 0, 1e-4, 0.0, "L2A DN: reflectance x 10000 (+1000 from PB 04.00)")
_S2_SCL = BandDefaults("uint8", 0, note="Sen2Cor scene classification")
_S2_DEFAULTS = {**{b: _S2_REFL for b in S2_BANDS}, "SCL": _S2_SCL}
_LS_REFL = BandDefaults("uint16", 0, LANDSAT_C2_SCALE, LANDSAT_C2_OFFSET,
                        "Landsat C2 L2 SR defaults (item has no raster:bands)")
_LS_QA = BandDefaults("uint16", 1, note="QA_PIXEL bit field; 1 = fill")
_LS_DEFAULTS = {**{b: _LS_REFL for b in LANDSAT_BANDS}, "qa_pixel": _LS_QA}


def _s2(name: str, catalog: str, collections: tuple[str, ...], keys: Mapping[str, str],
        qa: str, signature: str | None, rule: Literal["dn-carry-offset", "removed-in-cog"]
        ) -> CollectionProfile:
    return CollectionProfile(
        name=name, sensor="s2", band_assets=dict(keys), qa_asset=qa, qa_band="SCL",
        catalog=catalog, collections=collections, signature=signature,
        defaults=_S2_DEFAULTS, boa_rule=rule,
    )


EARTH_SEARCH_S2 = _s2(
    "earth-search/sentinel-2-l2a", "earth-search", ("sentinel-2-l2a",),
    {b: S2_COMMON_NAMES[b] for b in S2_BANDS}, "scl", "red", "removed-in-cog",
)
EARTH_SEARCH_S2_C1 = _s2(
    "earth-search/sentinel-2-c1-l2a", "earth-search", ("sentinel-2-c1-l2a",),
    {b: S2_COMMON_NAMES[b] for b in S2_BANDS}, "scl", None, "dn-carry-offset",
)
PC_S2 = _s2(
    "planetary-computer/sentinel-2-l2a", "planetary-computer", ("sentinel-2-l2a",),
    {b: b for b in S2_BANDS}, "SCL", "B04", "dn-carry-offset",
)
CDSE_S2 = _s2(
    "cdse/sentinel-2-l2a", "cdse", ("sentinel-2-l2a",),
    {b: f"{b}_{S2_NATIVE_RESOLUTION[b]}m" for b in S2_BANDS}, "SCL_20m", "B04_10m",
    "dn-carry-offset",
)
PC_S1 = CollectionProfile(
    name="planetary-computer/sentinel-1-rtc", sensor="s1",
    band_assets={"vv": "vv", "vh": "vh"}, catalog="planetary-computer",
    collections=("sentinel-1-rtc",),
    defaults={p: BandDefaults("float32", -32768, note="gamma0 RTC, linear power") for p in
              S1_POLARISATIONS},
)
OPERA_S1 = CollectionProfile(
    name="asf/opera-rtc-s1", sensor="s1", band_assets={"vv": "0_VV", "vh": "0_VH"},
    catalog="asf", collections=("OPERA_L2_RTC-S1*", "C2777436413-ASF"),
    defaults={p: BandDefaults("float32", math.nan,
                              note="OPERA RTC-S1 GeoTIFF: float32 gamma0, NaN nodata "
                                   "(CMR items carry no raster metadata)")
              for p in S1_POLARISATIONS},
)


def _landsat(name: str, catalog: str, collection: str) -> CollectionProfile:
    return CollectionProfile(
        name=name, sensor="landsat", band_assets={b: b for b in LANDSAT_BANDS},
        qa_asset="qa_pixel", qa_band="qa_pixel", catalog=catalog, collections=(collection,),
        defaults=_LS_DEFAULTS,
    )


LANDSAT_C2 = _landsat("landsat-c2-l2", "earth-search|planetary-computer", "landsat-c2-l2")
USGS_LANDSAT = _landsat("usgs/landsat-c2l2-sr", "usgs", "landsat-c2l2-sr")

ALL_PROFILES: tuple[CollectionProfile, ...] = (
    EARTH_SEARCH_S2, EARTH_SEARCH_S2_C1, PC_S2, CDSE_S2, PC_S1, OPERA_S1, LANDSAT_C2,
    USGS_LANDSAT,
)
PROFILES: dict[str, CollectionProfile] = {
    "sentinel-2-c1-l2a": EARTH_SEARCH_S2_C1,
    "sentinel-2-l2a": PC_S2,
    "sentinel-1-rtc": PC_S1,
    "landsat-c2-l2": LANDSAT_C2,
    "landsat-c2l2-sr": USGS_LANDSAT,
    "OPERA_L2_RTC-S1_V1_1": OPERA_S1,
}
"""Profile by bare collection id (when no item is at hand); ``sentinel-2-l2a`` means
Planetary Computer's here, items pick theirs by asset keys."""
PROFILES_BY_NAME: dict[str, CollectionProfile] = {p.name: p for p in ALL_PROFILES}


def profile_for(item_or_collection: pystac.Item | str) -> CollectionProfile:
    """The profile of an item (by its collection and asset keys) or a collection id."""
    if isinstance(item_or_collection, str):
        key = item_or_collection
        if key in PROFILES_BY_NAME:
            return PROFILES_BY_NAME[key]
        if key in PROFILES:
            return PROFILES[key]
        if key.startswith("OPERA_L2_RTC-S1"):
            return OPERA_S1
        raise ProfileError(f"no collection profile for {key!r}; known: {sorted(PROFILES)}")
    item = item_or_collection
    found = [p for p in ALL_PROFILES if p.matches(item)]
    specific = [p for p in found if p.signature is not None]
    if specific:
        return specific[0]
    if found:
        return found[0]
    raise ProfileError(
        f"{item.id}: no collection profile for collection {item.collection_id!r} with assets "
        f"{sorted(item.assets)[:12]}; known collections: {sorted(PROFILES)}"
    )
