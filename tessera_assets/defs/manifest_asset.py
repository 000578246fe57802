"""``scene_manifest``: the STAC items chosen for a tile-year, the lineage root (DESIGN §1).

It is also where a backfill is stopped before anything is written when it costs more than the
budget (:mod:`tessera_assets.defs.budget`), and where a tile-year is first flagged provisional.
"""

# No ``from __future__ import annotations``: Dagster checks the ``context`` annotation as a class.

import time
from datetime import UTC, datetime

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    MultiPartitionsDefinition,
    Output,
    asset,
)

from tessera_assets.defs.budget import budget_guard
from tessera_assets.defs.conventions import GROUP_INGEST, OWNERS, code_version
from tessera_assets.defs.metadata import manifest_metadata, partition_labels, seconds_since
from tessera_assets.defs.partitions import tile_year
from tessera_assets.defs.resources import CatalogResource, PipelineResource
from tessera_assets.ops.provisional import manifest_provisional
from tessera_assets.products.registry import manifest_url
from tessera_assets.sources.manifest import SceneManifest, build_manifest, search_tile


def build_scene_manifest(partitions: MultiPartitionsDefinition) -> AssetsDefinition:
    @asset(
        partitions_def=partitions, io_manager_key="manifest_io_manager", group_name=GROUP_INGEST,
        code_version=code_version(__name__, "tessera_assets.sources"), owners=OWNERS,
        kinds={"stac", "parquet"},
    )
    def scene_manifest(
        context: AssetExecutionContext, pipeline: PipelineResource, catalog: CatalogResource
    ) -> Output[SceneManifest]:
        """STAC items chosen for the tile-year (the lineage root), stored as stac-geoparquet.
        Refuses (budget guard) when the run's backfill is priced above planner.budget_usd."""
        t0 = time.perf_counter()
        settings = pipeline.settings
        tile, year = tile_year(context.partition_key)
        cat = catalog.get()
        c = settings.catalog
        results = search_tile(cat, tile, year, c.collections())
        manifest = build_manifest(tile, year, results, max_s2_cloud_cover=c.max_s2_cloud_cover,
                                  catalog={"preset": c.preset, "kind": c.kind, "url": c.url,
                                           "sources": c.sources()},
                                  sources=c.sources())
        estimate = budget_guard(context, settings, manifest, cat)
        context.log.info("tile %s %d: %s scenes, %d skipped, %d duplicates", tile.id, year,
                         manifest.counts(), len(manifest.skipped), len(manifest.duplicates))
        provisional, reason = manifest_provisional(manifest.items, year,
                                                   datetime.now(UTC).date(), settings.scene_watch)
        return Output(manifest, metadata={
            **manifest_metadata(manifest, ", ".join(sorted(set(c.sources().values())))
                                or c.url),
            **partition_labels(settings, "scene_manifest", tile.id, year,
                               manifest_url(settings.root, tile.id, year) + ".parquet"),
            "provisional": provisional, "provisional_reason": reason,
            "seconds": seconds_since(t0),
            **estimate,
        })

    return scene_manifest
