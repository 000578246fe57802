"""Sensors: AOI requests → tile partitions, new STAC scenes → scene manifests, and the
automation sensor that carries every change downstream (DESIGN §8).

- ``aoi_request_sensor`` files AOI request GeoJSON dropped into ``aoi_requests_url``
  (accepted → registered + partitions added, rejected → ``rejected/`` with the reason) and
  re-adds any registered tile that is not a partition yet (self-healing after a crash). It is
  on by default only when ``aoi_requests_url`` is set; otherwise its description says "not
  configured" and it can still be started by hand to watch ``{root}/aoi_requests``.
- ``stac_scene_sensor`` asks the catalog (each sensor's own, where sensors name their own
  catalogs: every one is watched), once per collection and search box, for scenes newer
  than its cursor and requests ``scene_manifest`` for exactly the tile-years whose
  scene set changed.
- ``tessera_automation`` evaluates the assets' automation conditions (``eager``), so the
  cubes, masks, embeddings and coarse embeddings of a re-built manifest follow by themselves.
  It is on by default.

The domain work lives in :mod:`tessera_assets.ops.aoi_registry` and
:mod:`tessera_assets.ops.scene_watch`; these functions only translate to Dagster requests.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from dagster import (
    AssetKey,
    AssetSelection,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from tessera_assets.config import PipelineSettings
from tessera_assets.defs.partitions import TILES, partition_key
from tessera_assets.defs.resources import CatalogResource, PipelineResource
from tessera_assets.ops.aoi_registry import AoiRecord, AoiRegistry
from tessera_assets.ops.aoi_requests import (
    AoiRequest,
    AoiRequestInbox,
    Screen,
    process_requests,
    requests_url,
    tiles_missing_from,
)
from tessera_assets.ops.planner import collections_of, plan_tile_years
from tessera_assets.ops.scene_watch import TileIndex, WatchCursor, index_key, scan_new_scenes

SCENE_MANIFEST = AssetKey("scene_manifest")
AOI_SENSOR = "aoi_request_sensor"
STAC_SENSOR = "stac_scene_sensor"
AUTOMATION_SENSOR = "tessera_automation"
TRIGGER_TAG = "tessera/trigger"

_INDEX_CACHE: dict[str, TileIndex] = {}


def cached_index(tile_years: dict[str, set[int]]) -> TileIndex:
    """The tile index for these registrations, rebuilt only when they change (a sensor's code
    server lives across ticks)."""
    key = index_key(tile_years)
    if key not in _INDEX_CACHE:
        _INDEX_CACHE.clear()
        _INDEX_CACHE[key] = TileIndex.build(tile_years)
    return _INDEX_CACHE[key]


def scene_run_requests(affected: dict[tuple[str, int], list[str]], trigger: str
                       ) -> list[RunRequest]:
    """One ``scene_manifest`` run per tile-year. ``affected`` maps each to the keys of what is
    new (item keys, or the AOI name); the run key is their digest, so the same news never
    launches twice while a republished item does."""
    out = []
    for (tile, year), ids in sorted(affected.items()):
        digest = hashlib.sha1("\n".join(sorted(ids)).encode()).hexdigest()[:12]
        out.append(RunRequest(
            run_key=f"{trigger}:{tile}|{year}:{digest}",
            partition_key=str(partition_key(tile, year)),
            asset_selection=[SCENE_MANIFEST],
            tags={TRIGGER_TAG: trigger, "tessera/new_items": str(len(ids))},
        ))
    return out


def budget_screen(settings: PipelineSettings, catalog: CatalogResource) -> Screen:
    """A request that asks to be materialised is priced first; above the budget it is
    rejected with the plan's numbers in the reason."""

    def screen(record: AoiRecord, request: AoiRequest) -> str | None:
        if not request.materialize or settings.planner.budget_usd is None:
            return None
        return plan_tile_years(catalog.get(), {t: record.years for t in record.tiles},
                               settings).refusal()

    return screen


def _manifest_sensor(name: str, interval_s: int, description: str, *, running: bool = True):
    """A sensor, on by default unless ``running`` is False, whose runs materialise
    ``scene_manifest``."""
    return sensor(name=name, minimum_interval_seconds=interval_s,
                  default_status=(DefaultSensorStatus.RUNNING if running
                                  else DefaultSensorStatus.STOPPED),
                  target=AssetSelection.assets(SCENE_MANIFEST), description=description)


def aoi_sensor_description(settings: PipelineSettings) -> str:
    """What the AOI request sensor does, and whether it is configured."""
    what = (f"AOI request files dropped into {requests_url(settings)} are registered "
            "(accepted/ or rejected/ with the reason) and their tile partitions added.")
    if settings.aoi_requests_url:
        return what
    return f"Not configured (aoi_requests_url is not set), so off by default. Started: {what}"


def build_sensors(settings: PipelineSettings) -> list[SensorDefinition]:
    """The AOI request sensor (on only when ``aoi_requests_url`` is set), the STAC sensor and
    the automation sensor."""

    @_manifest_sensor(AOI_SENSOR, 30, aoi_sensor_description(settings),
                      running=bool(settings.aoi_requests_url))
    def aoi_request_sensor(context: SensorEvaluationContext, pipeline: PipelineResource,
                           catalog: CatalogResource):
        s = pipeline.settings
        registry = AoiRegistry(s.root, s.storage_options)
        inbox = AoiRequestInbox(requests_url(s), s.storage_options)
        outcomes = process_requests(inbox, registry, s, screen=budget_screen(s, catalog))
        for o in outcomes:
            if o.status == "rejected":
                context.log.warning("AOI request %s rejected: %s", o.file, o.reason)
            else:
                context.log.info("AOI request %s accepted as %s (%d tiles)", o.file,
                                 o.record.name if o.record else "?", len(o.new_tiles))
        missing = tiles_missing_from(registry.tile_years(),
                                     context.instance.get_dynamic_partitions(TILES.name))
        runs = []
        for o in outcomes:
            if o.status == "accepted" and o.materialize and o.record:
                affected = {(t, y): [o.record.name] for t in o.record.tiles
                            for y in o.record.years}
                runs += scene_run_requests(affected, f"aoi:{o.record.name}")
        if not missing and not runs:
            return SkipReason(f"{len(outcomes)} request(s) filed; no new tiles"
                              if outcomes else "no AOI requests")
        return SensorResult(
            run_requests=runs,
            dynamic_partitions_requests=[TILES.build_add_request(missing)] if missing else [],
        )

    @_manifest_sensor(STAC_SENSOR, settings.scene_watch.interval_s,
                      "Requests scene_manifest for the registered tile-years that gained "
                      "scenes since the cursor (one search per collection and zone, in "
                      "each sensor's catalog).")
    def stac_scene_sensor(context: SensorEvaluationContext, pipeline: PipelineResource,
                          catalog: CatalogResource):
        s = pipeline.settings
        partitions = set(context.instance.get_dynamic_partitions(TILES.name))
        tile_years = {t: ys for t, ys in
                      AoiRegistry(s.root, s.storage_options).tile_years().items()
                      if t in partitions}
        if not tile_years:
            return SkipReason("no registered tiles")
        result = scan_new_scenes(
            catalog.get(), cached_index(tile_years), collections_of(s),
            WatchCursor.from_json(context.cursor), now=datetime.now(UTC), years=s.years,
            lookback=timedelta(days=s.scene_watch.lookback_days),
            max_s2_cloud_cover=s.catalog.max_s2_cloud_cover)
        for scan in result.scans:
            if scan.skipped:
                context.log.warning("%s skipped: %s", scan.collection, scan.skipped)
                continue
            context.log.info("%s (%s): %d items in %s..%s, %d new%s (%.2f s)",
                             scan.collection, scan.source, scan.items, scan.window[0][:10],
                             scan.window[1][:10], scan.new,
                             " [baseline]" if scan.bootstrap else "", scan.seconds)
        runs = scene_run_requests(result.keys, "stac")
        return SensorResult(run_requests=runs, cursor=result.cursor.to_json())

    automation = AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR, target=AssetSelection.all(),
        default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
        description="Evaluates the assets' automation conditions: downstream assets follow "
                    "a re-built scene manifest.")
    return [aoi_request_sensor, stac_scene_sensor, automation]
