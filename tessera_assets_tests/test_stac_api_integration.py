"""Against real STAC API servers on loopback (stac-fastapi-geoparquet, started by the tests in
their own interpreter), serving the real fixture items with their assets rewritten to local
COGs on the items' own grids (see ``stacapi/archive.py``):

* the same scene manifests (digest, ids, decisions) and identical raw cubes from the STAC API
  as from the stac-geoparquet backend, per catalog and location, and through Dagster;
* searches through a fault-injecting proxy (5xx bursts, slow responses, truncated and cut-off
  bodies) are retried, or fail with a clear error and no partial result;
* COG reads behind a fault-injecting file server (5xx bursts, slow and cut-off transfers, a
  truncated COG, a missing asset) are retried, or the scene is named (item id and asset) and
  then skipped and recorded, or fails the partition, per ``on_unreadable``.
"""

from __future__ import annotations

import copy
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
import xarray as xr

from tessera_assets.catalog.base import CatalogError
from tessera_assets.catalog.duckdb_extensions import duckdb_extension_directory
from tessera_assets.catalog.geoparquet import GeoparquetCatalog
from tessera_assets.catalog.stac_api import StacApiCatalog
from tessera_assets.ingest.cog_reading import ReadConfig, read_env
from tessera_assets.ingest.cubes import IngestError, landsat_cube, s1_cube, s2_cube
from tessera_assets.ingest.prepared_cubes import s2_masked
from tessera_assets.sources.load_plan import load_plan
from tessera_assets.sources.manifest import SceneManifest, build_manifest, search_tile
from tessera_assets_tests.stacapi.archive import LOCATIONS, ServedArchive, build_archive
from tessera_assets_tests.stacapi.faults import FaultPlan, file_server, stac_proxy
from tessera_assets_tests.stacapi.servers import stac_apis

pytestmark = [pytest.mark.filterwarnings("ignore:Could not parse bucket:UserWarning"),
              pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")]

LOC = {loc.name: loc for loc in LOCATIONS}
FAST_READS = ReadConfig(max_retry=3, retry_delay_s=0.05, timeout_s=5, day_retries=1,
                        day_backoff_s=0.05)
C1 = "sentinel-2-c1-l2a"


@dataclass
class Served:
    work: Path
    archive: ServedArchive
    apis: dict[str, str]
    proxy: str
    proxy_plan: FaultPlan
    cog_plan: FaultPlan
    extensions: Path
    _geoparquet: dict[str, GeoparquetCatalog] = field(default_factory=dict)

    def geoparquet(self, catalog: str) -> GeoparquetCatalog:
        """The same catalog through rustac's DuckDB (one client per catalog, kept open)."""
        if catalog not in self._geoparquet:
            self._geoparquet[catalog] = GeoparquetCatalog(self.archive.parquet[catalog],
                                                          extension_directory=self.extensions)
        return self._geoparquet[catalog]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    work = tmp_path_factory.mktemp("stacapi")
    files = work / "files"
    files.mkdir()
    with file_server(files) as (cog_url, cog_plan):
        archive = build_archive(files, cog_url)
        ext = duckdb_extension_directory(work / "duckdb-extensions")
        with stac_apis(archive.parquet, ext, work) as apis, \
                stac_proxy(apis["earth-search"]) as (proxy, proxy_plan):
            yield Served(work, archive, apis, proxy, proxy_plan, cog_plan, ext)


def _api(url: str, **kw: Any) -> StacApiCatalog:
    return StacApiCatalog(url, backoff=0.05, max_backoff=0.2, seed=0, **kw)


def _cubes(manifest: SceneManifest, loc: str, read: ReadConfig = FAST_READS
           ) -> dict[str, np.ndarray]:
    tile = LOC[loc].tile
    return {name: fn(manifest, tile, read=read).compute()[var].values
            for name, fn, var in (("s2", s2_cube, "bands"), ("s1", s1_cube, "backscatter"),
                                  ("landsat", landsat_cube, "bands"))}


# --------------------------------------------------------------------------- parity


def test_every_fixture_item_is_served_with_the_same_load_plan(served: Served) -> None:
    """All 39 real items, per catalog: the API returns exactly what stac-geoparquet holds,
    and every item's load plan (asset keys, scale/offset, decisions) is the same."""
    total = 0
    for catalog, docs in served.archive.items.items():
        collections = sorted({d["collection"] for d in docs})
        args = dict(collections=collections, bbox=(-180, -85, 180, 85), start="2015-01-01",
                    end="2026-12-31")
        api = _api(served.apis[catalog], page_size=7).search(**args)  # several pages
        gp = served.geoparquet(catalog).search(**args)
        assert sorted(i.id for i in api) == sorted(i.id for i in gp) == sorted(
            d["id"] for d in docs)
        for a, g in zip(api, gp, strict=True):
            pa, pg = load_plan(a), load_plan(g)
            assert (pa.record(), pa.day, pa.boa_offset, pa.orbit) == (
                pg.record(), pg.day, pg.boa_offset, pg.orbit), a.id
        total += len(api)
    assert total == 39

SCENARIOS = [
    # (location, catalog, year, sensor → collection, expected counts, expected duplicates)
    ("colorado", "earth-search", 2024, {"s2": C1, "landsat": "landsat-c2-l2"},
     {"s2": 10, "s1": 0, "landsat": 0}, 0),
    ("colorado", "earth-search", 2023, {"s2": "sentinel-2-l2a", "landsat": "landsat-c2-l2"},
     {"s2": 1, "s1": 0, "landsat": 1}, 0),
    ("colorado", "planetary-computer", 2024,
     {"s2": "sentinel-2-l2a", "s1": "sentinel-1-rtc", "landsat": "landsat-c2-l2"},
     {"s2": 2, "s1": 0, "landsat": 0}, 0),
    ("antarctic", "earth-search", 2025, {"s2": "sentinel-2-l2a", "s2-c1": C1},
     {"s2": 1, "s1": 0, "landsat": 0}, 1),
    ("iowa", "asf", 2024, {"s1": "OPERA_L2_RTC-S1_V1_1"}, {"s2": 0, "s1": 1, "landsat": 0}, 0),
    ("libya", "planetary-computer", 2024, {"s1": "sentinel-1-rtc"},
     {"s2": 0, "s1": 1, "landsat": 0}, 0),
    ("austria", "cdse", 2025, {"s2": "sentinel-2-l2a"}, {"s2": 1, "s1": 0, "landsat": 0}, 0),
    ("coral-sea", "usgs", 2023, {"landsat": "landsat-c2l2-sr"},
     {"s2": 0, "s1": 0, "landsat": 1}, 0),
]


@pytest.mark.parametrize(("loc", "catalog", "year", "collections", "counts", "dups"), SCENARIOS,
                         ids=[f"{s[0]}-{s[1]}-{s[2]}" for s in SCENARIOS])
def test_stac_api_and_geoparquet_give_the_same_manifest_and_cubes(
    served: Served, loc: str, catalog: str, year: int, collections: dict[str, str],
    counts: dict[str, int], dups: int,
) -> None:
    tile = LOC[loc].tile
    runs = {}
    for name, cat in (("api", _api(served.apis[catalog])),
                      ("geoparquet", served.geoparquet(catalog))):
        manifest = build_manifest(tile, year, search_tile(cat, tile, year, collections))
        runs[name] = (manifest, _cubes(manifest, loc))
    (api, api_cubes), (gp, gp_cubes) = runs["api"], runs["geoparquet"]
    assert api.counts() == gp.counts() == counts
    assert len(api.duplicates) == len(gp.duplicates) == dups
    assert [i.id for i in api.items] == [i.id for i in gp.items]
    assert {i.id for i in api.items} <= {i for i, _ in served.archive.cogs[loc]}
    for a, g in zip(api.items, gp.items, strict=True):
        decisions = {k: v for k, v in a.properties.items() if k.startswith("tessera:")}
        assert decisions == {k: v for k, v in g.properties.items() if k.startswith("tessera:")}
    assert api.digest() == gp.digest()
    for sensor, n in counts.items():
        a, g = api_cubes[sensor], gp_cubes[sensor]
        assert a.shape == g.shape and a.dtype == g.dtype
        assert np.array_equal(a, g, equal_nan=True), sensor
        if n:  # real data arrived: valid pixels, some nodata where the granules' strips are
            values = np.nan_to_num(a.astype(np.float64))
            assert 0.2 < np.count_nonzero(values) / values.size < 1.0, sensor


def test_cube_pixels_are_the_cog_pixels(served: Served) -> None:
    """Georeferencing: the tile grid is aligned with the 10 m S2 grid, so a clear pixel of the
    cube is exactly the COG's pixel at the same place."""
    tile = LOC["colorado"].tile
    manifest = build_manifest(tile, 2024, search_tile(served.geoparquet("earth-search"), tile,
                                                      2024, {"s2": C1}))
    cube = s2_cube(manifest, tile, read=FAST_READS).compute()
    day, items = next(iter(manifest.days("s2").items()))
    assert len(items) == 1
    red = cube["bands"].sel(doy=day, band="B04").values
    with read_env(FAST_READS), rasterio.open(items[0].assets["red"].href) as src:
        window = src.window(*tile.bounds)
        want = src.read(1, window=window)
    assert want.shape == red.shape == tile.geobox.shape
    assert np.array_equal(red, want)


def test_earth_search_collections_harmonise_to_the_same_values(served: Served) -> None:
    """One acquisition in Earth Search's legacy collection (offset removed from the COGs) and
    in Collection 1 (DN + 1000): after the BOA decision the masked bands are identical."""
    tile = LOC["antarctic"].tile
    api = _api(served.apis["earth-search"])
    out = {}
    for coll in ("sentinel-2-l2a", C1):
        manifest = build_manifest(tile, 2025, search_tile(api, tile, 2025, {"s2": coll}))
        raw = s2_cube(manifest, tile, read=FAST_READS)
        out[coll] = (raw.compute()["bands"].values, s2_masked(raw, manifest).compute())
        assert manifest.items[0].properties["tessera:boa_offset"] == (0 if coll != C1 else 1000)
    (old_raw, old), (c1_raw, c1) = out["sentinel-2-l2a"], out[C1]
    valid = (old_raw[:, 0] > 0) & (c1_raw[:, 0] > 0)  # both granules have data
    for axis in (-1, -2):  # away from nodata, whose neighbours bilinear weighs differently
        valid &= np.roll(valid, 1, axis) & np.roll(valid, -1, axis)
    assert valid.mean() > 0.3
    # The granules are in UTM 20S, the tile in 21S: bilinear reprojection of values 1000
    # apart rounds to integers 1000 ± 1 apart.
    raw_gap = c1_raw[:, 0][valid].astype(int) - old_raw[:, 0][valid]
    assert np.abs(raw_gap - 1000).max() <= 1 and np.median(raw_gap) == 1000
    both = np.broadcast_to(valid[:, None], old["bands"].shape)
    masked_gap = c1["bands"].values[both].astype(int) - old["bands"].values[both]
    assert np.abs(masked_gap).max() <= 1 and np.mean(masked_gap == 0) > 0.9


@pytest.mark.usefixtures("ray_cluster")
def test_pipeline_through_dagster_matches_on_both_backends(served: Served, tmp_path: Path
                                                           ) -> None:
    """``scene_manifest`` and the raw cubes materialised by Dagster from the STAC API equal
    those from stac-geoparquet: same manifest digest, identical cube stores."""
    from dagster import AssetKey, DagsterInstance

    from tessera_assets.config import CatalogSettings, PipelineSettings
    from tessera_assets.defs import PIPELINE_JOB, build_definitions
    from tessera_assets.defs.partitions import TILES, partition_key
    from tessera_assets.store.lineage import lineage_key

    tile, year = LOC["colorado"].tile, 2024
    roots = {}
    for name, kind, url in (
        ("api", "stac-api", served.apis["earth-search"]),
        ("geoparquet", "geoparquet", str(served.archive.parquet["earth-search"])),
    ):
        root = tmp_path / name
        settings = PipelineSettings(
            root=str(root), tile_size=tile.size, years=[year], coarse_resolution=160.0,
            catalog=CatalogSettings(kind=kind, url=url, s2_collection=C1, s1_collection=None),
        )
        instance = DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(TILES.name, [tile.id])
        result = build_definitions(settings).resolve_job_def(PIPELINE_JOB).execute_in_process(
            partition_key=partition_key(tile, year), instance=instance,
            asset_selection=[AssetKey(a) for a in
                             ("scene_manifest", "s2_cube", "s1_cube", "landsat_cube")])
        assert result.success
        roots[name] = root
    manifests = {n: SceneManifest.load(f"{r}/scene_manifest/{tile.id}/{year}")
                 for n, r in roots.items()}
    assert manifests["api"].digest() == manifests["geoparquet"].digest()
    assert manifests["api"].counts() == {"s2": 10, "s1": 0, "landsat": 0}
    ys, xs = tile.pixel_window()
    for product, var in (("s2_cube", "bands"), ("s1_cube", "backscatter"),
                         ("landsat_cube", "bands")):
        arrays = []
        for root in roots.values():
            ds = xr.open_zarr(f"{root}/{product}.zarr", group=f"utm{tile.zone:02d}",
                              consolidated=True, chunks=None)
            arrays.append(ds[var].isel(year=0, y=ys, x=xs).values)
            record = (root / f"{product}.zarr" / lineage_key(f"utm{tile.zone:02d}", tile.id, year))
            assert manifests["api"].digest() in record.read_text()
        assert np.array_equal(arrays[0], arrays[1], equal_nan=True), product
        if product == "s2_cube":
            assert np.count_nonzero(arrays[0]) > 0


# --------------------------------------------------------------------------- search faults


SEARCH = {"collections": [C1], "bbox": (-105.06, 40.14, -105.03, 40.17),
          "start": "2024-01-01", "end": "2024-12-31"}


@pytest.fixture()
def proxy_plan(served: Served) -> Iterator[FaultPlan]:
    served.proxy_plan.clear()
    yield served.proxy_plan
    served.proxy_plan.clear()


def test_search_retries_5xx_bursts(served: Served, proxy_plan: FaultPlan) -> None:
    reference = [i.id for i in _api(served.apis["earth-search"]).search(**SEARCH)]
    assert len(reference) == 10
    proxy_plan.push("/search", "503", "502", "500")
    cat = _api(served.proxy, max_retries=3)
    started = time.perf_counter()
    assert [i.id for i in cat.search(**SEARCH)] == reference
    statuses = [s.status for s in proxy_plan.served("/search")]
    assert statuses == [503, 502, 500, 200] and cat.attempts == 1  # urllib3 absorbed them
    assert time.perf_counter() - started < 5


def test_search_gives_up_with_a_clear_error(served: Served, proxy_plan: FaultPlan) -> None:
    proxy_plan.always("/search", "503")
    cat = _api(served.proxy, max_retries=2)
    with pytest.raises(CatalogError, match=r"failed after 3 attempts .*503") as err:
        cat.search(**SEARCH)
    assert served.proxy in str(err.value) and C1 in str(err.value)
    assert len(proxy_plan.served("/search")) == 9  # 3 searches x (1 + 2 urllib3 retries)


@pytest.mark.parametrize("fault", ["truncate", "short", "reset"])
def test_search_retries_a_cut_off_page(served: Served, proxy_plan: FaultPlan, fault: str) -> None:
    cat = _api(served.proxy, max_retries=2, page_size=3)  # 10 items: 4 pages
    reference = [i.id for i in cat.search(**SEARCH)]
    assert len(reference) == 10 and len(proxy_plan.served("/search")) == 4
    proxy_plan.clear()
    proxy_plan.push("/search", "ok", fault)  # the second page breaks: only it is asked again
    again = _api(served.proxy, max_retries=2, page_size=3)
    assert [i.id for i in again.search(**SEARCH)] == reference
    assert again.attempts == 1 and again.retries == 1
    assert [s.action for s in proxy_plan.served("/search")] == ["ok", fault, "ok", "ok", "ok"]


def test_search_timeouts(served: Served, proxy_plan: FaultPlan) -> None:
    proxy_plan.push("/search", "slow:1.5")
    cat = _api(served.proxy, timeout=0.5, max_retries=2)
    assert len(cat.search(**SEARCH)) == 10 and cat.retries == 1
    proxy_plan.always("/search", "slow:1")
    cat = _api(served.proxy, timeout=0.3, max_retries=1)
    started = time.perf_counter()
    with pytest.raises(CatalogError, match="timed out after 2 attempts"):
        cat.search(**SEARCH)
    assert time.perf_counter() - started < 6


# --------------------------------------------------------------------------- COG read faults


@pytest.fixture()
def cog_plan(served: Served) -> Iterator[FaultPlan]:
    served.cog_plan.clear()
    yield served.cog_plan
    served.cog_plan.clear()


_copies = iter(range(10_000))


def _fresh(served: Served, item_id: str) -> pystac.Item:
    """The served item with its COGs copied to new URLs (GDAL caches what it has read, so a
    fault test must not read bytes an earlier test already fetched)."""
    doc = copy.deepcopy(served.archive.item(item_id))
    tag = f"faults/{next(_copies)}"
    plan = load_plan(pystac.Item.from_dict(copy.deepcopy(doc)))
    for band in plan.bands:
        asset = doc["assets"][band.asset]
        src = served.archive.path_of(asset["href"])
        rel = f"{tag}/{src.relative_to(served.archive.root)}"
        (served.archive.root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, served.archive.root / rel)
        asset["href"] = f"{served.archive.base_url}/{rel}"
    return pystac.Item.from_dict(doc)


def _route(served: Served, href: str) -> str:
    return href.removeprefix(served.archive.base_url)


def _one_item_manifest(item: pystac.Item, year: int = 2024) -> SceneManifest:
    return build_manifest(LOC["colorado"].tile, year, {item.collection_id: [item]})


CLEAR_DAY = "S2B_T13TDE_20240407T174209_L2A"  # 0.9 % cloud: plenty of valid pixels


def test_cog_5xx_bursts_are_retried_by_gdal(served: Served, cog_plan: FaultPlan) -> None:
    clean = _cubes(_one_item_manifest(_fresh(served, CLEAR_DAY)), "colorado")["s2"]
    item = _fresh(served, CLEAR_DAY)
    for band in load_plan(item).bands:
        cog_plan.push(_route(served, band.href), "503", "503")
    read = ReadConfig(max_retry=3, retry_delay_s=0.05, timeout_s=5, check_assets=False)
    started = time.perf_counter()
    got = _cubes(_one_item_manifest(item), "colorado", read)["s2"]
    elapsed = time.perf_counter() - started
    assert np.array_equal(got, clean)
    injected = [s for s in cog_plan.log if s.status == 503]
    assert len(injected) == 2 * 11  # every asset's first two requests failed, then succeeded
    assert elapsed < 10


def test_cog_slow_and_cut_off_transfers_are_retried(served: Served, cog_plan: FaultPlan) -> None:
    clean = _cubes(_one_item_manifest(_fresh(served, CLEAR_DAY)), "colorado")["s2"]
    item = _fresh(served, CLEAR_DAY)
    names = [_route(served, b.href) for b in load_plan(item).bands]
    cog_plan.push(names[0], "slow:2.5")
    cog_plan.push(names[1], "short", "reset")
    read = ReadConfig(max_retry=3, retry_delay_s=0.05, timeout_s=1, check_assets=False,
                      day_retries=2, day_backoff_s=0.05)
    started = time.perf_counter()
    got = _cubes(_one_item_manifest(item), "colorado", read)["s2"]
    assert np.array_equal(got, clean)
    assert 1.0 <= time.perf_counter() - started < 20  # the stalled request timed out after 1 s
    actions = {s.action for s in cog_plan.log}
    assert {"slow:2.5", "short", "reset"} <= actions


def _broken(served: Served, how: str) -> tuple[pystac.Item, str]:
    """A served item with one asset missing (404) or truncated to its first 40 % of bytes
    (the header survives, tile data does not)."""
    item = _fresh(served, CLEAR_DAY)
    href = item.assets["nir"].href
    path = served.archive.path_of(href)
    if how == "missing":
        path.unlink()
    else:
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * 0.4)])
    return item, href


@pytest.mark.parametrize("how", ["missing", "truncated"])
def test_unreadable_scene_fails_the_partition_naming_item_and_asset(
    served: Served, how: str
) -> None:
    item, href = _broken(served, how)
    other = _fresh(served, "S2A_T13TDE_20240412T175055_L2A")
    manifest = build_manifest(LOC["colorado"].tile, 2024, {C1: [item, other]})
    read = ReadConfig(max_retry=1, retry_delay_s=0.05, timeout_s=5, day_retries=1,
                      day_backoff_s=0.05)
    with pytest.raises(IngestError) as err:  # missing: at build time; truncated: at compute
        s2_cube(manifest, LOC["colorado"].tile, read=read).compute()
    message = str(err.value)
    assert f"item {item.id} asset 'nir'" in message and href in message
    assert ("HTTP response code: 404" in message) == (how == "missing")


@pytest.mark.parametrize(("how", "stage"), [("missing", "check"), ("truncated", "read")])
def test_unreadable_scene_is_skipped_and_recorded(served: Served, how: str, stage: str) -> None:
    item, href = _broken(served, how)
    other = _fresh(served, "S2A_T13TDE_20240412T175055_L2A")
    tile = LOC["colorado"].tile
    manifest = build_manifest(tile, 2024, {C1: [item, other]})
    read = ReadConfig(max_retry=1, retry_delay_s=0.05, timeout_s=5, day_retries=1,
                      day_backoff_s=0.05, on_unreadable="skip")
    cube = s2_cube(manifest, tile, read=read)
    values = cube.compute()["bands"]
    skipped = cube.attrs["tessera:skipped_scenes"]
    assert [(s["item_id"], s["asset"], s["stage"]) for s in skipped] == [(item.id, "nir", stage)]
    assert skipped[0]["href"] == href and skipped[0]["reason"]
    day = int(item.properties["tessera:doy"])
    kept = int(other.properties["tessera:doy"])
    if stage == "check":  # known before the cube was built: the day is gone
        assert list(values["doy"].values) == [kept]
    else:  # found while computing: the day is there, empty
        assert not values.sel(doy=day).values.any()
    assert values.sel(doy=kept).values.any()
