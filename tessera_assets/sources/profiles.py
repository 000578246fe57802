"""Collection profiles: how each catalog's items map onto the pipeline's bands (DESIGN §6).

Every catalog publishes the same satellites differently: asset keys (``red`` / ``B04`` /
``B04_10m``, ``vv`` / ``0_VV``), where scale, offset and nodata live (``raster:bands``, flat
``raster:scale``, or nowhere), whether Sentinel-2 DN still carry the baseline-04.00 BOA offset,
and whether a Sentinel-1 item states its orbit direction at all. A profile captures one
catalog-collection's conventions; :func:`load_plan` turns an item into the exact reading
recipe the ingest step follows, and every decision carries the reason it was taken, so the
scene manifest can record *why* each scene was treated as it was.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import pystac

Sensor = Literal["s2", "s1", "landsat"]
SENSORS: tuple[Sensor, ...] = ("s2", "s1", "landsat")

S2_BANDS: tuple[str, ...] = ("B04", "B02", "B03", "B08", "B8A", "B05", "B06", "B07", "B11", "B12")
"""Sentinel-2 band order of every TESSERA family (not wavelength order)."""
S2_COMMON_NAMES = {
    "B04": "red", "B02": "blue", "B03": "green", "B08": "nir", "B8A": "nir08",
    "B05": "rededge1", "B06": "rededge2", "B07": "rededge3", "B11": "swir16", "B12": "swir22",
}
S2_NATIVE_RESOLUTION = {b: 10 if b in ("B02", "B03", "B04", "B08") else 20 for b in S2_BANDS}
S1_POLARISATIONS: tuple[str, ...] = ("vv", "vh")
S1_ORBITS: tuple[str, ...] = ("ascending", "descending")
LANDSAT_BANDS: tuple[str, ...] = ("coastal", "blue", "green", "red", "nir08", "swir16", "swir22")

BOA_OFFSET = 1000
"""DN offset added by the Sentinel-2 processing baseline 04.00 (from 2022-01-25)."""
BASELINE_WITH_OFFSET = (4, 0)
BOA_OFFSET_DATE = datetime(2022, 1, 25, tzinfo=UTC)

LANDSAT_C2_SCALE, LANDSAT_C2_OFFSET = 2.75e-5, -0.2
"""Collection 2 Level-2 surface reflectance: reflectance = DN x 2.75e-5 - 0.2 (USGS Landsat
C2 L2 Science Product Guide); USGS's own STAC items do not carry it."""
LANDSAT_QA_BITS = {"fill": 0, "dilated_cloud": 1, "cirrus": 2, "cloud": 3, "cloud_shadow": 4}
"""QA_PIXEL bits the validity mask tests (masking.LANDSAT_QA_INVALID); names as in the
``classification:bitfields`` of the Earth Search / Planetary Computer items."""
_QA_ALIASES = {"dilated": "dilated_cloud", "shadow": "cloud_shadow"}  # USGS's names

SOLAR_TIME_ASCENDING, SOLAR_TIME_DESCENDING = 18.0, 6.0
"""Sentinel-1 is in a dawn-dusk orbit: ascending passes cross ~18:00 local solar time,
descending ~06:00; more than this many hours away means the time cannot tell."""
SOLAR_TIME_TOLERANCE_H = 4.0

SPECTRAL, MASK = "bilinear", "nearest"


class ProfileError(ValueError):
    """An item or collection the profiles cannot interpret."""


@dataclass(frozen=True)
class Decision:
    """A per-scene choice and the reason for it (recorded in the manifest)."""

    value: Any
    reason: str


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

    def resampling(self) -> dict[str, str]:
        """odc-stac resampling per asset: nearest for classes/bit masks, bilinear otherwise."""
        out = {self.band_assets[b]: MASK if b in self.nearest_bands else SPECTRAL
               for b in self.band_assets}
        if self.qa_asset:
            out[self.qa_asset] = MASK
        return out

    def assets(self) -> list[str]:
        keys = list(self.band_assets.values())
        return [*keys, self.qa_asset] if self.qa_asset else keys

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
LANDSAT_C2 = CollectionProfile(
    name="landsat-c2-l2", sensor="landsat", band_assets={b: b for b in LANDSAT_BANDS},
    qa_asset="qa_pixel", qa_band="qa_pixel", catalog="earth-search|planetary-computer",
    collections=("landsat-c2-l2",), defaults=_LS_DEFAULTS,
)
USGS_LANDSAT = CollectionProfile(
    name="usgs/landsat-c2l2-sr", sensor="landsat", band_assets={b: b for b in LANDSAT_BANDS},
    qa_asset="qa_pixel", qa_band="qa_pixel", catalog="usgs",
    collections=("landsat-c2l2-sr",), defaults=_LS_DEFAULTS,
)

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


# --------------------------------------------------------------------------- times and places


def parse_datetime(value: Any) -> datetime:
    """A UTC datetime from RFC 3339 text or the looser forms catalogs publish (Planetary
    Computer's S1 ``start_datetime`` uses a space instead of ``T``)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    text = str(value).strip().replace("Z", "+00:00").replace("z", "+00:00")
    if len(text) > 10 and text[10] == " ":
        text = f"{text[:10]}T{text[11:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ProfileError(f"unreadable datetime {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def item_datetime(item: pystac.Item) -> datetime:
    """Acquisition time (UTC): ``datetime``, else ``start_datetime`` in any published form."""
    if item.datetime is not None:
        return parse_datetime(item.datetime)
    start = item.properties.get("start_datetime")
    if start is None:
        raise ProfileError(f"{item.id}: item has neither datetime nor start_datetime")
    return parse_datetime(start)


def centroid_lon(item: pystac.Item) -> float:
    """Centre longitude of the footprint; a bbox crossing the antimeridian (west > east)
    is centred across it, not on the other side of the globe."""
    if item.bbox:
        west, east = float(item.bbox[0]), float(item.bbox[2])
        if west > east:
            east += 360.0
        lon = (west + east) / 2.0
        return lon - 360.0 if lon > 180.0 else lon
    if item.geometry:
        from shapely.geometry import shape

        return float(shape(item.geometry).centroid.x)
    raise ProfileError(f"{item.id}: item has neither bbox nor geometry")


def local_solar_time(item: pystac.Item) -> float:
    """Hours (0–24) of local mean solar time at the footprint centre."""
    when = item_datetime(item)
    hours = when.hour + when.minute / 60 + when.second / 3600 + centroid_lon(item) / 15.0
    return hours % 24.0


def solar_day(item: pystac.Item) -> date:
    """Local solar date of an acquisition: UTC time shifted by the footprint's longitude.

    Grouping by solar day keeps the granules of one overpass together even when their UTC
    date differs (near the antimeridian, or an evening pass over the Americas)."""
    return (item_datetime(item) + timedelta(hours=centroid_lon(item) / 15.0)).date()


# --------------------------------------------------------------------------- Sentinel-2

_S2_PRODUCT = re.compile(
    r"(?P<mission>S2[A-D])_MSIL2A_(?P<sensing>\d{8}T\d{6})_N(?P<baseline>\d{4})_"
    r"R(?P<orbit>\d{3})_T(?P<tile>\w{5})_(?P<generated>\d{8}T\d{6})"
)


def s2_product(item: pystac.Item) -> dict[str, str] | None:
    """Fields of the ESA product name (``s2:product_uri``, else a product-named id)."""
    for text in (item.properties.get("s2:product_uri"), item.id):
        m = _S2_PRODUCT.search(str(text or ""))
        if m:
            return m.groupdict()
    return None


def s2_baseline(item: pystac.Item) -> tuple[tuple[int, int] | None, str]:
    """(major, minor) processing baseline and where it was read from."""
    props = item.properties
    for key in ("s2:processing_baseline", "processing:version"):
        text = props.get(key)
        if text:
            try:
                major, minor = str(text).split(".")[:2]
                return (int(major), int(minor)), key
            except ValueError:
                raise ProfileError(f"{item.id}: unreadable {key} {text!r}") from None
    product = s2_product(item)
    if product:
        n = product["baseline"]
        return (int(n[:2]), int(n[2:])), "product name N" + n
    return None, "none"


def s2_boa_offset(item: pystac.Item, profile: CollectionProfile | None = None) -> Decision:
    """How many DN to subtract to harmonise a Sentinel-2 item to the pre-04.00 baseline.

    The models were trained on DN without the offset (tessera-model.md §2.2). Products of
    baseline ≥ 04.00 carry +1000 in their DN, unless the catalog rewrote the COGs without it
    (Earth Search's legacy ``sentinel-2-l2a``). The baseline decides; Earth Search's
    ``earthsearch:boa_offset_applied`` flag is wrong for some items (Element84/earth-search
    #66, #71), so it is only reported, with whether it agrees.
    """
    profile = profile or profile_for(item)
    baseline, source = s2_baseline(item)
    flag = item.properties.get("earthsearch:boa_offset_applied")
    if baseline is None:
        after = item_datetime(item) >= BOA_OFFSET_DATE
        text = f"no baseline in item; acquired {'after' if after else 'before'} 2022-01-25"
        carries = after
    else:
        text = f"baseline {baseline[0]:02d}.{baseline[1]:02d} ({source})"
        carries = baseline >= BASELINE_WITH_OFFSET
    if not carries:
        value, why = 0, f"{text} < 04.00 carries no offset"
    elif profile.boa_rule == "removed-in-cog":
        value, why = 0, f"{text} >= 04.00; {profile.catalog} removed the offset in its COGs"
    else:
        value, why = BOA_OFFSET, f"{text} >= 04.00: DN carry +{BOA_OFFSET}"
    if flag is not None:
        agrees = bool(flag) == (carries and profile.boa_rule == "removed-in-cog")
        why += (f"; earthsearch:boa_offset_applied={str(bool(flag)).lower()} "
                f"{'agrees' if agrees else 'disagrees (flag ignored)'}")
    return Decision(value, why)


# --------------------------------------------------------------------------- Sentinel-1

_OPERA_ID = re.compile(
    r"OPERA_L2_RTC-S1_T(?P<track>\d{3})-(?P<burst>\d{6})-(?P<swath>IW\d)_"
    r"(?P<sensing>\d{8}T\d{6})Z_(?P<processed>\d{8}T\d{6})Z_(?P<platform>S1[A-D])_"
    r"(?P<spacing>\d+)_v(?P<version>[\d.]+)"
)


def opera_burst(item: pystac.Item) -> dict[str, str] | None:
    """Fields of an OPERA RTC-S1 id: track (relative orbit), burst, swath, times, version."""
    m = _OPERA_ID.search(item.id)
    return m.groupdict() if m else None


def s1_orbit(item: pystac.Item) -> Decision:
    """Orbit direction: ``sat:orbit_state`` when the item has it; otherwise (OPERA items from
    CMR carry no orbit metadata) derived from the local solar time of the acquisition, since
    Sentinel-1's dawn-dusk orbit crosses ~18:00 ascending and ~06:00 descending."""
    state = item.properties.get("sat:orbit_state")
    lst = local_solar_time(item)
    if state in S1_ORBITS:
        return Decision(state, f"sat:orbit_state (local solar time {_hhmm(lst)})")
    if state is not None:
        raise ProfileError(f"{item.id}: unusable sat:orbit_state {state!r}")
    derived = _orbit_from_solar_time(lst)
    if derived is None:
        raise ProfileError(
            f"{item.id}: no sat:orbit_state and the local solar time {_hhmm(lst)} is not "
            f"within {SOLAR_TIME_TOLERANCE_H:g} h of 06:00 or 18:00 (high latitude?)"
        )
    burst = opera_burst(item)
    track = f"; track (relative orbit) {int(burst['track'])} from burst id " \
            f"T{burst['track']}-{burst['burst']}-{burst['swath']}" if burst else ""
    return Decision(
        derived,
        f"derived: local solar time {_hhmm(lst)} at lon {centroid_lon(item):.2f} "
        f"(ascending ~18:00, descending ~06:00){track}",
    )


def _orbit_from_solar_time(hours: float) -> str | None:
    for orbit, nominal in (("ascending", SOLAR_TIME_ASCENDING),
                           ("descending", SOLAR_TIME_DESCENDING)):
        gap = min(abs(hours - nominal), 24 - abs(hours - nominal))
        if gap <= SOLAR_TIME_TOLERANCE_H:
            return orbit
    return None


def _hhmm(hours: float) -> str:
    minutes = round(hours * 60) % (24 * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# --------------------------------------------------------------------------- Landsat


def landsat_qa_bits(item: pystac.Item, asset: str = "qa_pixel") -> Decision:
    """The QA_PIXEL bits the mask tests, checked against the item's
    ``classification:bitfields`` when it has them (a different layout would silently mask
    the wrong pixels)."""
    fields = item.assets[asset].extra_fields.get("classification:bitfields") if (
        asset in item.assets) else None
    if not fields:
        return Decision(dict(LANDSAT_QA_BITS), "Collection 2 QA_PIXEL layout (item has no "
                                               "classification:bitfields)")
    found = {_QA_ALIASES.get(f.get("name"), f.get("name")): f.get("offset") for f in fields}
    wrong = {k: found.get(k) for k, bit in LANDSAT_QA_BITS.items() if found.get(k) != bit}
    if wrong:
        raise ProfileError(f"{item.id}: QA_PIXEL bit layout {wrong} differs from Collection 2 "
                           f"{LANDSAT_QA_BITS}")
    return Decision(dict(LANDSAT_QA_BITS), "Collection 2 layout, matches the item's "
                                           "classification:bitfields")


# --------------------------------------------------------------------------- load plans


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
    keys = dict(profile.band_assets)
    if profile.qa_asset and profile.qa_band:
        keys[profile.qa_band] = profile.qa_asset
    bands = tuple(_plan_band(item, profile, band, key, offset_dn) for band, key in keys.items())
    return LoadPlan(
        item_id=item.id, collection=item.collection_id or profile.collections[0],
        profile=profile, bands=bands, when=item_datetime(item), day=solar_day(item),
        boa_offset=boa, orbit=orbit, qa_bits=qa,
    )


# --------------------------------------------------------------------------- acquisitions


def _norm_platform(item: pystac.Item) -> str:
    text = str(item.properties.get("platform") or "").lower().replace("_", "-")
    return text.replace(" ", "-")


_LANDSAT_ID = re.compile(
    r"(?P<sensor>L[COTEM]0\d)_L2S[PR]_(?P<pathrow>\d{6})_(?P<date>\d{8})"
    r"(?:_(?P<processed>\d{8}))?_(?P<number>\d{2})_(?P<category>T1|T2|RT)"
)


def acquisition_key(item: pystac.Item, sensor: Sensor) -> tuple[str, ...]:
    """What makes two items the same acquisition, whatever the catalog or reprocessing:
    the ESA product's mission/sensing time/orbit/tile for Sentinel-2, the burst and sensing
    time for OPERA, the datatake and start time for S1 GRD, and the scene (sensor, path/row,
    date) for Landsat. Ids, processing baselines and processing times are left out on purpose."""
    when = item_datetime(item).strftime("%Y%m%dT%H%M%S")
    if sensor == "s2":
        p = s2_product(item)
        if p:
            return ("s2", p["mission"], p["sensing"], p["orbit"], p["tile"])
        grid = str(item.properties.get("grid:code") or item.properties.get("s2:mgrs_tile") or "")
        return ("s2", _norm_platform(item), when, grid.removeprefix("MGRS-").lstrip("T"))
    if sensor == "s1":
        burst = opera_burst(item)
        if burst:
            return ("s1", "opera", burst["track"], burst["burst"], burst["swath"],
                    burst["sensing"])
        props = item.properties
        return ("s1", _norm_platform(item), str(props.get("s1:datatake_id") or ""),
                str(props.get("s1:slice_number") or ""),
                parse_datetime(props.get("start_datetime") or item_datetime(item))
                .strftime("%Y%m%dT%H%M%S"))
    m = _LANDSAT_ID.search(item.id)
    if m:
        return ("landsat", m["sensor"], m["pathrow"], m["date"])
    props = item.properties
    return ("landsat", _norm_platform(item), str(props.get("landsat:wrs_path") or ""),
            str(props.get("landsat:wrs_row") or ""), when[:8])


def processing_rank(item: pystac.Item, sensor: Sensor) -> tuple[tuple[int, ...], str]:
    """(version, processing time) of a publication: the newer baseline/version wins, then
    the later processing; callers break remaining ties by id."""
    props = item.properties
    stamp = str(_first(props.get("s2:generation_time"), props.get("processing:datetime"),
                       props.get("landsat:product_generated"), props.get("updated"),
                       props.get("created"), ""))
    if sensor == "s2":
        baseline, _ = s2_baseline(item)
        p = s2_product(item)
        if p and not props.get("s2:generation_time"):
            stamp = p["generated"]
        return (baseline or (0, 0)), _stamp_key(stamp)
    if sensor == "s1":
        burst = opera_burst(item)
        if burst:
            version = tuple(int(x) for x in burst["version"].split(".") if x)
            return version, burst["processed"]
        return (0,), _stamp_key(stamp)
    m = _LANDSAT_ID.search(item.id)
    number = int(m["number"]) if m else int(props.get("landsat:collection_number") or 0)
    category = (m["category"] if m else str(props.get("landsat:collection_category") or ""))
    tier = {"T1": 3, "T2": 2, "RT": 1}.get(category, 0)
    if m and m["processed"]:
        stamp = m["processed"]
    return (number, tier), _stamp_key(stamp)


def _stamp_key(text: str) -> str:
    """Comparable UTC ``YYYYMMDDTHHMMSS`` from any of the published timestamp forms."""
    if not text:
        return ""
    try:
        return parse_datetime(text).strftime("%Y%m%dT%H%M%S")
    except ProfileError:
        return re.sub(r"[^0-9T]", "", text)[:15]
