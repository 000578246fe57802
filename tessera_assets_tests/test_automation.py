"""What the automation sensor may launch: the embeddings path follows a re-built scene
manifest; the Landsat products (which no model consumes) are never launched by it, so a
backfill of the embeddings path is not followed by one automation run per partition for them."""

from __future__ import annotations

from dagster import AssetKey

from tessera_assets.config import PipelineSettings
from tessera_assets.defs import build_definitions
from tessera_assets.defs.conventions import EAGER, OPTIONAL_PRODUCTS

EMBEDDINGS_PATH = {"s2_cube", "s1_cube", "s2_masked", "s1_calibrated", "embeddings",
                   "embeddings_coarse"}


def _conditions() -> dict[str, object]:
    graph = build_definitions(PipelineSettings(tile_size=64, years=[2024])).resolve_asset_graph()
    return {key.to_user_string(): graph.get(key).automation_condition
            for key in graph.get_all_asset_keys()}


def test_embeddings_path_is_eager_and_landsat_is_optional() -> None:
    conditions = _conditions()
    assert {"landsat_cube", "landsat_masked"} == OPTIONAL_PRODUCTS
    for name in EMBEDDINGS_PATH:
        assert conditions[name] == EAGER, name
    for name in OPTIONAL_PRODUCTS:
        assert conditions[name] is None, name


def test_landsat_assets_stay_in_the_graph_for_explicit_runs() -> None:
    graph = build_definitions(PipelineSettings(tile_size=64, years=[2024])).resolve_asset_graph()
    assert graph.get(AssetKey("landsat_masked")).parent_keys == {AssetKey("landsat_cube"),
                                                                AssetKey("scene_manifest")}
