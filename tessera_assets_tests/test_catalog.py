"""Catalog backends (DESIGN §6): stac-geoparquet through rustac's DuckDB (offline) and STAC APIs
through pystac-client (with retries), both checked against a brute-force filter."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pystac
import pytest
from shapely.geometry import box, shape

from tessera_assets.catalog.base import (
    Catalog,
    CatalogError,
    check_bbox,
    datetime_interval,
    query_to_cql2,
    to_utc,
)
from tessera_assets.catalog.duckdb_extensions import (
    _packaged_extension,
    _read_footer,
    duckdb_extension_directory,
)
from tessera_assets.catalog.factory import catalog_from_config
from tessera_assets.catalog.geoparquet import GeoparquetCatalog
from tessera_assets.catalog.stac_api import StacApiCatalog
from tessera_assets.demo import DemoArchive, DemoSpec, generate_demo_archive

S2, S1, LANDSAT = "sentinel-2-c1-l2a", "sentinel-1-rtc", "landsat-c2-l2"
SPEC = DemoSpec(
    bounds=(636_800.0, 5_762_240.0, 638_080.0, 5_763_520.0),
    start=date(2024, 3, 1),
    end=date(2024, 5, 31),
)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> DemoArchive:
    return generate_demo_archive(SPEC, tmp_path_factory.mktemp("catalog") / "demo")


@pytest.fixture(scope="module")
def ext_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("duckdb-extensions")


@pytest.fixture(scope="module")
def catalog(archive: DemoArchive, ext_dir: Path) -> GeoparquetCatalog:
    return GeoparquetCatalog(archive.catalog_dir, extension_directory=ext_dir)


@pytest.fixture(scope="module")
def all_items(archive: DemoArchive) -> list[dict]:
    return [i for c in archive.collections for i in archive.item_dicts(c)]


def brute_force(items: list[dict], collections: list[str], bbox, start, end, cloud_max=None) -> list[str]:
    """The expected ids: geometry intersects the box, datetime within [start, end]."""
    area = box(*bbox)
    first, last = to_utc(start), to_utc(end, end=True)
    hits = [
        i for i in items
        if i["collection"] in collections
        and shape(i["geometry"]).intersects(area)
        and first <= datetime.fromisoformat(i["properties"]["datetime"].replace("Z", "+00:00")) <= last
        and (cloud_max is None or i["properties"]["eo:cloud_cover"] <= cloud_max)
    ]
    hits.sort(key=lambda i: (datetime.fromisoformat(i["properties"]["datetime"].replace("Z", "+00:00")), i["id"]))
    return [i["id"] for i in hits]


def _west_box(archive: DemoArchive) -> tuple[float, float, float, float]:
    """A box over the western fifth of the area: only the W granules reach it."""
    w, s, e, n = archive.bbox_lonlat
    return (w + 0.02 * (e - w), s + 0.3 * (n - s), w + 0.2 * (e - w), s + 0.6 * (n - s))


# --------------------------------------------------------------------------- parameters


def test_bbox_and_time_validation() -> None:
    assert check_bbox([-1, 51, 0, 52]) == (-1.0, 51.0, 0.0, 52.0)
    for bad in ([636800, 5762240, 638080, 5763520], [0, 52, -1, 53], [0, 53, 1, 52], [0, 1, 2]):
        with pytest.raises(CatalogError):
            check_bbox(bad)
    assert to_utc("2024-03-01") == datetime(2024, 3, 1, tzinfo=UTC)
    assert to_utc(date(2024, 3, 1), end=True) == datetime(2024, 3, 1, 23, 59, 59, 999999, tzinfo=UTC)
    assert to_utc(datetime(2024, 3, 1, 12)) == datetime(2024, 3, 1, 12, tzinfo=UTC)
    cet = timezone(timedelta(hours=1))
    assert to_utc(datetime(2024, 3, 1, 12, tzinfo=cet)) == datetime(2024, 3, 1, 11, tzinfo=UTC)
    assert datetime_interval("2024-01-01", date(2024, 12, 31)) == (
        "2024-01-01T00:00:00.000000Z/2024-12-31T23:59:59.999999Z"
    )
    with pytest.raises(CatalogError, match="after"):
        datetime_interval("2024-02-01", "2024-01-01")
    with pytest.raises(CatalogError, match="parse"):
        to_utc("March 2024")
    assert query_to_cql2({"eo:cloud_cover": {"lt": 20}}) == {
        "op": "<", "args": [{"property": "eo:cloud_cover"}, 20]
    }


# --------------------------------------------------------------------------- geoparquet


def test_extension_directory_layout_from_packages(ext_dir: Path) -> None:
    root = duckdb_extension_directory(ext_dir)
    assert root == ext_dir
    duckdb_version = "v" + importlib.metadata.version("duckdb")
    for name in ("spatial", "icu", "parquet"):
        source = _packaged_extension(name)
        version, plat = _read_footer(source)
        assert version == duckdb_version
        target = ext_dir / version / plat / f"{name}.duckdb_extension"
        assert target.is_file() and target.stat().st_size == source.stat().st_size
    assert duckdb_extension_directory(ext_dir) == ext_dir  # idempotent


def test_geoparquet_search_matches_brute_force(
    catalog: GeoparquetCatalog, archive: DemoArchive, all_items: list[dict]
) -> None:
    assert isinstance(catalog, Catalog)
    assert catalog.collections == sorted([S2, S1, LANDSAT])
    boxes = [archive.bbox_lonlat, _west_box(archive), (-0.9, 51.0, -0.8, 51.1)]
    windows = [
        ("2024-01-01", "2024-12-31"),
        (date(2024, 4, 1), date(2024, 4, 20)),
        (datetime(2024, 3, 3, 11, 6, 30), datetime(2024, 3, 3, 11, 6, 31)),  # naive = UTC
        (datetime(2024, 5, 1, tzinfo=timezone(timedelta(hours=2))), "2024-05-10T12:00:00+00:00"),
    ]
    checked = 0
    for collections in ([S2], [S1], [LANDSAT], [S2, S1, LANDSAT]):
        for bbox in boxes:
            for start, end in windows:
                got = catalog.search(collections=collections, bbox=bbox, start=start, end=end)
                want = brute_force(all_items, collections, bbox, start, end)
                assert [i.id for i in got] == want, (collections, bbox, start, end)
                assert all(isinstance(i, pystac.Item) for i in got)
                checked += len(want)
    assert checked > 100
    west = catalog.search(collections=[S2], bbox=_west_box(archive), start="2024-03-01", end="2024-05-31")
    everything = catalog.search(collections=[S2], bbox=archive.bbox_lonlat, start="2024-03-01", end="2024-05-31")
    assert 0 < len(west) < len(everything)
    assert {i.properties["grid:code"] for i in west} == {"MGRS-30UXC"}


def test_geoparquet_results_are_complete_items(catalog: GeoparquetCatalog, archive: DemoArchive) -> None:
    items = catalog.search(collections=[S2], bbox=archive.bbox_lonlat, start="2024-04-01", end="2024-04-30")
    keys = [(i.datetime, i.id) for i in items]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    red = items[0].assets["red"]
    assert red.href.startswith("file:///") and Path(red.href[7:]).is_file()
    bands = red.extra_fields["raster:bands"][0]
    assert bands["data_type"] == "uint16" and bands["nodata"] == 0
    assert bands["scale"] == 0.0001 and bands["offset"] == -0.1


def test_geoparquet_query_and_filter(
    catalog: GeoparquetCatalog, archive: DemoArchive, all_items: list[dict]
) -> None:
    args = dict(collections=[S2], bbox=archive.bbox_lonlat, start="2024-03-01", end="2024-05-31")
    want = brute_force(all_items, [S2], archive.bbox_lonlat, "2024-03-01", "2024-05-31", cloud_max=30)
    assert 0 < len(want) < len(brute_force(all_items, [S2], archive.bbox_lonlat, "2024-03-01", "2024-05-31"))
    by_filter = catalog.search(**args, filter={"op": "<=", "args": [{"property": "eo:cloud_cover"}, 30]})
    by_text = catalog.search(**args, filter="eo:cloud_cover <= 30")
    by_query = catalog.search(**args, query={"eo:cloud_cover": {"lte": 30}})
    assert [i.id for i in by_filter] == [i.id for i in by_text] == [i.id for i in by_query] == want


def test_geoparquet_errors(catalog: GeoparquetCatalog, archive: DemoArchive, tmp_path: Path, ext_dir: Path) -> None:
    with pytest.raises(CatalogError, match="not found"):
        GeoparquetCatalog(tmp_path / "missing", extension_directory=ext_dir)
    with pytest.raises(CatalogError, match="no stac-geoparquet"):
        GeoparquetCatalog(tmp_path, extension_directory=ext_dir)
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(CatalogError, match="not a stac-geoparquet"):
        GeoparquetCatalog(tmp_path / "bad.parquet", extension_directory=ext_dir)
    args = dict(bbox=archive.bbox_lonlat, start="2024-03-01", end="2024-03-31")
    with pytest.raises(CatalogError, match=r"unknown collection.*sentinel-2-l2a.*landsat-c2-l2"):
        catalog.search(collections=["sentinel-2-l2a"], **args)
    with pytest.raises(CatalogError, match="outside lon"):
        catalog.search(collections=[S2], bbox=(636_800, 5_762_240, 638_080, 5_763_520),
                       start="2024-03-01", end="2024-03-31")
    with pytest.raises(CatalogError, match="min > max"):
        catalog.search(collections=[S2], bbox=(0, 52, -1, 53), start="2024-03-01", end="2024-03-31")
    with pytest.raises(CatalogError, match="at least one collection"):
        catalog.search(collections=[], **args)
    single = GeoparquetCatalog(archive.catalog_paths[S1], extension_directory=ext_dir)
    assert single.collections == [S1]
    with pytest.raises(CatalogError, match=r"unknown collection.*\['sentinel-1-rtc'\]"):
        single.search(collections=[S2], **args)


def test_geoparquet_searches_from_threads(catalog: GeoparquetCatalog, archive: DemoArchive) -> None:
    """One DuckDB client shared by threads: rustac deadlocks on concurrent use without the lock."""
    expected = [i.id for i in catalog.search(collections=[S2, S1], bbox=archive.bbox_lonlat,
                                             start="2024-03-01", end="2024-05-31")]
    results: list[list[str]] = []

    def work() -> None:
        for _ in range(3):
            found = catalog.search(collections=[S2, S1], bbox=archive.bbox_lonlat,
                                   start="2024-03-01", end="2024-05-31")
            results.append([i.id for i in found])

    threads = [threading.Thread(target=work, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "searches deadlocked"
    assert results == [expected] * 12


def _network_jail() -> list[str]:
    """A command prefix that runs without any network (a fresh network namespace), if allowed."""
    for prefix in (["unshare", "-n"], ["unshare", "-rn"]):
        if shutil.which(prefix[0]) and subprocess.run([*prefix, "true"], capture_output=True).returncode == 0:
            return prefix
    return []


def test_geoparquet_search_needs_no_network(archive: DemoArchive, tmp_path: Path) -> None:
    """In a process with no network at all and an empty cache/home, extensions come from the
    packages; nothing is downloaded or written to DuckDB's default ~/.duckdb."""
    home, cache = tmp_path / "home", tmp_path / "cache"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "TESSERA_DUCKDB_EXTENSION_DIR"}
    dead = "http://127.0.0.1:9"  # belt and braces where a namespace is not available
    env.update(HOME=str(home), XDG_CACHE_HOME=str(cache), http_proxy=dead, https_proxy=dead,
               HTTP_PROXY=dead, HTTPS_PROXY=dead, ALL_PROXY=dead, no_proxy="", NO_PROXY="")
    script = (
        "import sys\n"
        "from tessera_assets.catalog.geoparquet import GeoparquetCatalog\n"
        "cat = GeoparquetCatalog(sys.argv[1])\n"
        "items = cat.search(collections=['sentinel-2-c1-l2a'], bbox=tuple(map(float, sys.argv[2:6])),"
        " start='2024-03-01', end='2024-05-31')\n"
        "print(len(items), cat.extension_directory)\n"
    )
    jail = _network_jail()
    started = time.perf_counter()
    proc = subprocess.run(
        [*jail, sys.executable, "-c", script, str(archive.catalog_dir), *map(str, archive.bbox_lonlat)],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    count, ext = proc.stdout.split()
    assert int(count) == archive.item_counts[S2]
    assert Path(ext) == cache / "tessera_assets" / "duckdb-extensions"
    assert sorted(p.name for p in Path(ext).glob("v*/*/*.duckdb_extension")) == [
        "icu.duckdb_extension", "parquet.duckdb_extension", "spatial.duckdb_extension"
    ]
    assert not (home / ".duckdb").exists()
    assert time.perf_counter() - started < 60


def test_factory(archive: DemoArchive, ext_dir: Path) -> None:
    cat = catalog_from_config("geoparquet", archive.catalog_dir, extension_directory=ext_dir)
    assert isinstance(cat, GeoparquetCatalog)
    assert isinstance(catalog_from_config("auto", str(archive.catalog_dir), extension_directory=ext_dir),
                      GeoparquetCatalog)
    assert isinstance(catalog_from_config("stac-api", "https://example.invalid/v1"), StacApiCatalog)
    assert isinstance(catalog_from_config("auto", "https://example.invalid/v1"), StacApiCatalog)
    with pytest.raises(CatalogError, match="unknown catalog kind"):
        catalog_from_config("ftp", "x")
    with pytest.raises(CatalogError, match="http"):
        StacApiCatalog("earth-search")


# --------------------------------------------------------------------------- STAC API on loopback


class FakeStacApi:
    """A minimal STAC API (landing page + POST /search with paging) with injectable faults.

    ``plan`` holds the behaviour of the next /search requests: "ok", "503", "429" (with
    ``Retry-After: 3600``), "400", "truncate"
    (a cut JSON body with a matching Content-Length), "short" (fewer bytes than the declared
    Content-Length, then the connection closes) or "slow" (answers after 1 s).
    """

    def __init__(self, items: list[dict], page_size: int = 20) -> None:
        self.items = items
        self.page_size = page_size
        self.plan: list[str] = []
        self.log: list[tuple[str, str]] = []
        self.headers_seen: list[dict[str, str]] = []
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                api.log.append(("GET", self.path))
                if self.path.rstrip("/") == "":
                    self._send(200, api.landing(self._base()))
                else:
                    self._send(404, {"code": "NotFound"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                with api.lock:
                    action = api.plan.pop(0) if api.plan else "ok"
                    api.log.append(("POST", action))
                    api.headers_seen.append(dict(self.headers))
                if action == "503":
                    return self._send(503, {"code": "ServiceUnavailable"})
                if action == "400":
                    return self._send(400, {"code": "BadRequest", "description": "bad bbox"})
                if action == "429":  # asks for an hour: the client must not wait that long
                    return self._send(429, {"code": "TooManyRequests"}, {"Retry-After": "3600"})
                if action == "slow":
                    time.sleep(1.0)
                payload = json.dumps(api.page(self._base(), body)).encode()
                if action == "truncate":
                    payload = payload[: len(payload) // 2]
                self.send_response(200)
                self.send_header("Content-Type", "application/geo+json")
                self.send_header("Content-Length", str(len(payload) * (2 if action == "short" else 1)))
                self.end_headers()
                self.wfile.write(payload)
                if action == "short":
                    self.close_connection = True

            def _base(self) -> str:
                host, port = self.server.server_address[:2]
                return f"http://{host}:{port}"

            def _send(self, status: int, doc: dict, headers: dict | None = None) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def landing(self, base: str) -> dict:
        return {
            "type": "Catalog", "id": "loopback", "stac_version": "1.0.0", "description": "test API",
            "conformsTo": [
                "https://api.stacspec.org/v1.0.0/core",
                "https://api.stacspec.org/v1.0.0/item-search",
                "https://api.stacspec.org/v1.0.0/item-search#query",
            ],
            "links": [
                {"rel": "self", "href": f"{base}/", "type": "application/json"},
                {"rel": "root", "href": f"{base}/", "type": "application/json"},
                {"rel": "search", "href": f"{base}/search", "method": "POST",
                 "type": "application/geo+json"},
            ],
        }

    def page(self, base: str, body: dict) -> dict:
        start, end = body["datetime"].split("/")
        matches = brute_force(self.items, body["collections"], body["bbox"], start, end)
        by_id = {i["id"]: i for i in self.items}
        offset = int(body.get("token", 0))
        limit = min(int(body.get("limit", self.page_size)), self.page_size)
        links = []
        if offset + limit < len(matches):
            links.append({"rel": "next", "href": f"{base}/search", "method": "POST",
                          "type": "application/geo+json", "body": {**body, "token": offset + limit}})
        features = [by_id[i] for i in matches[offset : offset + limit]]
        return {"type": "FeatureCollection", "features": features, "links": links,
                "numberReturned": len(features)}

    def searches(self) -> list[str]:
        return [action for method, action in self.log if method == "POST"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def api(archive: DemoArchive) -> Iterator[FakeStacApi]:
    raw = [i for c in archive.collections for i in archive.item_dicts(c, raw=True)]
    server = FakeStacApi(raw)
    yield server
    server.close()


def _fast(url: str, **kw: Any) -> StacApiCatalog:
    delays: list[float] = []
    cat = StacApiCatalog(url, backoff=0.01, max_backoff=0.05, sleep=delays.append, seed=0, **kw)
    cat.delays = delays  # type: ignore[attr-defined]
    return cat


SEARCH = dict(collections=[S2, S1], start="2024-03-01", end="2024-05-31")


def test_stac_api_matches_geoparquet(api: FakeStacApi, catalog: GeoparquetCatalog, archive: DemoArchive) -> None:
    def modifier(page: Any) -> None:  # like planetary_computer.sign_inplace: pages as dicts
        for feature in page["features"]:
            feature["properties"]["demo:signed"] = True

    cat = _fast(api.url, headers={"X-Tessera-Test": "yes"}, modifier=modifier)
    got = cat.search(bbox=archive.bbox_lonlat, **SEARCH)
    want = catalog.search(bbox=archive.bbox_lonlat, **SEARCH)
    assert [i.id for i in got] == [i.id for i in want] and len(got) > api.page_size  # paged
    assert len(api.searches()) == -(-len(got) // api.page_size)
    assert cat.attempts == 1 and cat.delays == []
    assert all(h.get("X-Tessera-Test") == "yes" for h in api.headers_seen)
    assert all(i.properties.get("demo:signed") for i in got)
    s1 = next(i for i in got if i.collection_id == S1)
    assert s1.common_metadata.start_datetime < s1.datetime < s1.common_metadata.end_datetime


def test_stac_api_retries_503_inside_a_search(api: FakeStacApi, archive: DemoArchive) -> None:
    api.plan = ["503", "503"]
    cat = _fast(api.url, max_retries=3)
    got = cat.search(bbox=archive.bbox_lonlat, **SEARCH)
    assert got and api.searches()[:3] == ["503", "503", "ok"]
    assert cat.attempts == 1  # urllib3's Retry absorbed the 503s


@pytest.mark.parametrize("fault", ["truncate", "short"])
def test_stac_api_retries_a_cut_off_body(api: FakeStacApi, archive: DemoArchive, fault: str) -> None:
    reference = [i.id for i in _fast(api.url).search(bbox=archive.bbox_lonlat, **SEARCH)]
    api.log.clear()
    api.plan = ["ok", fault]  # the second page is cut off: pystac-client alone would fail
    cat = _fast(api.url, max_retries=2)
    got = cat.search(bbox=archive.bbox_lonlat, **SEARCH)
    assert [i.id for i in got] == reference
    # Only the broken page was asked for again, not the whole search.
    assert cat.attempts == 1 and cat.retries == 1 and len(cat.delays) == 1
    assert api.searches() == ["ok", fault] + ["ok"] * (len(reference) // api.page_size)
    assert 0.005 <= cat.delays[0] < 0.015  # backoff 0.01 s with jitter in [0.5, 1.5)


def test_stac_api_gives_up_with_a_clear_error(api: FakeStacApi, archive: DemoArchive) -> None:
    api.plan = ["503"] * 50
    cat = _fast(api.url, max_retries=2)
    with pytest.raises(CatalogError) as err:
        cat.search(bbox=archive.bbox_lonlat, **SEARCH)
    message = str(err.value)
    assert api.url in message and "failed after 3 attempts (page 1;" in message and S2 in message
    assert cat.attempts == 1 and cat.retries == 2
    assert len(api.searches()) == 9  # 3 attempts x (1 + 2 urllib3 retries)
    assert len(cat.delays) == 2 and cat.delays[1] > cat.delays[0] * 0.6


def test_stac_api_timeouts(api: FakeStacApi, archive: DemoArchive) -> None:
    api.plan = ["slow"] * 10
    cat = _fast(api.url, timeout=0.2, max_retries=1)
    started = time.perf_counter()
    with pytest.raises(CatalogError, match="timed out after 2 attempts"):
        cat.search(bbox=archive.bbox_lonlat, **SEARCH)
    assert time.perf_counter() - started < 5


def test_stac_api_does_not_retry_client_errors(api: FakeStacApi, archive: DemoArchive) -> None:
    api.plan = ["400"]
    cat = _fast(api.url, max_retries=3)
    with pytest.raises(CatalogError, match="rejected"):
        cat.search(bbox=archive.bbox_lonlat, **SEARCH)
    assert api.searches() == ["400"] and cat.attempts == 1
    with pytest.raises(CatalogError, match=r"unknown|outside lon"):
        cat.search(collections=[S2], bbox=(0, 0, 500, 1), start="2024-03-01", end="2024-03-02")


def test_stac_api_unreachable() -> None:
    probe = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = probe.server_address[1]
    probe.server_close()  # nothing listens there any more
    cat = _fast(f"http://127.0.0.1:{port}", max_retries=1, timeout=2)
    with pytest.raises(CatalogError, match=rf"127\.0\.0\.1:{port} failed after 2 attempts"):
        cat.search(collections=[S2], bbox=(-1, 51, 0, 52), start="2024-03-01", end="2024-03-02")


def test_stac_api_caps_retry_after(api: FakeStacApi, archive: DemoArchive) -> None:
    """A 429 asking for an hour is retried after at most ``max_backoff`` (here 1 s)."""
    api.plan = ["429"]
    cat = _fast(api.url, max_retries=2)
    started = time.perf_counter()
    got = cat.search(bbox=archive.bbox_lonlat, **SEARCH)
    assert got and api.searches()[:2] == ["429", "ok"] and cat.attempts == 1
    assert time.perf_counter() - started < 5


def test_stac_api_paces_requests_to_the_rate_hint(api: FakeStacApi, archive: DemoArchive) -> None:
    waits: list[float] = []
    cat = StacApiCatalog(api.url, requests_per_second=4.0, sleep=waits.append, seed=0)
    got = cat.search(bbox=archive.bbox_lonlat, **SEARCH)
    pages = len(api.searches())
    assert pages > 2 and len(got) > api.page_size
    # Every request after the first waits for its slot (the fake sleep does not advance time,
    # so the n-th request waits ~(n-1)/4 s): requests are spaced at the hinted rate.
    assert len(waits) >= pages - 1 and max(waits) >= (pages - 2) * 0.25 - 0.05


def test_a_sensor_without_collection_finds_nothing(api: FakeStacApi, archive: DemoArchive,
                                                   catalog: GeoparquetCatalog) -> None:
    for cat in (_fast(api.url), catalog):
        assert cat.search(collections=[None], bbox=archive.bbox_lonlat, start="2024-03-01",
                          end="2024-05-31") == []
    assert api.log == []  # not even the landing page was needed
    with pytest.raises(CatalogError, match="at least one collection"):
        catalog.search(collections=[], bbox=archive.bbox_lonlat, start="2024-03-01",
                       end="2024-05-31")
