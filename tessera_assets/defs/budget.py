"""The budget guard of ``scene_manifest`` (docs/operations.md): refuse, before anything is
written, a run or backfill whose estimated cost is above ``planner.budget_usd``.

A backfill is priced as a whole, once, from the catalog (as ``tessera-assets plan`` does) and
the verdict kept beside the stores, so every partition of the backfill gets the same answer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dagster import AssetExecutionContext, AssetKey, Failure

from tessera_assets.catalog.base import Catalog
from tessera_assets.config import PipelineSettings
from tessera_assets.defs.partitions import tile_year_ids
from tessera_assets.ops.planner import (
    effective_planner,
    estimate_tile_year,
    plan_tile_years,
    planning_family,
)
from tessera_assets.sources.manifest import SceneManifest
from tessera_assets.store.objects import ObjectIO

BACKFILL_TAG = "dagster/backfill"
BUDGET_PREFIX = "_budget"
"""``{root}/_budget/{backfill_id}.json`` holds a backfill's priced plan."""


def backfill_keys(context: AssetExecutionContext) -> tuple[str | None, list[str] | None]:
    """The run's backfill id and the ``scene_manifest`` partition keys it targets
    (``(None, None)`` outside a backfill; keys ``None`` when they cannot be read)."""
    backfill_id = context.run.tags.get(BACKFILL_TAG)
    if not backfill_id:
        return None, None
    try:
        backfill = context.instance.get_backfill(backfill_id)
        if backfill is None:
            return backfill_id, None
        if backfill.is_asset_backfill:
            data = backfill.asset_backfill_data or backfill.get_asset_backfill_data(
                context.repository_def.asset_graph)
            subset = data.target_subset.get_partitions_subset(AssetKey("scene_manifest"))
            keys = [str(k) for k in subset.get_partition_keys()]
        else:
            keys = [str(k) for k in backfill.partition_names or []]
        return backfill_id, keys
    except Exception as exc:  # internal API: never let it break a run, but say so
        context.log.warning("budget guard could not read backfill %s: %s", backfill_id, exc)
        return backfill_id, None


def backfill_plan(settings: PipelineSettings, catalog: Catalog, backfill_id: str,
                  keys: list[str]) -> dict[str, Any]:
    """The whole backfill priced once (scenes counted for all its tile-years) and kept at
    ``{root}/_budget/{backfill_id}.json``, so every partition gets the same verdict."""
    io = ObjectIO(f"{settings.root.rstrip('/')}/{BUDGET_PREFIX}", settings.storage_options)
    cached = io.get_json(f"{backfill_id}.json")
    if cached is not None:
        return cached
    tile_years: dict[str, list[int]] = {}
    for key in keys:
        tile_id, year = tile_year_ids(key)
        tile_years.setdefault(tile_id, []).append(year)
    plan = plan_tile_years(catalog, tile_years, settings)
    doc = {"backfill": backfill_id, "tile_years": len(plan.parts),
           "cost_usd": plan.total.cost_usd, "summary": plan.summary(),
           "priced_at": datetime.now(UTC).isoformat(timespec="seconds")}
    io.put_json(f"{backfill_id}.json", doc)
    return doc


def budget_guard(context: AssetExecutionContext, settings: PipelineSettings,
                 manifest: SceneManifest, catalog: Catalog) -> dict[str, Any]:
    """Fail before anything is written when the run's scope costs more than
    ``planner.budget_usd``: the whole backfill (priced once, from the catalog) in a backfill,
    else this partition. If the backfill cannot be read, this partition's cost times its
    size, or the partition alone, is used — and logged. Returns the estimate as metadata."""
    est = estimate_tile_year(manifest.counts(), settings.tile_size, effective_planner(settings),
                             planning_family(settings.inference))
    budget = settings.planner.budget_usd
    meta: dict[str, Any] = {
        "estimate_cost_usd": round(est.cost_usd, 4),
        "estimate_input_bytes": int(est.input_bytes),
        "estimate_cpu_hours": round(est.cpu_hours, 4),
        "estimate_gpu_hours": round(est.gpu_hours, 4),
        "budget_usd": budget if budget is not None else "none",
    }
    if budget is None:
        return meta
    backfill_id, keys = backfill_keys(context)
    if backfill_id is None:
        scope, n, cost = "this run", 1, est.cost_usd
    elif keys:
        doc = backfill_plan(settings, catalog, backfill_id, keys)
        scope, n, cost = f"backfill {backfill_id}", int(doc["tile_years"]), doc["cost_usd"]
    else:
        scope, n, cost = f"backfill {backfill_id} (size unknown)", 1, est.cost_usd
    meta.update(budget_scope=f"{scope}: {n} tile-year(s)",
                budget_scope_estimate_usd=round(cost, 2))
    if cost > budget:
        raise Failure(
            description=(f"budget guard: {scope} is estimated at ${cost:,.2f} for {n} "
                         f"tile-year(s), above planner.budget_usd ${budget:,.2f}; nothing was "
                         "written (tessera-assets plan shows the numbers)"),
            metadata=meta, allow_retries=False)
    return meta
