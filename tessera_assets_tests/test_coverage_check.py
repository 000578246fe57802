"""A skip that empties a day or a partition must not look like success (issue 10.5).

With ``on_unreadable="skip"``, a partition whose every Sentinel-2 granule is unreadable used to
write all-zero slices, commit the region and pass every check. The blocking ``coverage`` check
of each cube now fails it (skipped fraction, emptied days, observed pixels; thresholds in
``settings.coverage``), Dagster does not run the downstream assets, and ``status`` shows the
skips. Real Earth Search items over the Colorado test tile, COGs on local files.
"""

from __future__ import annotations

import copy
import io
from pathlib import Path

import pystac
import pytest
from dagster import AssetKey, DagsterInstance
from rich.console import Console

from tessera_assets.cli.status import collect_status, render_status
from tessera_assets.config import CatalogSettings, CoverageSettings, PipelineSettings
from tessera_assets.defs import PIPELINE_JOB, build_definitions
from tessera_assets.defs.coverage_checks import audit_coverage
from tessera_assets.defs.partitions import TILES, partition_key
from tessera_assets.ingest.cog_reading import ReadConfig
from tessera_assets.ingest.cubes import s2_cube
from tessera_assets.ops.aoi_registry import AoiRecord
from tessera_assets.products.cubes import cube_schema
from tessera_assets.sources.manifest import SceneManifest, build_manifest
from tessera_assets.store.zone_store import ZoneStore
from tessera_assets_tests.stacapi.archive import LOCATIONS, ServedArchive, build_archive

pytestmark = [
    pytest.mark.filterwarnings("ignore:Could not parse bucket:UserWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]

TILE = next(loc for loc in LOCATIONS if loc.name == "colorado").tile
YEAR = 2024
DAYS = ("S2B_T13TDE_20240407T174209_L2A", "S2A_T13TDE_20240412T175055_L2A")
C1 = "sentinel-2-c1-l2a"
SKIP = ReadConfig(
    max_retry=1,
    retry_delay_s=0.05,
    day_retries=1,
    day_backoff_s=0.01,
    day_max_backoff_s=0.02,
    on_unreadable="skip",
)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> ServedArchive:
    root = tmp_path_factory.mktemp("cogs")
    return build_archive(root, root.as_uri(), locations=["colorado"])


def _truncate(archive: ServedArchive, item_id: str) -> None:
    """Cut the item's NIR COG to 40 % (header intact, tiles gone): unreadable for good."""
    doc = archive.item(item_id)
    path = archive.path_of(doc["assets"]["nir"]["href"])
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.4)])


def _manifest(archive: ServedArchive) -> SceneManifest:
    items = [pystac.Item.from_dict(copy.deepcopy(archive.item(i))) for i in DAYS]
    return build_manifest(TILE, YEAR, {C1: items})


def _written(archive: ServedArchive, tmp_path: Path) -> tuple[ZoneStore, SceneManifest]:
    manifest = _manifest(archive)
    store = ZoneStore(str(tmp_path), "s2_cube", cube_schema("s2_cube", [YEAR], TILE.size))
    cube = s2_cube(manifest, TILE, read=SKIP)
    lineage = {
        "manifest_digest": manifest.digest(),
        "code_version": "t",
        "config_digest": "c",
        **{k.removeprefix("tessera:"): v for k, v in cube.attrs.items()},
    }
    store.write_tile(TILE, YEAR, cube, lineage)
    return store, manifest


def test_a_readable_partition_passes(archive: ServedArchive, tmp_path: Path) -> None:
    store, manifest = _written(archive, tmp_path)
    outcome = audit_coverage(store, manifest, TILE, YEAR, CoverageSettings())
    assert outcome.passed, outcome.description
    assert outcome.metadata["skipped_scenes"] == 0
    assert outcome.metadata["observed_fraction"] > 0.3


def test_an_all_skipped_partition_fails_coverage(tmp_path: Path) -> None:
    archive = build_archive(tmp_path / "cogs", (tmp_path / "cogs").as_uri(), locations=["colorado"])
    for item_id in DAYS:
        _truncate(archive, item_id)
    store, manifest = _written(archive, tmp_path / "store")
    assert store.region_status(TILE, YEAR).complete  # committed: it used to look done
    outcome = audit_coverage(store, manifest, TILE, YEAR, CoverageSettings())
    assert not outcome.passed
    assert "2 of 2 s2 scenes skipped" in outcome.description
    assert "2 day(s) lost every granule" in outcome.description
    assert "only 0.0% of the tile observed" in outcome.description
    assert outcome.metadata["emptied_days"] == sorted(manifest.days("s2"))
    lenient = CoverageSettings(
        max_skipped_fraction=1.0, min_observed_fraction=0.0, allow_emptied_days=True
    )
    assert audit_coverage(store, manifest, TILE, YEAR, lenient).passed  # thresholds decide


def test_one_skipped_scene_of_two_is_over_the_default_threshold(tmp_path: Path) -> None:
    archive = build_archive(tmp_path / "cogs", (tmp_path / "cogs").as_uri(), locations=["colorado"])
    _truncate(archive, DAYS[0])
    store, manifest = _written(archive, tmp_path / "store")
    outcome = audit_coverage(store, manifest, TILE, YEAR, CoverageSettings())
    assert not outcome.passed and "1 of 2 s2 scenes skipped" in outcome.description
    assert outcome.metadata["observed_fraction"] > 0.3  # the other day still observed
    assert audit_coverage(
        store,
        manifest,
        TILE,
        YEAR,
        CoverageSettings(max_skipped_fraction=0.5, allow_emptied_days=True),
    ).passed


@pytest.mark.slow
def test_all_skipped_partition_fails_its_blocking_check_in_dagster(tmp_path: Path) -> None:
    """Through Dagster: ``s2_cube`` materialises (its region is committed), its coverage check
    fails, so ``s2_masked`` is not built; ``status`` shows the skips."""
    archive = build_archive(tmp_path / "cogs", (tmp_path / "cogs").as_uri(), locations=["colorado"])
    s2_items = sorted(
        {i for i, _ in archive.cogs["colorado"] if archive.item(i)["collection"] == C1}
    )
    for item_id in s2_items:  # every S2 scene of the tile-year
        _truncate(archive, item_id)
    settings = PipelineSettings(
        root=str(tmp_path / "data"),
        tile_size=TILE.size,
        years=[YEAR],
        coarse_resolution=160.0,
        catalog=CatalogSettings(
            kind="geoparquet",
            url=str(archive.parquet["earth-search"]),
            s2_collection=C1,
            s1_collection=None,
            landsat_collection=None,
            on_unreadable="skip",
            day_retries=0,
            read_retries=1,
            read_retry_delay_s=0.05,
        ),
    )
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TILES.name, [TILE.id])
    result = (
        build_definitions(settings)
        .resolve_job_def(PIPELINE_JOB)
        .execute_in_process(
            partition_key=partition_key(TILE, YEAR),
            instance=instance,
            raise_on_error=False,
            asset_selection=[AssetKey(a) for a in ("scene_manifest", "s2_cube", "s2_masked")],
        )
    )
    evaluations = {
        e.check_name: e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == AssetKey("s2_cube")
    }
    assert evaluations["region_complete"].passed  # the region was written and committed
    coverage = evaluations["coverage"]
    assert not coverage.passed
    assert f"{len(s2_items)} of {len(s2_items)} s2 scenes skipped" in coverage.description
    built = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "s2_cube" in built and "s2_masked" not in built
    assert not result.success

    manifest = SceneManifest.load(f"{settings.root}/scene_manifest/{TILE.id}/{YEAR}")
    n_scenes = manifest.counts()["s2"]
    assert n_scenes == len(s2_items) == 10
    record = AoiRecord(
        name="colorado", geometry={}, years=[YEAR], tile_size=TILE.size, tiles=[TILE.id]
    )
    statuses = collect_status(instance, [record], settings=settings)
    assert statuses[0].rows[0].skipped == n_scenes
    out = io.StringIO()
    render_status(statuses, Console(file=out, width=200))
    text = out.getvalue()
    assert f"{n_scenes} scene(s) skipped" in text and "tile-year(s) with skipped scenes" in text
