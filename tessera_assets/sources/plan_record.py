"""A load plan as the scene manifest records it, and read back for ingestion.

The manifest writes each kept item's plan into flat ``tessera:*`` properties (scalars and JSON
strings, so they survive a stac-geoparquet round trip unchanged). Ingestion reads the plan from
there instead of recomputing it from the item, so the assets, scale/offset, BOA offset, orbit
and QA bits that build the pixels are exactly the ones the manifest (the lineage root) records.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any, Literal

import pystac

from tessera_assets.sources.decisions import Decision, acquisition_key, item_datetime
from tessera_assets.sources.load_plan import BandPlan, LoadPlan
from tessera_assets.sources.profiles import PROFILES_BY_NAME

PLAN_KEY = "tessera:load_plan"


class PlanNotRecordedError(ValueError):
    """A manifest item lacks the recorded load plan ingestion reads."""


def plan_properties(plan: LoadPlan, item: pystac.Item) -> dict[str, Any]:
    """The ``tessera:*`` properties recording a load plan and the scene's place in the year."""
    props: dict[str, Any] = {
        "tessera:sensor": plan.sensor,
        "tessera:solar_day": plan.day.isoformat(),
        "tessera:doy": plan.day.timetuple().tm_yday,
        "tessera:profile": plan.profile.name,
        PLAN_KEY: plan.record(),
        "tessera:acquisition": "/".join(acquisition_key(item, plan.sensor)),
    }
    if plan.boa_offset is not None:
        props["tessera:boa_offset"] = int(plan.boa_offset.value)
        props["tessera:boa_reason"] = plan.boa_offset.reason
    if plan.orbit is not None:
        props["tessera:orbit"] = str(plan.orbit.value)
        props["tessera:orbit_method"] = plan.orbit.reason
    if plan.qa_bits is not None:
        props["tessera:qa_bits"] = json.dumps(plan.qa_bits.value, sort_keys=True)
        props["tessera:qa_reason"] = plan.qa_bits.reason
    return props


def recorded_plan(item: pystac.Item) -> LoadPlan:
    """The load plan :func:`plan_properties` recorded on a manifest item.

    Raises :class:`PlanNotRecordedError` naming the item and the missing property when the
    manifest does not record it (one written before plans were recorded, or items that did
    not come through :func:`tessera_assets.sources.manifest.build_manifest`)."""
    props = item.properties
    profile_name = _required(item, "tessera:profile")
    profile = PROFILES_BY_NAME.get(str(profile_name))
    if profile is None:
        raise PlanNotRecordedError(f"{item.id}: recorded profile {profile_name!r} is unknown")
    record = json.loads(_required(item, PLAN_KEY))
    order = list(profile.band_keys())
    if sorted(record) != sorted(order):
        raise PlanNotRecordedError(f"{item.id}: recorded {PLAN_KEY} has bands {sorted(record)}, "
                                   f"profile {profile.name} reads {order}")
    bands = tuple(BandPlan.from_record(b, record[b], item.assets[record[b]["asset"]].href)
                  for b in order)
    boa = orbit = qa = None
    if profile.sensor == "s2":
        boa = Decision(int(_required(item, "tessera:boa_offset")),
                       str(props.get("tessera:boa_reason", "")))
    elif profile.sensor == "s1":
        orbit = Decision(str(_required(item, "tessera:orbit")),
                         str(props.get("tessera:orbit_method", "")))
    elif profile.sensor == "landsat":
        qa = Decision(json.loads(_required(item, "tessera:qa_bits")),
                      str(props.get("tessera:qa_reason", "")))
    return LoadPlan(
        item_id=item.id, collection=item.collection_id or profile.collections[0],
        profile=profile, bands=bands, when=item_datetime(item),
        day=date.fromisoformat(str(_required(item, "tessera:solar_day"))),
        boa_offset=boa, orbit=orbit, qa_bits=qa,
    )


def recorded_decision(item: pystac.Item, name: Literal["boa_offset", "orbit", "qa_bits"]
                      ) -> Any:
    """The value of one per-scene decision in the item's recorded load plan."""
    decision: Decision | None = getattr(recorded_plan(item), name)
    if decision is None:
        raise PlanNotRecordedError(f"{item.id}: its recorded load plan has no {name} decision "
                                   f"(a {item.properties.get('tessera:sensor')} scene)")
    return decision.value


def _required(item: pystac.Item, key: str) -> Any:
    value = item.properties.get(key)
    if value is None:
        raise PlanNotRecordedError(
            f"{item.id}: the scene manifest does not record {key!r}, which ingestion reads; "
            f"re-materialise scene_manifest for this tile-year"
        )
    return value
