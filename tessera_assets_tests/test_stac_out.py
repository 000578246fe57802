"""STAC out: one geo-embeddings Item per committed embeddings partition (lineage in its
properties, an ``embeddings`` asset at the zone-store region, model and source-data links), a
Collection, and a stac-geoparquet index that answers through rustac which tile-years are done
for an AOI and model — from the domain function and from ``tessera-assets stac done``. The
index follows commits, rewrites and AOI removal (which also deletes every pyramid level)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from shapely.geometry import box

from tessera_assets.cli.main import main
from tessera_assets.ops.aoi_registry import delete_partition_data
from tessera_assets.products import stac_out
from tessera_assets.products.registry import open_pyramid, open_store
from tessera_assets.store.lineage import Lineage
from tessera_assets_tests.store_testkit import TILE_A, TILE_B
from tessera_assets_tests.test_pyramid import V2, YEAR, _build, _fine, _settings

PROVENANCE = {
    "manifest_digest": "sha256:manifest-a",
    "code_version": "9.9.9",
    "config_digest": "cfg-a",
    "model_sha256": V2.sha256,
    "model_source": "/models/demo-v2-nano.pt",
    "provisional": True,
}


@pytest.fixture()
def published(tmp_path: Path):
    settings = _settings(tmp_path)
    _fine(settings)
    store = open_store("embeddings", settings)
    ds = store.read_tile(TILE_A, YEAR)
    data = {
        name: ds[name].values for name in ("embeddings", "scales", "s2_obs_count", "s1_obs_count")
    }
    for depth in store.depths[:-1]:
        data[f"embeddings_d{depth}"] = data["embeddings"][:depth]
    store.write_tile(TILE_A, YEAR, data, Lineage(**PROVENANCE))  # TILE_A: full provenance
    for tile in (TILE_A, TILE_B):
        stac_out.publish(settings, store, tile, YEAR)
    return settings, store


def test_item_carries_the_extension_fields_lineage_asset_and_links(published) -> None:
    settings, _ = published
    key = stac_out.item_key(TILE_A, YEAR)
    path = Path(stac_out.stac_url(settings.root)) / key
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"stac-geoparquet"])
    assert stac_out.COLLECTION_ID in meta["collections"]  # the Collection travels with the index
    rows = stac_out.search_index(settings.root, intersects=TILE_A.footprint_lonlat().buffer(-1e-3))
    assert [r["id"] for r in rows] == [f"{TILE_A.id}_{YEAR}"]
    item = rows[0]
    assert stac_out.EMB_EXTENSION in item["stac_extensions"]
    p = item["properties"]
    assert p["emb:quantization"]["quantized_dtype"] == "int8"
    assert (
        p["tessera:manifest_digest"],
        p["tessera:model_sha256"],
        p["tessera:code_version"],
        p["tessera:provisional"],
    ) == ("sha256:manifest-a", V2.sha256, "9.9.9", True)
    assert (p["tessera:tile"], p["tessera:year"], p["tessera:model_family"]) == (
        TILE_A.id,
        YEAR,
        "v2-nano",
    )
    asset = item["assets"]["embeddings"]
    assert asset["href"].endswith("embeddings.zarr/utm30") and "data" in asset["roles"]
    assert asset["tessera:window"]["y"][1] - asset["tessera:window"]["y"][0] == 64
    links = {link["rel"]: link["href"] for link in item["links"]}
    assert links["emb:model"] == "/models/demo-v2-nano.pt"
    assert links["emb:source-data"].endswith(f"scene_manifest/{TILE_A.id}/{YEAR}.parquet")
    coll = json.loads((Path(stac_out.stac_url(settings.root)) / "collection.json").read_text())
    assert (coll["emb:type"], coll["emb:dimensions"], coll["data_type"]) == ("pixel", 128, "int8")
    assert {"emb:model", "emb:source-data"} <= {link["rel"] for link in coll["links"]}


def test_done_answers_for_an_aoi_and_model(published) -> None:
    settings, _ = published
    both = box(*TILE_A.footprint_lonlat().union(TILE_B.footprint_lonlat()).bounds)
    only_a = TILE_A.footprint_lonlat().buffer(-1e-3)
    assert stac_out.done_partitions(settings.root, both, "v2-nano") == [
        (TILE_A.id, YEAR),
        (TILE_B.id, YEAR),
    ]
    assert stac_out.done_partitions(settings.root, only_a, V2.sha256) == [(TILE_A.id, YEAR)]
    assert stac_out.done_partitions(settings.root, both, "v1.1") == []
    assert stac_out.done_partitions(settings.root, both, years=[YEAR + 1]) == []
    assert stac_out.done_partitions(settings.root, box(10, 10, 11, 11)) == []


def test_stac_done_cli(published, capsys) -> None:
    settings, _ = published
    cfg = Path(settings.root) / "settings.json"
    cfg.write_text(settings.model_dump_json())
    w, s, e, n = TILE_A.footprint_lonlat().buffer(-1e-3).bounds
    assert (
        main(
            [
                "stac",
                "done",
                "--aoi",
                f"{w},{s},{e},{n}",
                "--model",
                "v2-nano",
                "--config",
                str(cfg),
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["done"] == [[TILE_A.id, YEAR]] and out["missing"] == []
    assert (
        main(["stac", "done", "--aoi", f"{w},{s},{e},{n}", "--model", "v1.1", "--config", str(cfg)])
        == 0
    )
    text = capsys.readouterr().out
    assert f"missing  {TILE_A.id} {YEAR}" in text and "0 of 1 tile-years done" in text


def test_index_lists_exactly_the_committed_partitions(published) -> None:
    settings, store = published
    assert stac_out.indexed_partitions(settings.root) == store.list_partitions()
    store.delete_tile(TILE_B, YEAR)  # un-committed behind the index's back
    assert stac_out.rebuild_index(settings) == (1, 1)
    assert stac_out.indexed_partitions(settings.root) == [(TILE_A.id, YEAR)]
    with pytest.raises(stac_out.StacError, match="not committed"):
        stac_out.publish(settings, store, TILE_B, YEAR)


def test_aoi_removal_deletes_every_pyramid_level_and_the_item(published) -> None:
    settings, store = published
    levels = _build(settings, TILE_A)
    assert len(levels) > 1 and all(lv.read_lineage(TILE_A, YEAR) for lv in levels)
    delete_partition_data(settings, TILE_A, [YEAR])
    for lv in open_pyramid(settings):
        assert lv.read_lineage(TILE_A, YEAR) is None, lv.product
        assert not any(lv.region_status(TILE_A, YEAR).present.values()), lv.product
    assert store.read_lineage(TILE_A, YEAR) is None
    assert stac_out.indexed_partitions(settings.root) == [(TILE_B.id, YEAR)]
    assert np.isfinite(store.tile_array(TILE_B, YEAR, "scales")[:, :]).any()
