"""``tessera-assets reproduce``: a committed embeddings partition (one 640 m tile over a
three-week demo archive, demo v2-nano weights) re-run from its recorded manifest, model and
configuration into a scratch root is bit-identical; a tampered live region is reported at its
first difference (product, variable, index, values); inputs that are not the recorded ones
are refused with one line."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from tessera_assets.catalog.factory import catalog_from_settings
from tessera_assets.cli.main import main
from tessera_assets.demo import DemoSpec, generate_demo_archive
from tessera_assets.demo.area import DEMO_EPSG, DemoPaths, demo_bounds, demo_settings
from tessera_assets.grid import Tile
from tessera_assets.model.demo_weights import write_demo_checkpoint
from tessera_assets.ops.reproduce import CHAIN, ReproduceError, reproduce, rerun_partition
from tessera_assets.products.registry import open_store
from tessera_assets.sources.manifest import build_manifest, search_tile

pytestmark = pytest.mark.slow  # three in-process re-runs of a tile (cubes + model)

TILE = Tile(zone=30, col=995, row=5683, size=64)  # inside the demo area (UTM 30N)
YEAR = 2024


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("reproduce")
    spec = DemoSpec(
        epsg=DEMO_EPSG,
        bounds=demo_bounds([TILE.bounds]),
        year=YEAR,
        start=date(2024, 11, 1),
        end=date(2024, 11, 24),
    )
    archive = generate_demo_archive(spec, home / "archive")
    settings = demo_settings(DemoPaths(home), tile_size=64)
    settings.catalog.url = str(archive.catalog_dir)
    write_demo_checkpoint(DemoPaths(home).model, family="v2-nano", seed=0)
    c = settings.catalog
    manifest = build_manifest(
        TILE, YEAR, search_tile(catalog_from_settings(c), TILE, YEAR, c.collections())
    )
    assert manifest.counts().get("s2"), "the demo tile must have S2 scenes"
    rerun_partition(
        settings,
        TILE,
        YEAR,
        manifest,
        model_source=settings.inference.model_source,
        family="v2-nano",
    )
    cfg = home / "settings.json"
    cfg.write_text(settings.model_dump_json())
    return settings, cfg


def test_a_committed_partition_reproduces_bit_identically(live, tmp_path: Path) -> None:
    settings, _ = live
    report = reproduce(settings, TILE, YEAR, str(tmp_path / "scratch"))
    assert report.identical, report.summary()
    assert report.compared == list(CHAIN) and not report.not_compared
    scales = open_store("embeddings", settings).tile_array(TILE, YEAR, "scales")[:, :]
    assert np.isfinite(scales).sum() > 1000  # a real partition, not an empty one


def test_a_tampered_region_reports_its_first_difference(live, capsys) -> None:
    settings, cfg = live
    store = open_store("embeddings", settings)
    record = store.read_lineage(TILE, YEAR)
    ds = store.read_tile(TILE, YEAR)
    data = {name: ds[name].values.copy() for name in ds.data_vars}
    y, x = map(int, np.argwhere(np.isfinite(data["scales"]))[7])
    before = int(data["embeddings"][5, y, x])
    data["embeddings"][5, y, x] = before // 2 + 1
    data["embeddings_d16"][5, y, x] = before // 2 + 1
    data["embeddings_d4"] = data["embeddings"][:4]
    store.write_tile(
        TILE,
        YEAR,
        data,
        record.model_dump(
            exclude={
                "product",
                "tile",
                "zone",
                "year",
                "resolution_m",
                "schema_digest",
                "written_at",
                "slices",
                "variables",
            }
        ),
    )
    try:
        rc = main(["reproduce", TILE.id, str(YEAR), "--config", str(cfg), "--json"])
        out = json.loads(capsys.readouterr().out)
        assert rc == 1 and out["identical"] is False
        d = out["difference"]
        assert (d["product"], d["index"], d["live"], d["reproduced"], d["count"]) == (
            "embeddings",
            [5, y, x],
            before // 2 + 1,
            before,
            1,
        ), d
        assert d["variable"] in ("embeddings_d16", "embeddings")
    finally:
        data["embeddings"][5, y, x] = before
        data["embeddings_d16"][5, y, x] = before
        store.write_tile(
            TILE,
            YEAR,
            data,
            record.model_dump(
                exclude={
                    "product",
                    "tile",
                    "zone",
                    "year",
                    "resolution_m",
                    "schema_digest",
                    "written_at",
                    "slices",
                    "variables",
                }
            ),
        )


def test_inputs_other_than_the_recorded_ones_are_refused(live, tmp_path: Path) -> None:
    settings, _ = live
    other = settings.model_copy(
        update={"inference": settings.inference.model_copy(update={"batch_size": 7})}
    )
    with pytest.raises(ReproduceError, match="not the recorded configuration"):
        reproduce(other, TILE, YEAR, str(tmp_path / "s"))
    with pytest.raises(ReproduceError, match="not committed"):
        reproduce(settings, TILE, YEAR + 1, str(tmp_path / "s"))
    with pytest.raises(ReproduceError, match="scratch root"):
        reproduce(settings, TILE, YEAR, settings.root)
