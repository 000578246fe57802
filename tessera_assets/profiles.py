"""Collection profiles: how each catalog's items map onto the pipeline's bands (DESIGN §6).

A profile names the asset key of every pipeline band, the resampling per band, and the
per-item decisions that the model family depends on (the Sentinel-2 BOA offset, the Sentinel-1
orbit direction). Decisions are made from item metadata and returned with a reason, so the scene
manifest can record *why* each scene was treated as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

import pystac

Sensor = Literal["s2", "s1", "landsat"]

S2_BANDS: tuple[str, ...] = ("B04", "B02", "B03", "B08", "B8A", "B05", "B06", "B07", "B11", "B12")
"""Sentinel-2 band order of every TESSERA family (not wavelength order)."""
S2_COMMON_NAMES = {
    "B04": "red", "B02": "blue", "B03": "green", "B08": "nir", "B8A": "nir08",
    "B05": "rededge1", "B06": "rededge2", "B07": "rededge3", "B11": "swir16", "B12": "swir22",
}
S1_POLARISATIONS: tuple[str, ...] = ("vv", "vh")
S1_ORBITS: tuple[str, ...] = ("ascending", "descending")
LANDSAT_BANDS: tuple[str, ...] = ("coastal", "blue", "green", "red", "nir08", "swir16", "swir22")

BOA_OFFSET = 1000
"""DN offset added by the Sentinel-2 processing baseline 04.00 (from 2022-01-25)."""
BASELINE_WITH_OFFSET = (4, 0)


@dataclass(frozen=True)
class CollectionProfile:
    """Asset keys and quirks of one catalog collection."""

    name: str
    sensor: Sensor
    band_assets: Mapping[str, str]
    """Pipeline band name → asset key, in pipeline band order."""
    qa_asset: str | None = None
    nearest_bands: frozenset[str] = field(default_factory=frozenset)

    @property
    def bands(self) -> tuple[str, ...]:
        return tuple(self.band_assets)

    def resampling(self) -> dict[str, str]:
        """odc-stac resampling per asset: nearest for classes/bit masks, bilinear otherwise."""
        out = {self.band_assets[b]: "nearest" if b in self.nearest_bands else "bilinear"
               for b in self.band_assets}
        if self.qa_asset:
            out[self.qa_asset] = "nearest"
        return out

    def assets(self) -> list[str]:
        keys = list(self.band_assets.values())
        return [*keys, self.qa_asset] if self.qa_asset else keys

    def missing_assets(self, item: pystac.Item) -> list[str]:
        return [k for k in self.assets() if k not in item.assets]


_EARTH_SEARCH_S2 = CollectionProfile(
    name="earth-search/sentinel-2",
    sensor="s2",
    band_assets={b: S2_COMMON_NAMES[b] for b in S2_BANDS},
    qa_asset="scl",
)
_PC_S2 = CollectionProfile(
    name="planetary-computer/sentinel-2-l2a",
    sensor="s2",
    band_assets={b: b for b in S2_BANDS},
    qa_asset="SCL",
)
_PC_S1 = CollectionProfile(
    name="planetary-computer/sentinel-1-rtc",
    sensor="s1",
    band_assets={"vv": "vv", "vh": "vh"},
)
_PC_LANDSAT = CollectionProfile(
    name="landsat-c2-l2",
    sensor="landsat",
    band_assets={b: b for b in LANDSAT_BANDS},
    qa_asset="qa_pixel",
)

PROFILES: dict[str, CollectionProfile] = {
    "sentinel-2-c1-l2a": _EARTH_SEARCH_S2,
    "sentinel-2-l2a": _PC_S2,
    "sentinel-1-rtc": _PC_S1,
    "landsat-c2-l2": _PC_LANDSAT,
}


class ProfileError(ValueError):
    """An item or collection the profiles cannot interpret."""


def profile_for(item_or_collection: pystac.Item | str) -> CollectionProfile:
    """The profile of an item (by its collection and asset keys) or a collection id."""
    if isinstance(item_or_collection, str):
        try:
            return PROFILES[item_or_collection]
        except KeyError:
            raise ProfileError(
                f"no collection profile for {item_or_collection!r}; known: {sorted(PROFILES)}"
            ) from None
    item = item_or_collection
    coll = item.collection_id or ""
    if coll == "sentinel-2-l2a" and "red" in item.assets:
        return _EARTH_SEARCH_S2  # Earth Search names its assets by common name
    return profile_for(coll)


@dataclass(frozen=True)
class Decision:
    value: Any
    reason: str


def _baseline(item: pystac.Item) -> tuple[int, int] | None:
    props = item.properties
    text = props.get("s2:processing_baseline") or props.get("processing:version")
    if text is None:
        return None
    try:
        major, minor = str(text).split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        raise ProfileError(f"{item.id}: unreadable processing baseline {text!r}") from None


def s2_boa_offset(item: pystac.Item) -> Decision:
    """How many DN to subtract to harmonise a Sentinel-2 item to the pre-04.00 baseline.

    The models were trained on DN without the offset (tessera-model.md §2.2). Products of
    baseline ≥ 04.00 carry +1000 in their DN unless the catalog removed it; Earth Search's
    ``earthsearch:boa_offset_applied`` flag is unreliable, so the baseline decides and the
    flag is only reported.
    """
    baseline = _baseline(item)
    flag = item.properties.get("earthsearch:boa_offset_applied")
    if baseline is None:
        cutoff = datetime(2022, 1, 25, tzinfo=item.datetime.tzinfo if item.datetime else None)
        if item.datetime and item.datetime >= cutoff:
            return Decision(BOA_OFFSET, "no baseline in item; acquired after 2022-01-25")
        return Decision(0, "no baseline in item; acquired before 2022-01-25")
    text = f"baseline {baseline[0]:02d}.{baseline[1]:02d}"
    if baseline < BASELINE_WITH_OFFSET:
        return Decision(0, f"{text} < 04.00 carries no offset")
    if item.collection_id == "sentinel-2-l2a" and flag is True:
        # Earth Search (non-C1) rewrote the COGs with the offset removed.
        return Decision(0, f"{text}; earthsearch:boa_offset_applied=true, offset removed in COG")
    suffix = f" (earthsearch:boa_offset_applied={flag})" if flag is not None else ""
    return Decision(BOA_OFFSET, f"{text} >= 04.00: DN carry +{BOA_OFFSET}{suffix}")


def s1_orbit(item: pystac.Item) -> Decision:
    state = item.properties.get("sat:orbit_state")
    if state in S1_ORBITS:
        return Decision(state, "sat:orbit_state")
    raise ProfileError(f"{item.id}: Sentinel-1 item has no usable sat:orbit_state ({state!r})")


def solar_day(item: pystac.Item) -> date:
    """Local solar date of an acquisition: UTC time shifted by the footprint's longitude.

    Grouping by solar day keeps the granules of one overpass together even when their UTC
    date differs (near the antimeridian)."""
    when = item_datetime(item)
    lon = _centroid_lon(item)
    return (when + timedelta(hours=lon / 15.0)).date()


def item_datetime(item: pystac.Item) -> datetime:
    if item.datetime is not None:
        return item.datetime
    start = item.properties.get("start_datetime")
    if start is None:
        raise ProfileError(f"{item.id}: item has neither datetime nor start_datetime")
    return datetime.fromisoformat(str(start).replace(" ", "T").replace("Z", "+00:00"))


def _centroid_lon(item: pystac.Item) -> float:
    if item.bbox:
        return (item.bbox[0] + item.bbox[2]) / 2.0
    return 0.0
