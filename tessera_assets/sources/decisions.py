"""Per-scene decisions: what an item's metadata says about its acquisition, and why.

The acquisition time and local solar day, the Sentinel-2 processing baseline and BOA offset,
the Sentinel-1 orbit direction (derived from the local solar time when the item does not state
it), the Landsat QA_PIXEL layout, and what makes two publications the same acquisition. Each
choice that changes pixels is a :class:`Decision` carrying its reason, so the scene manifest can
record *why* each scene was treated as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pystac

from tessera_assets.sources.bands import (
    BASELINE_WITH_OFFSET,
    BOA_OFFSET,
    BOA_OFFSET_DATE,
    LANDSAT_QA_BITS,
    S1_ORBITS,
    Sensor,
)
from tessera_assets.sources.profiles import CollectionProfile, ProfileError, profile_for

SOLAR_TIME_ASCENDING, SOLAR_TIME_DESCENDING = 18.0, 6.0
"""Sentinel-1 is in a dawn-dusk orbit: ascending passes cross ~18:00 local solar time,
descending ~06:00; more than this many hours away means the time cannot tell."""
SOLAR_TIME_TOLERANCE_H = 4.0

_QA_ALIASES = {"dilated": "dilated_cloud", "shadow": "cloud_shadow"}  # USGS's names


@dataclass(frozen=True)
class Decision:
    """A per-scene choice and the reason for it (recorded in the manifest)."""

    value: Any
    reason: str


# --------------------------------------------------------------------------- times and places


def parse_datetime(value: Any) -> datetime:
    """A UTC datetime from a ``datetime`` or ISO 8601 / RFC 3339 text, including the looser
    forms catalogs publish (Planetary Computer's S1 ``start_datetime`` has a space instead of
    ``T``; RFC 3339 allows a lower-case ``t``/``z``); text without a zone is taken as UTC."""
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).strip().upper())
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
    stamp = str(next((v for v in (props.get("s2:generation_time"),
                                  props.get("processing:datetime"),
                                  props.get("landsat:product_generated"),
                                  props.get("updated"), props.get("created"))
                      if v is not None), ""))
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
