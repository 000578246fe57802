"""The nine software-defined assets (DESIGN §1), one module per stage; this assembles them.

Every asset downstream of ``scene_manifest`` follows it through the ``eager`` automation
condition (the automation sensor is on by default), and every partition records the planner's
estimate beside what it measured (docs/operations.md).
"""

from __future__ import annotations

from dagster import AssetsDefinition

from tessera_assets.defs.coarse_asset import build_embeddings_coarse
from tessera_assets.defs.cube_assets import build_cube_assets
from tessera_assets.defs.embeddings_asset import build_embeddings
from tessera_assets.defs.manifest_asset import build_scene_manifest
from tessera_assets.defs.partitions import tile_year_partitions
from tessera_assets.defs.prepared_assets import build_prepared_assets


def build_assets(years: list[int]) -> list[AssetsDefinition]:
    """scene_manifest → cubes → prepared cubes → embeddings → embeddings_coarse, partitioned
    by tile × ``years``."""
    partitions = tile_year_partitions(years)
    return [build_scene_manifest(partitions), *build_cube_assets(partitions),
            *build_prepared_assets(partitions), build_embeddings(partitions),
            build_embeddings_coarse(partitions)]
