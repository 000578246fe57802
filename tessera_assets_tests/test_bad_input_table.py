"""The bad-input table of docs/operations.md (§4 "Bad input table", issue 14 item 4): one test
per row not proven elsewhere. Each gives the input as a user would (the CLI, the settings, a
run's start, a store read), asserts the one-line error and proves that nothing was written:
no AOI record or tile partition, no run, no file under the store root, or (a corrupt shard)
every other file byte-identical.
"""

from __future__ import annotations

import copy
import hashlib
import shutil
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from pathlib import Path

import pystac
import pytest
from dagster import AssetKey, DagsterInstance, build_input_context

from tessera_assets.aoi import AoiError, load_aoi
from tessera_assets.catalog.base import CatalogError
from tessera_assets.catalog.stac_api import StacApiCatalog
from tessera_assets.cli.main import main
from tessera_assets.config import CONFIG_ENV, PipelineSettings
from tessera_assets.defs import PIPELINE_JOB, build_definitions
from tessera_assets.defs.checks import audit_completeness
from tessera_assets.defs.io_managers import ZoneStoreIOManager
from tessera_assets.defs.partitions import TILES, partition_key, tile_year_partitions
from tessera_assets.defs.resources import PipelineResource
from tessera_assets.ingest.cog_reading import ReadConfig
from tessera_assets.ingest.cubes import IngestError, s2_cube
from tessera_assets.model import write_demo_checkpoint
from tessera_assets.model.sources import sha256_file
from tessera_assets.ops.aoi_registry import AoiRegistry
from tessera_assets.ops.preflight import PreflightError, preflight
from tessera_assets.products.cubes import cube_schema
from tessera_assets.products.registry import open_store
from tessera_assets.sources.load_plan import load_plan
from tessera_assets.sources.manifest import build_manifest
from tessera_assets.store import RegionIntegrityError
from tessera_assets.store.zone_store import ZoneStore
from tessera_assets_tests import partition_kit as kit
from tessera_assets_tests.fixtures import one_line as _one_line
from tessera_assets_tests.stacapi.archive import LOCATIONS, ServedArchive, build_archive
from tessera_assets_tests.stacapi.faults import file_server

pytestmark = [
    pytest.mark.filterwarnings("ignore:Could not parse bucket:UserWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]

TILE = "32630_64_995_5683"


def _files(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its sha256 (empty when ``root`` does not exist)."""
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def dagster_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One instance for the module (creating one costs seconds); tests compare its
    partitions and runs before and after."""
    path = tmp_path_factory.mktemp("dagster")
    (path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    DagsterInstance.from_config(str(path)).dispose()  # creates the tables once
    return path


@pytest.fixture()
def home(tmp_path: Path, dagster_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A settings file (root ``data``, 64 px tiles, 2023-2024) and the module's DAGSTER_HOME."""
    settings = PipelineSettings(root=str(tmp_path / "data"), tile_size=64, years=[2023, 2024])
    monkeypatch.setenv(CONFIG_ENV, str(settings.save(tmp_path / "tessera.json")))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    return tmp_path


def _instance_state() -> tuple[set[str], set[str]]:
    """The tile partitions and run ids of $DAGSTER_HOME's instance (the CLI's)."""
    instance = DagsterInstance.get()
    return set(instance.get_dynamic_partitions(TILES.name)), {r.run_id for r in instance.get_runs()}


# --------------------------------------------------------------------------- AOIs and years

BOW_TIE = '{"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}'
ACROSS_180 = (
    '{"type": "Polygon", "coordinates": [[[179.5, -17], [-179.5, -17], [-179.5, -16], '
    "[179.5, -16], [179.5, -17]]]}"
)
PROJECTED = (
    '{"type": "Polygon", "coordinates": [[[500000, 5700000], [501000, 5700000], '
    '[501000, 5701000], [500000, 5700000]]], "crs": {"type": "name", "properties": '
    '{"name": "urn:ogc:def:crs:EPSG::32630"}}}'
)
AFRICA = "-18,-35,52,38"
SMALL = "-1.02,51.99,-0.98,52.01"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["POLYGON EMPTY", "--years", "2024"], "AOI geometry is empty"),
        ([BOW_TIE, "--years", "2024"], "AOI geometry is invalid: Self-intersection[0.5 0.5]"),
        ([ACROSS_180, "--years", "2024"], "it probably crosses the antimeridian; split it at"),
        ([AFRICA, "--years", "2024"], "more than the 1,000,000 km² one request may cover"),
        (["10,50,11,51", "--years", "2024"], "more than the 10,000 one request may add"),
        (["10,84,11,86", "--years", "2024"], "polar areas are not supported"),
        (["1,2,3", "--years", "2024"], "is neither GeoJSON, WKT nor a 'minx,miny,maxx,maxy'"),
        ([PROJECTED, "--years", "2024"], "GeoJSON is lon/lat (RFC 7946)"),
        ([SMALL, "--years", "1999"], "years [1999] are not in the configured year range"),
        ([SMALL, "--years", "3000"], "years [3000] are not in the configured year range"),
        ([SMALL, "--years", "abc"], "years 'abc': 'abc' is not a year (write e.g. 2024"),
        ([SMALL, "--years", "2024", "--name", "bad name!"], "AOI name 'bad name!' must be"),
    ],
    ids=[
        "empty",
        "bow-tie",
        "antimeridian-polygon",
        "africa",
        "too-many-tiles",
        "polar",
        "garbage",
        "projected-geojson",
        "year-1999",
        "year-3000",
        "years-abc",
        "bad-name",
    ],
)
def test_bad_aoi_is_refused_and_nothing_registered(
    home: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    instance_before = _instance_state()
    started = time.perf_counter()
    assert main(["aoi", "add", "--", *argv]) == 2
    assert time.perf_counter() - started < 60  # a continent is refused, not enumerated
    line = _one_line(capsys.readouterr().out)
    assert line.startswith("error: ") and message in line
    assert _files(home / "data") == {}
    assert AoiRegistry(str(home / "data")).list() == []
    assert _instance_state() == instance_before


def test_continent_is_refused_from_its_area_at_once() -> None:
    """All of Africa (~59 million km²): the area bound refuses it before any tile is
    enumerated (at 64 px that would be ~1.4 billion tiles)."""
    started = time.perf_counter()
    with pytest.raises(AoiError, match=r"AOI covers 5\d,\d{3},\d{3} km², more than the"):
        load_aoi(AFRICA)
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    ("spec", "zones"),
    [("179.98,-17,-179.98,-16.99", {32601, 32660}), ("-0.02,52,0.02,52.01", {32630, 32631})],
    ids=["antimeridian-bbox", "two-zones"],
)
def test_aoi_across_zones_gets_tiles_in_each_and_writes_only_its_record(
    home: Path, capsys: pytest.CaptureFixture[str], spec: str, zones: set[int]
) -> None:
    partitions, runs = _instance_state()
    assert main(["aoi", "add", "--", spec, "--years", "2024", "--name", "edge"]) == 0
    capsys.readouterr()
    [record] = AoiRegistry(str(home / "data")).list()
    assert {int(t.split("_")[0]) for t in record.tiles} == zones
    assert all(t.zone in {z % 100 for z in zones} for t in record.tile_objects())
    assert list(_files(home / "data")) == ["aois/edge.json"]
    assert _instance_state() == (partitions | set(record.tiles), runs)


# --------------------------------------------------------------------------- tile ids, AOI names


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tile", "nonsense", "--year", "2024"], "not a tile id: 'nonsense' (expected"),
        (["--aoi", "nosuch"], "no AOI named 'nosuch'; registered: []"),
    ],
    ids=["garbage-tile-id", "unknown-aoi"],
)
def test_materialize_of_nothing_known_starts_no_run(
    home: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    instance_before = _instance_state()
    assert main(["materialize", *argv]) == 2
    line = _one_line(capsys.readouterr().out)
    assert message in line
    assert _files(home / "data") == {}
    assert _instance_state() == instance_before


# --------------------------------------------------------------------------- model checkpoints


def _run_start(settings: PipelineSettings) -> tuple[bool, str, bool]:
    """Run the whole job of one tile-year in process: (success, failure text, any step
    started)."""
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TILES.name, [TILE])
    result = (
        build_definitions(settings)
        .resolve_job_def(PIPELINE_JOB)
        .execute_in_process(
            partition_key=partition_key(TILE, 2024), instance=instance, raise_on_error=False
        )
    )
    texts = []
    for ev in result.all_events:
        error = getattr(ev.event_specific_data, "error", None)
        if error is not None:
            texts.append((error.cause or error).message)
    return result.success, " ".join(texts), any(e.is_step_start for e in result.all_events)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_checkpoint(tmp_path_factory.mktemp("model") / "v2-nano.pt")


def _model_settings(tmp_path: Path, source: Path, **inference: str) -> PipelineSettings:
    return PipelineSettings(
        root=str(tmp_path / "data"),
        tile_size=64,
        years=[2024],
        inference={"model_source": str(source), "family": "v2-nano", **inference},
    )


def test_corrupt_checkpoint_stops_the_run_before_any_write(tmp_path: Path) -> None:
    model = tmp_path / "model.pt"
    model.write_bytes(b"\x00garbage" + bytes(range(256)) * 64)  # random bytes, no header
    ok, text, stepped = _run_start(_model_settings(tmp_path, model))
    assert not ok and not stepped
    assert f"inference.model_source: {model} is not a PyTorch checkpoint (it starts with" in text
    lines = [line for line in text.splitlines() if "inference.model_source" in line]
    assert lines and all(line.endswith("an hf:// or an fsspec URL") for line in lines)
    assert _files(tmp_path / "data") == {}


def test_truncated_checkpoint_is_refused_at_preflight(tmp_path: Path, checkpoint: Path) -> None:
    cut = tmp_path / "cut.pt"
    cut.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    with pytest.raises(PreflightError) as err:
        preflight(_model_settings(tmp_path, cut), needs_model=True)
    assert f"{cut} is a damaged torch.save archive (truncated or corrupt)" in str(err.value)
    assert "\n" not in str(err.value)
    preflight(_model_settings(tmp_path, checkpoint), needs_model=True)  # the whole file passes
    assert _files(tmp_path / "data") == {}


def test_wrong_sha256_stops_the_run_before_any_write(tmp_path: Path, checkpoint: Path) -> None:
    wrong = "0" * 64
    ok, text, stepped = _run_start(_model_settings(tmp_path, checkpoint, model_sha256=wrong))
    assert not ok and not stepped
    actual = sha256_file(checkpoint)
    assert f"inference.model_sha256: sha256 of {checkpoint} is {actual}, expected {wrong}" in text
    assert _files(tmp_path / "data") == {}


# --------------------------------------------------------------------------- COGs

COLORADO = next(loc for loc in LOCATIONS if loc.name == "colorado").tile
DAYS = ("S2B_T13TDE_20240407T174209_L2A", "S2A_T13TDE_20240412T175055_L2A")
FAIL = ReadConfig(
    max_retry=1,
    retry_delay_s=0.05,
    timeout_s=5,
    day_retries=1,
    day_backoff_s=0.05,
    day_max_backoff_s=0.1,
)
_copies = count()


@pytest.fixture(scope="module")
def cogs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedArchive]:
    root = tmp_path_factory.mktemp("cogs")
    with file_server(root) as (url, _plan):
        yield build_archive(root, url, locations=["colorado"])


def _served_items(archive: ServedArchive) -> list[pystac.Item]:
    """The two days' items with their COGs copied to new URLs (a test may break them; GDAL
    caches what it read, so no earlier test's bytes are reused)."""
    out, tag = [], f"copy{next(_copies)}"
    for item_id in DAYS:
        doc = copy.deepcopy(archive.item(item_id))
        for band in load_plan(pystac.Item.from_dict(copy.deepcopy(doc))).bands:
            asset = doc["assets"][band.asset]
            src = archive.path_of(asset["href"])
            rel = f"{tag}/{src.relative_to(archive.root)}"
            (archive.root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, archive.root / rel)
            asset["href"] = f"{archive.base_url}/{rel}"
        out.append(pystac.Item.from_dict(doc))
    return out


@pytest.mark.parametrize("how", ["missing", "truncated"])
def test_unreadable_cog_fails_the_cube_and_writes_nothing(
    cogs: ServedArchive, tmp_path: Path, how: str
) -> None:
    """HTTP 404 (found by the header check, before the cube exists) or a COG cut to 40 %
    (found while its tiles are read, i.e. while the store stages the region): the partition
    fails naming item and asset, and the store holds no shard and no record of the tile."""
    items = _served_items(cogs)
    href = items[0].assets["nir"].href
    path = cogs.path_of(href)
    if how == "missing":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.4)])
    manifest = build_manifest(COLORADO, 2024, {items[0].collection_id: items})
    store = ZoneStore(
        str(tmp_path / "store"), "s2_cube", cube_schema("s2_cube", [2024], COLORADO.size)
    )
    with pytest.raises(IngestError) as err:
        cube = s2_cube(manifest, COLORADO, read=FAIL)
        store.write_tile(
            COLORADO,
            2024,
            cube,
            {"manifest_digest": "m", "code_version": "t", "config_digest": "c"},
        )
    message = str(err.value)
    assert f"item {items[0].id} asset 'nir' ({href})" in message
    assert ("HTTP response code: 404" in message) == (how == "missing")
    assert store.read_lineage(COLORADO, 2024) is None
    assert not store.region_status(COLORADO, 2024).committed
    # At most the zone's empty layout (coordinates, metadata): no shard, record or staging.
    skeleton = ZoneStore(str(tmp_path / "skeleton"), "s2_cube", store.schema)
    skeleton.ensure_zone(COLORADO.zone)
    assert set(_files(tmp_path / "store")) <= set(_files(tmp_path / "skeleton"))


# --------------------------------------------------------------------------- unreachable catalog


def _closed_port(host: str = "127.0.0.1") -> int:
    probe = ThreadingHTTPServer((host, 0), BaseHTTPRequestHandler)
    port = probe.server_address[1]
    probe.server_close()  # nothing listens there any more: connections are refused
    return port


def test_refused_connections_wait_only_the_configured_retries() -> None:
    """Each attempt is one connection: urllib3 does not retry it again inside (which made a
    closed port take 86 s with the default settings)."""
    waits: list[float] = []
    cat = StacApiCatalog(
        f"http://127.0.0.1:{_closed_port()}",
        max_retries=2,
        backoff=2.0,
        timeout=2,
        sleep=waits.append,
        seed=0,
    )
    started = time.perf_counter()
    with pytest.raises(CatalogError, match=r"failed after 3 attempts \(opening the API"):
        cat.search(collections=["c"], bbox=(-1, 51, 0, 52), start="2024-03-01", end="2024-03-02")
    assert len(waits) == 2  # the policy's two backoffs, nothing else
    assert time.perf_counter() - started < 3


def test_unreachable_catalog_stops_materialize_before_any_write(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = PipelineSettings.load()
    catalog = {
        "kind": "stac-api",
        "url": f"http://127.0.0.2:{_closed_port('127.0.0.2')}",
        "search_retries": 1,
        "search_timeout_s": 2,
    }
    settings = settings.model_copy(update={"catalog": settings.catalog.model_validate(catalog)})
    settings.save(home / "tessera.json")
    assert main(["aoi", "add", "--", SMALL, "--years", "2024", "--name", "ely"]) == 0
    capsys.readouterr()
    before, instance_before = _files(home / "data"), _instance_state()
    tile = AoiRegistry(str(home / "data")).get("ely").tiles[0]
    started = time.perf_counter()
    assert main(["materialize", "--tile", tile, "--year", "2024"]) == 2
    assert time.perf_counter() - started < 30
    line = _one_line(capsys.readouterr().out)
    assert "failed after 2 attempts (opening the API; timeout 2.0 s each)" in line
    assert "Connection refused" in line
    assert _files(home / "data") == before  # only the AOI record
    assert _instance_state() == instance_before


# --------------------------------------------------------------------------- a corrupt shard


def test_corrupt_shard_is_refused_and_nothing_else_changes(tmp_path: Path) -> None:
    root = str(tmp_path)
    for product in ("s2_cube", "embeddings"):
        for i, tile in enumerate(kit.TILES):
            kit.write_product(root, product, tile, 2023, seed=10 + i)
    tile = kit.TILES[0]
    store = open_store("embeddings", kit.settings(root))
    key = store.read_lineage(tile, 2023).variables["embeddings"].shards[0]
    shard = tmp_path / "embeddings.zarr" / key
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    before = _files(tmp_path)

    outcome = audit_completeness(store, tile, 2023)  # the region_complete check
    assert not outcome.passed and f"{key}: content hash mismatch" in outcome.description
    with pytest.raises(RegionIntegrityError, match="content hash mismatch"):
        store.read_tile(tile, 2023)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TILES.name, [tile.id])
    manager = ZoneStoreIOManager(
        pipeline=PipelineResource(settings_json=kit.settings(root).model_dump_json()),
        product="embeddings",
    )
    context = build_input_context(
        asset_key=AssetKey("embeddings"),
        instance=instance,
        partition_key=str(partition_key(tile, 2023)),
        asset_partitions_def=tile_year_partitions(kit.YEARS),
    )
    with pytest.raises(RegionIntegrityError, match="re-materialize the partition"):
        manager.load_input(context)  # what embeddings_coarse would read
    assert audit_completeness(store, kit.TILES[1], 2023).passed
    assert _files(tmp_path) == before  # refused reads repair, delete and rewrite nothing
