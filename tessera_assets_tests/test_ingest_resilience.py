"""Reading scenes when things go wrong: retries with backoff and jitter, transient vs permanent
errors, the unreadable-scene policy, and the store's commit protocol — a partition whose
slices fail to compute is never reported as written.

Real fixture items with their assets on local COGs (``file://``) on their own grids.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio.errors

from tessera_assets.grid import Tile
from tessera_assets.ingest import cubes as ingest
from tessera_assets.ingest.cog_reading import ReadConfig
from tessera_assets.ingest.cubes import IngestError, s2_cube
from tessera_assets.products.cubes import cube_schema
from tessera_assets.retry import is_transient, retry
from tessera_assets.sources.load_plan import load_plan
from tessera_assets.sources.manifest import SceneManifest, build_manifest
from tessera_assets.store.zone_store import ZoneStore
from tessera_assets_tests.stacapi.archive import LOCATIONS, ServedArchive, build_archive

pytestmark = [pytest.mark.filterwarnings("ignore:Could not parse bucket:UserWarning"),
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")]

TILE: Tile = next(loc for loc in LOCATIONS if loc.name == "colorado").tile
YEAR = 2024
DAYS = ("S2B_T13TDE_20240407T174209_L2A", "S2A_T13TDE_20240412T175055_L2A")
READ = ReadConfig(max_retry=1, retry_delay_s=0.05, day_retries=2, day_backoff_s=0.01,
                  day_max_backoff_s=0.02)
LINEAGE = {"manifest_digest": "m", "code_version": "test", "config_digest": "c"}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> ServedArchive:
    root = tmp_path_factory.mktemp("cogs")
    return build_archive(root, root.as_uri(), locations=["colorado"])


def _items(archive: ServedArchive, tmp_path: Path) -> list[pystac.Item]:
    """The two days' items with their COGs copied into ``tmp_path`` (tests may break them)."""
    out = []
    for item_id in DAYS:
        doc = copy.deepcopy(archive.item(item_id))
        for band in load_plan(pystac.Item.from_dict(copy.deepcopy(doc))).bands:
            src = archive.path_of(doc["assets"][band.asset]["href"])
            dst = tmp_path / item_id / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
            doc["assets"][band.asset]["href"] = dst.as_uri()
        out.append(pystac.Item.from_dict(doc))
    return out


def _manifest(items: list[pystac.Item]) -> SceneManifest:
    manifest = build_manifest(TILE, YEAR, {"sentinel-2-c1-l2a": items})
    assert manifest.counts()["s2"] == 2 and len(manifest.days("s2")) == 2
    return manifest


def _truncate(item: pystac.Item, key: str = "nir") -> str:
    path = Path(item.assets[key].href.removeprefix("file://"))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.4)])  # header intact, tiles cut off
    return item.assets[key].href


def _store(tmp_path: Path) -> ZoneStore:
    return ZoneStore(str(tmp_path / "store"), "s2_cube", cube_schema("s2_cube", [YEAR], TILE.size))


def _lineage(ds) -> dict:
    """What the cube IO manager hands the store: the ``tessera:*`` attributes, unprefixed
    (values by reference, as the IO manager passes them)."""
    attrs = {k.removeprefix("tessera:"): v for k, v in ds.attrs.items() if k.startswith("tessera:")}
    return {**LINEAGE, **attrs}


# --------------------------------------------------------------------------- retry policy


def test_retry_backs_off_exponentially_with_jitter() -> None:
    sleeps: list[float] = []
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise rasterio.errors.RasterioIOError("HTTP response code: 503")
        return "ok"

    assert retry(flaky, attempts=5, backoff_s=1.0, max_backoff_s=3.0, sleep=sleeps.append,
                 rng=random.Random(1)) == "ok"
    assert len(calls) == 4 and len(sleeps) == 3
    for n, delay in enumerate(sleeps):
        nominal = min(3.0, 2.0**n)
        assert 0.5 * nominal <= delay < 1.5 * nominal
    calls.clear()
    with pytest.raises(rasterio.errors.RasterioIOError, match="503"):
        retry(flaky, attempts=2, backoff_s=0.0, sleep=sleeps.append)
    assert len(calls) == 2


def test_permanent_errors_are_not_retried() -> None:
    calls = []

    def missing() -> None:
        calls.append(1)
        raise rasterio.errors.RasterioIOError("HTTP response code: 404")

    with pytest.raises(rasterio.errors.RasterioIOError):
        retry(missing, attempts=5, backoff_s=0.0, sleep=lambda s: None)
    assert calls == [1]


@pytest.mark.parametrize(("message", "transient"), [
    ("HTTP response code: 503", True),
    ("HTTP response code: 429", True),
    ("Operation timed out after 1000 milliseconds", True),
    ("transfer closed with 1000 bytes remaining to read", True),
    ("Recv failure: Connection reset by peer", True),
    ("Empty reply from server", True),
    ("HTTP response code: 404", False),
    ("HTTP response code: 403", False),
    ("'/vsicurl/x.tif' not recognized as being in a supported file format", False),
    ("x.tif: No such file or directory", False),
    ("TIFFReadEncodedTile() failed.", True),  # a cut-off transfer (issue 10.4)
])
def test_transient_or_permanent(message: str, transient: bool) -> None:
    assert is_transient(RuntimeError(message)) is transient
    wrapped = IngestError("reading failed")
    wrapped.__cause__ = rasterio.errors.RasterioIOError(message)
    assert is_transient(wrapped) is transient


# --------------------------------------------------------------------------- a day's load


def test_a_days_load_is_retried_after_transient_errors(
    archive: ServedArchive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _manifest(_items(archive, tmp_path))
    clean = s2_cube(manifest, TILE, read=READ).compute()["bands"].values
    real_load = ingest.read_assets
    failures = {"left": 2}

    def flaky_load(*args, **kwargs):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise rasterio.errors.RasterioIOError("HTTP response code: 503 (injected)")
        return real_load(*args, **kwargs)

    monkeypatch.setattr(ingest, "read_assets", flaky_load)
    again = s2_cube(manifest, TILE, read=READ).compute()["bands"].values
    assert failures["left"] == 0 and np.array_equal(again, clean)
    failures["left"] = 100  # more than the retries: the scene is named, the load fails
    with pytest.raises(IngestError, match=r"cannot read item S2[AB]_T13TDE_202404(07|12)T\d+_L2A "
                                          r"asset 'red' .*HTTP response code: 503"):
        s2_cube(manifest, TILE, read=READ).compute()


# --------------------------------------------------------------------------- the policy


def test_fail_policy_names_the_scene_before_anything_is_written(
    archive: ServedArchive, tmp_path: Path
) -> None:
    items = _items(archive, tmp_path)
    gone = Path(items[1].assets["rededge2"].href.removeprefix("file://"))
    gone.unlink()
    store = _store(tmp_path)
    with pytest.raises(IngestError) as err:
        s2_cube(_manifest(items), TILE, read=READ)  # the header check, before any slice
    assert f"item {items[1].id} asset 'rededge2' ({gone.as_uri()})" in str(err.value)
    assert "on_unreadable='fail'" in str(err.value)
    assert store.read_lineage(TILE, YEAR) is None


def test_a_failed_rewrite_keeps_the_committed_region(archive: ServedArchive, tmp_path: Path
                                                     ) -> None:
    """The partition was written once; a re-run whose slices fail to compute (a truncated
    COG, found only when its tiles are read) fails while staging, before the committed region
    is touched: the old region stays committed and byte-identical (issue 13.4)."""
    items = _items(archive, tmp_path)
    store = _store(tmp_path)
    first = s2_cube(_manifest(items), TILE, read=READ)
    store.write_tile(TILE, YEAR, first, _lineage(first))
    assert store.region_status(TILE, YEAR).complete
    before = store.read_lineage(TILE, YEAR)
    kept = store.read_tile(TILE, YEAR)["bands"].values.copy()
    href = _truncate(items[0])
    cube = s2_cube(_manifest(items), TILE, read=READ)  # headers still open fine
    with pytest.raises(IngestError, match=rf"cannot read item {items[0].id} asset 'nir' \({href}\)"):
        store.write_tile(TILE, YEAR, cube, _lineage(cube))
    status = store.region_status(TILE, YEAR)
    assert status.committed and status.complete
    assert store.read_lineage(TILE, YEAR) == before
    assert (store.read_tile(TILE, YEAR)["bands"].values == kept).all()


def test_skip_policy_records_the_scene_in_the_lineage(archive: ServedArchive, tmp_path: Path
                                                      ) -> None:
    items = _items(archive, tmp_path)
    href = _truncate(items[0])
    store = _store(tmp_path)
    cube = s2_cube(_manifest(items), TILE, read=ReadConfig(**{**READ.__dict__,
                                                              "on_unreadable": "skip"}))
    assert cube.attrs["tessera:skipped_scenes"] == []  # found only when the slice is computed
    record = store.write_tile(TILE, YEAR, cube, _lineage(cube))
    skipped = record.model_extra["skipped_scenes"]
    assert [(s["item_id"], s["asset"], s["href"], s["stage"]) for s in skipped] == [
        (items[0].id, "nir", href, "read")]
    assert "RasterioIOError" in skipped[0]["reason"]
    assert record.model_extra["on_unreadable"] == "skip"
    assert store.read_lineage(TILE, YEAR).model_extra["skipped_scenes"] == skipped
    data = store.read_tile(TILE, YEAR)["bands"]
    day_skipped = int(items[0].properties["tessera:doy"])
    day_kept = int(items[1].properties["tessera:doy"])
    assert not data.sel(doy=day_skipped).values.any()  # the day holds no data, visibly
    assert data.sel(doy=day_kept).values.any()
