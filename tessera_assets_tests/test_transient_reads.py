"""Transient versus permanent COG read errors (issue 10.4).

A download cut off once (``TIFFFillTile: Read error …; got N bytes``) is transient: the read is
retried under the project's RetryPolicy, and each retry fetches the file again instead of
reading GDAL's cached, cut-off bytes. Only a file that fails the same way after the retries is
unreadable, and its skip reason keeps GDAL's root error text. Tested against the loopback file
server with fault injection, with real Earth Search items over the Colorado test tile.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio.errors

from tessera_assets.ingest.cog_reading import ReadConfig
from tessera_assets.ingest.cubes import s2_cube
from tessera_assets.products.cubes import cube_schema
from tessera_assets.retry import describe, is_transient
from tessera_assets.sources.load_plan import load_plan
from tessera_assets.sources.manifest import SceneManifest, build_manifest
from tessera_assets.store.zone_store import ZoneStore
from tessera_assets_tests.stacapi.archive import LOCATIONS, ServedArchive, build_archive
from tessera_assets_tests.stacapi.faults import FaultPlan, file_server

pytestmark = [
    pytest.mark.filterwarnings("ignore:Could not parse bucket:UserWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]

TILE = next(loc for loc in LOCATIONS if loc.name == "colorado").tile
YEAR = 2024
DAYS = ("S2B_T13TDE_20240407T174209_L2A", "S2A_T13TDE_20240412T175055_L2A")
READ = ReadConfig(
    max_retry=2,
    retry_delay_s=0.05,
    timeout_s=5,
    day_retries=2,
    day_backoff_s=0.05,
    day_max_backoff_s=0.1,
)
CUT_OFF = "TIFFFillTile:Read error at row 0, col 0, tile 1; got 0 bytes, expected 5738"


@dataclass
class Served:
    archive: ServedArchive
    plan: FaultPlan


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("cogs")
    with file_server(root) as (url, plan):
        yield Served(build_archive(root, url, locations=["colorado"]), plan)


@pytest.fixture()
def plan(served: Served) -> Iterator[FaultPlan]:
    served.plan.clear()
    yield served.plan
    served.plan.clear()


_copies = count()


def _items(served: Served) -> list[pystac.Item]:
    """The two days' items with their COGs copied to new URLs: GDAL caches what it read, so
    each test reads bytes no earlier test fetched."""
    out = []
    tag = f"copy{next(_copies)}"
    for item_id in DAYS:
        doc = copy.deepcopy(served.archive.item(item_id))
        for band in load_plan(pystac.Item.from_dict(copy.deepcopy(doc))).bands:
            asset = doc["assets"][band.asset]
            src = served.archive.path_of(asset["href"])
            rel = f"{tag}/{src.relative_to(served.archive.root)}"
            (served.archive.root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, served.archive.root / rel)
            asset["href"] = f"{served.archive.base_url}/{rel}"
        out.append(pystac.Item.from_dict(doc))
    return out


def _manifest(items: list[pystac.Item]) -> SceneManifest:
    return build_manifest(TILE, YEAR, {items[0].collection_id: items})


def _route(served: Served, href: str) -> str:
    return href.removeprefix(served.archive.base_url)


def _clean(served: Served) -> np.ndarray:
    return s2_cube(_manifest(_items(served)), TILE, read=READ).compute()["bands"].values


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        (CUT_OFF, True),
        ("TIFFReadEncodedTile() failed.", True),
        ("nir.tif, band 1: IReadBlock failed at X offset 1, Y offset 0", True),
        ("HTTP response code: 404", False),
        ("'/vsicurl/x.tif' not recognized as being in a supported file format", False),
    ],
)
def test_cut_off_reads_are_transient(message: str, transient: bool) -> None:
    assert is_transient(rasterio.errors.RasterioIOError(message)) is transient


def test_describe_keeps_gdal_root_error_text() -> None:
    root = rasterio.errors.RasterioIOError(CUT_OFF)
    try:
        try:
            raise root
        except rasterio.errors.RasterioIOError as err:
            raise rasterio.errors.RasterioIOError(
                "Read failed. See previous exception for details."
            ) from err
    except rasterio.errors.RasterioIOError as outer:
        text = describe(outer, limit=120)
    assert text.endswith(f"RasterioIOError: {CUT_OFF}") and text.startswith("RasterioIOError")
    assert len(text) <= 120


# --------------------------------------------------------------------------- one cut-off download


@pytest.mark.parametrize("policy", ["fail", "skip"])
def test_a_download_cut_off_once_is_read_again(
    served: Served, plan: FaultPlan, tmp_path: Path, policy: str
) -> None:
    """One asset's only GET is cut off half way (the file is small enough to arrive in one
    request). With ``fail`` the partition is written; with ``skip`` nothing is skipped."""
    clean = _clean(served)
    items = _items(served)
    route = _route(served, items[0].assets["nir"].href)
    plan.push(route, "ok", "short")  # HEAD fine, then the download is cut off
    read = ReadConfig(**{**READ.__dict__, "on_unreadable": policy})
    cube = s2_cube(_manifest(items), TILE, read=read)
    store = ZoneStore(str(tmp_path / "store"), "s2_cube", cube_schema("s2_cube", [YEAR], TILE.size))
    lineage = {
        "manifest_digest": "m",
        "code_version": "t",
        "config_digest": "c",
        **{k.removeprefix("tessera:"): v for k, v in cube.attrs.items()},
    }
    record = store.write_tile(TILE, YEAR, cube, lineage)
    assert record.model_extra["skipped_scenes"] == []
    assert np.array_equal(store.read_tile(TILE, YEAR)["bands"].values, clean)
    gets = [s.action for s in plan.served(route, method="GET")]
    assert gets[0] == "short" and gets[-1] == "ok" and len(gets) >= 2  # fetched again


def test_a_truncated_file_is_unreadable_after_the_retries(served: Served, plan: FaultPlan) -> None:
    """The file itself is cut off: every attempt fetches it again and fails the same way, so
    the scene is skipped, with GDAL's own error and the number of attempts in the reason."""
    items = _items(served)
    href = items[0].assets["nir"].href
    path = served.archive.path_of(href)
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])
    read = ReadConfig(**{**READ.__dict__, "on_unreadable": "skip"})
    cube = s2_cube(_manifest(items), TILE, read=read)
    values = cube.compute()["bands"]
    (skip,) = cube.attrs["tessera:skipped_scenes"]
    assert (skip["item_id"], skip["asset"], skip["href"], skip["stage"]) == (
        items[0].id,
        "nir",
        href,
        "read",
    )
    assert "TIFFFillTile" in skip["reason"] or "TIFFReadEncodedTile" in skip["reason"]
    assert "failed 3 attempts" in skip["reason"]
    assert len(plan.served(_route(served, href), method="GET")) >= 3  # each attempt fetched
    assert values.sel(doy=int(items[1].properties["tessera:doy"])).values.any()
