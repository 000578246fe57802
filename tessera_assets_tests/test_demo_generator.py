"""The synthetic demo archive (DESIGN §7): deterministic, realistic enough, shaped like the real
catalogs' items, and loadable by odc-stac exactly."""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine
from pydantic import ValidationError

from tessera_assets.demo import (
    CLASSES,
    DemoArchive,
    DemoArchiveError,
    DemoSpec,
    LandCover,
    generate_demo_archive,
)
from tessera_assets.demo.atmosphere import Weather, sky
from tessera_assets.demo.geo import solar_position
from tessera_assets.demo.grids import Grid
from tessera_assets.demo.landsat import CIRRUS, CLEAR, CLOUD, DILATED, FILL, SHADOW, WATER
from tessera_assets_tests.fixtures import stac_fixture_dir

S2, S1, LANDSAT = "sentinel-2-c1-l2a", "sentinel-1-rtc", "landsat-c2-l2"
# 1.28 x 1.28 km in the middle of the default area.
SMALL = DemoSpec(bounds=(636_800.0, 5_762_240.0, 638_080.0, 5_763_520.0))
SHORT = SMALL.model_copy(update={"start": date(2024, 6, 1), "end": date(2024, 6, 16)})
FIXTURES = stac_fixture_dir()


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> DemoArchive:
    return generate_demo_archive(SMALL, tmp_path_factory.mktemp("demo") / "archive")


@pytest.fixture(scope="module")
def s2_items(archive: DemoArchive) -> list[dict]:
    return archive.item_dicts(S2)


def _path(href: str) -> Path:
    assert href.startswith("file:///"), href
    return Path(urlparse(href).path)


def _read(href: str) -> np.ndarray:
    with rasterio.open(_path(href)) as ds:
        return ds.read(1)


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def _first_ifd_tags(path: Path) -> set[int]:
    """Tag ids of a classic little-endian TIFF's first IFD (to check tiles vs strips)."""
    data = path.read_bytes()
    assert data[:4] == b"II*\0", "expected a little-endian classic TIFF"
    offset = int.from_bytes(data[4:8], "little")
    count = int.from_bytes(data[offset : offset + 2], "little")
    entries = (data[offset + 2 + 12 * i : offset + 4 + 12 * i] for i in range(count))
    return {int.from_bytes(e, "little") for e in entries}


def _landcover(archive: DemoArchive) -> tuple[np.ndarray, Affine]:
    with rasterio.open(archive.landcover_path) as ds:
        return ds.read(1), ds.transform


def _window_of(classes: np.ndarray, lc_transform: Affine, transform: list[float], shape) -> np.ndarray:
    """The land-cover pixels under a 10 m asset (same lattice as the land-cover map)."""
    col = round((transform[2] - lc_transform.c) / 10)
    row = round((lc_transform.f - transform[5]) / 10)
    return classes[row : row + shape[0], col : col + shape[1]]


# --------------------------------------------------------------------------- spec


def test_spec_defaults_and_validation() -> None:
    spec = DemoSpec()
    assert spec.epsg == 32630 and spec.year == 2024 and spec.seed == 20240101
    assert spec.bounds == (635_520.0, 5_761_600.0, 639_360.0, 5_764_160.0)
    with pytest.raises(ValidationError, match="multiples of 20"):
        DemoSpec(bounds=(635_525.0, 5_761_600.0, 639_360.0, 5_764_160.0))
    with pytest.raises(ValidationError, match="UTM"):
        DemoSpec(epsg=3857)
    with pytest.raises(ValidationError, match="min < max"):
        DemoSpec(bounds=(639_360.0, 5_761_600.0, 635_520.0, 5_764_160.0))
    with pytest.raises(ValidationError, match="must lie in 2024"):
        DemoSpec(start=date(2023, 12, 1))
    assert SMALL.digest() != SHORT.digest() != SHORT.model_copy(update={"seed": 1}).digest()


# --------------------------------------------------------------------------- archive layout


def test_archive_contents(archive: DemoArchive, s2_items: list[dict]) -> None:
    assert archive.collections == [S2, S1, LANDSAT]
    assert set(archive.catalog_paths) == set(archive.collections)
    assert all(p.parent == archive.catalog_dir and p.suffix == ".parquet"
               for p in archive.catalog_paths.values())
    assert archive.item_counts[S2] == len(s2_items)
    s2_days = {i["properties"]["datetime"][:10] for i in s2_items}
    assert len(s2_days) >= 40
    s1 = archive.item_dicts(S1)
    states = defaultdict(set)
    for item in s1:
        states[item["properties"]["sat:orbit_state"]].add(item["properties"]["sat:relative_orbit"])
    assert len(s1) >= 50
    assert set(states) == {"ascending", "descending"}
    assert states["ascending"].isdisjoint(states["descending"])
    landsat = archive.item_dicts(LANDSAT)
    assert len(landsat) >= 20
    assert {i["properties"]["platform"] for i in landsat} == {"landsat-8", "landsat-9"}
    lon0, lat0, lon1, lat1 = archive.bbox_lonlat
    assert -1.1 < lon0 < lon1 < -0.9 and 51.9 < lat0 < lat1 < 52.1  # southern England


def test_items_round_trip_through_pystac(archive: DemoArchive) -> None:
    for collection in archive.collections:
        for raw in archive.item_dicts(collection)[:5]:
            item = pystac.Item.from_dict(raw)
            assert item.collection_id == collection
            assert item.datetime is not None and item.datetime.tzinfo is not None
            again = pystac.Item.from_dict(item.to_dict())
            assert again.to_dict()["assets"] == item.to_dict()["assets"]


def test_hrefs_are_absolute_file_uris_of_existing_files(archive: DemoArchive) -> None:
    root = archive.root.resolve()
    for collection in archive.collections:
        for item in archive.item_dicts(collection):
            for asset in item["assets"].values():
                path = _path(asset["href"])
                assert path.is_absolute() and path.is_file()
                assert root in path.parents
                assert path.stat().st_size == asset.get("file:size", path.stat().st_size)


def test_landcover_raster(archive: DemoArchive) -> None:
    with rasterio.open(archive.landcover_path) as ds:
        classes = ds.read(1)
        assert ds.crs.to_epsg() == SMALL.epsg
        assert ds.dtypes[0] == "uint8"
        assert ds.res == (10.0, 10.0)
        assert tuple(ds.bounds) == SMALL.bounds
        assert ds.tags()["CLASS_8"] == "water"
    assert archive.classes == CLASSES
    present = set(np.unique(classes).tolist())
    assert present <= set(CLASSES)
    for cls in (LandCover.WINTER_CEREAL, LandCover.GRASSLAND, LandCover.DECIDUOUS_FOREST,
                LandCover.WATER, LandCover.URBAN):
        assert cls in present, CLASSES[cls]
    crops = np.isin(classes, [1, 2, 3, 4]).mean()
    assert 0.2 < crops < 0.8


def test_cogs_are_tiled_with_overviews(archive: DemoArchive, s2_items: list[dict]) -> None:
    s1 = archive.item_dicts(S1)[0]
    landsat = archive.item_dicts(LANDSAT)[0]
    samples = [
        (s2_items[0]["assets"]["red"], s2_items[0]["assets"]["red"]["proj:transform"]),
        (s2_items[0]["assets"]["swir16"], s2_items[0]["assets"]["swir16"]["proj:transform"]),
        (s2_items[0]["assets"]["scl"], s2_items[0]["assets"]["scl"]["proj:transform"]),
        (s1["assets"]["vv"], s1["properties"]["proj:transform"][:6]),
        (landsat["assets"]["qa_pixel"], landsat["properties"]["proj:transform"]),
    ]
    for asset, transform in samples:
        with rasterio.open(_path(asset["href"])) as ds:
            assert ds.driver == "GTiff"
            assert ds.block_shapes == [(128, 128)]
            assert ds.overviews(1), asset["href"]
            assert ds.compression is not None
            assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
            assert ds.crs.to_epsg() == SMALL.epsg
            assert ds.nodata == asset["raster:bands"][0]["nodata"]
            assert ds.dtypes[0] == asset["raster:bands"][0]["data_type"]
            assert ds.res == (asset["raster:bands"][0]["spatial_resolution"],) * 2
            assert list(ds.transform)[:6] == transform
        tags = _first_ifd_tags(_path(asset["href"]))
        assert 322 in tags and 323 in tags and 273 not in tags  # TileWidth/TileLength, no strips


def test_sensor_grids(archive: DemoArchive, s2_items: list[dict]) -> None:
    ls = archive.item_dicts(LANDSAT)[0]["properties"]["proj:transform"]
    assert ls[0] == 30.0 and ls[2] % 30 == 15 and ls[5] % 30 == 15  # WRS-2 style 15 m offset
    for item in s2_items[:4]:
        red, swir = item["assets"]["red"], item["assets"]["swir16"]
        assert red["proj:transform"][0] == 10 and swir["proj:transform"][0] == 20
        assert red["proj:shape"] == [2 * n for n in swir["proj:shape"]]
    s1 = archive.item_dicts(S1)[0]["properties"]
    assert s1["proj:transform"][:6] == [10.0, 0.0, SMALL.bounds[0], 0.0, -10.0, SMALL.bounds[3]]
    assert s1["s1:shape"] == s1["proj:shape"][::-1]


# --------------------------------------------------------------------------- shaped like the real items


def _compare_asset(ours: dict, real: dict, key: str) -> None:
    assert set(ours) == set(real), key
    for ob, rb in zip(ours["raster:bands"], real["raster:bands"], strict=True):
        assert set(ob) == set(rb), key
        for field in ("nodata", "data_type", "scale", "offset", "unit"):
            assert ob.get(field) == rb.get(field), (key, field)
    assert ours["type"] == real["type"]
    assert ours["roles"] == real["roles"]


def test_sentinel2_items_are_shaped_like_earth_search_c1(archive: DemoArchive) -> None:
    real = _fixture("earth-search__sentinel-2-c1-l2a__itemcollection-MGRS-13TDE-20240331-20240422.json")
    real = real["features"][0]  # 2024, processing baseline 05.10
    provider_only = {"earthsearch:payload_id", "storage:platform", "storage:region",
                     "storage:requester_pays"}
    for ours in (archive.item_dicts(S2, raw=True)[0], archive.item_dicts(S2)[0]):
        assert set(ours["properties"]) == set(real["properties"]) - provider_only
        assert set(ours["assets"]) <= set(real["assets"])
        assert set(ours["assets"]) >= {"blue", "green", "red", "nir", "nir08", "rededge1",
                                       "rededge2", "rededge3", "swir16", "swir22", "scl"}
        for key, asset in ours["assets"].items():
            _compare_asset(asset, real["assets"][key], key)
            if key != "scl":
                assert asset["eo:bands"] == real["assets"][key]["eo:bands"], key
        p = ours["properties"]
        assert p["s2:processing_baseline"] == "05.10"
        assert p["proj:epsg"] == SMALL.epsg and "proj:code" not in p
        assert p["grid:code"] == f"MGRS-{p['mgrs:utm_zone']}{p['mgrs:latitude_band']}{p['mgrs:grid_square']}"
        assert re.fullmatch(r"S2[AB]_T30U[XY]C_\d{8}T\d{6}_L2A", ours["id"])
        assert re.fullmatch(r"S2[AB]_MSIL2A_\d{8}T\d{6}_N0510_R\d{3}_T30U[XY]C_\d{8}T\d{6}\.SAFE",
                            p["s2:product_uri"])
        assert set(ours["stac_extensions"]) <= set(real["stac_extensions"])


def test_sentinel1_items_are_shaped_like_planetary_computer(archive: DemoArchive) -> None:
    real = _fixture(
        "planetary-computer__sentinel-1-rtc__S1A_IW_GRDH_1SDV_20240419T045904_20240419T045916_053498_067DF2_rtc.json"
    )
    raw = archive.item_dicts(S1, raw=True)
    for ours in (raw[0], archive.item_dicts(S1)[0]):
        assert set(ours["properties"]) == set(real["properties"])
        assert set(ours["assets"]) == {"vv", "vh"} <= set(real["assets"])
        for key in ("vv", "vh"):
            _compare_asset(ours["assets"][key], real["assets"][key], key)
        assert len(ours["properties"]["proj:transform"]) == 9
        assert re.fullmatch(r"S1A_IW_GRDH_1SDV_\d{8}T\d{6}_\d{8}T\d{6}_\d{6}_[0-9A-F]{6}_rtc", ours["id"])
    quirky = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00:00"  # PC's non-RFC 3339 format
    assert re.fullmatch(quirky, real["properties"]["start_datetime"])
    for item in raw:
        assert re.fullmatch(quirky, item["properties"]["start_datetime"])
        assert re.fullmatch(quirky, item["properties"]["end_datetime"])
        p = item["properties"]
        assert p["start_datetime"] < p["datetime"].replace("T", " ") < p["end_datetime"]


def test_landsat_items_are_shaped_like_planetary_computer(archive: DemoArchive) -> None:
    real = _fixture("planetary-computer__landsat-c2-l2__LC09_L2SR_084082_20250722_02_T1.json")
    for ours in (archive.item_dicts(LANDSAT, raw=True)[0], archive.item_dicts(LANDSAT)[0]):
        assert set(ours["properties"]) == set(real["properties"])
        assert set(ours["assets"]) <= set(real["assets"])
        for key in ("coastal", "blue", "green", "red", "nir08", "swir16", "swir22", "qa_pixel"):
            _compare_asset(ours["assets"][key], real["assets"][key], key)
        ours_bits = ours["assets"]["qa_pixel"]["classification:bitfields"]
        real_bits = real["assets"]["qa_pixel"]["classification:bitfields"]
        assert [(b["name"], b["offset"], b["length"]) for b in ours_bits] == [
            (b["name"], b["offset"], b["length"]) for b in real_bits
        ]
        assert re.fullmatch(r"LC0[89]_L2SR_\d{6}_\d{8}_02_T1", ours["id"])


# --------------------------------------------------------------------------- Sentinel-2 content


def test_same_day_overlapping_granules(s2_items: list[dict]) -> None:
    by_time = defaultdict(list)
    for item in s2_items:
        by_time[item["properties"]["datetime"]].append(item)
    pairs = [v for v in by_time.values() if len(v) == 2]
    assert len(pairs) >= 40
    for a, b in pairs[:5]:
        assert a["properties"]["grid:code"] != b["properties"]["grid:code"]
        assert a["properties"]["s2:datatake_id"] == b["properties"]["s2:datatake_id"]
        ax, bx = a["assets"]["red"]["proj:transform"][2], b["assets"]["red"]["proj:transform"][2]
        a_width = a["assets"]["red"]["proj:shape"][1] * 10
        assert ax < bx < ax + a_width  # the granules overlap


def test_partial_granules_have_nodata_beyond_their_footprint(s2_items: list[dict]) -> None:
    partial = [i for i in s2_items if 0 < i["properties"]["s2:nodata_pixel_percentage"] < 100]
    assert len(partial) >= 10
    for item in partial[:3]:
        scl = _read(item["assets"]["scl"]["href"])
        red = _read(item["assets"]["red"]["href"])
        swir = _read(item["assets"]["swir16"]["href"])
        nodata20 = scl == 0
        assert 0 < nodata20.mean() < 1
        assert np.isclose(100 * nodata20.mean(), item["properties"]["s2:nodata_pixel_percentage"])
        assert np.array_equal(swir == 0, nodata20)
        assert np.array_equal(red == 0, np.repeat(np.repeat(nodata20, 2, 0), 2, 1))


def test_scl_has_clouds_shadows_and_clear_classes(s2_items: list[dict]) -> None:
    seen: set[int] = set()
    for item in s2_items[::4]:
        seen |= set(np.unique(_read(item["assets"]["scl"]["href"])).tolist())
    assert {3, 4, 5, 6, 8, 9, 10} <= seen
    assert seen <= set(range(12))
    covers = [i["properties"]["eo:cloud_cover"] for i in s2_items]
    assert min(covers) < 5 and max(covers) > 95
    assert sum(c < 10 for c in covers) >= 5 and sum(c > 90 for c in covers) >= 5


def test_dn_carries_the_boa_offset_and_clouds_are_bright(s2_items: list[dict]) -> None:
    bright, clear, shade = [], [], []
    for item in s2_items[::3]:
        scl = np.repeat(np.repeat(_read(item["assets"]["scl"]["href"]), 2, 0), 2, 1)
        blue = _read(item["assets"]["blue"]["href"]).astype(float)
        nir = _read(item["assets"]["nir"]["href"]).astype(float)
        valid = scl > 0
        assert blue[valid].min() >= 1 and (blue[~valid] == 0).all()
        bright += list(blue[scl == 9])
        clear += list(blue[np.isin(scl, [4, 5])])
        shade += list(nir[scl == 3])
        clear_nir = nir[np.isin(scl, [4, 5])]
        if clear_nir.size and (scl == 3).any():
            assert nir[scl == 3].mean() < clear_nir.mean()
    assert np.mean(bright) > 1000 + 0.4 * 10000  # thick cloud: reflectance > 0.4
    assert 1000 + 0.01 * 10000 < np.median(clear) < 1000 + 0.15 * 10000


def _class_series(archive: DemoArchive, s2_items: list[dict]) -> dict[int, list[tuple[int, float, float]]]:
    """Per class: (day of year, mean NDVI, mean NIR reflectance) over clear pixels of full,
    single-granule views."""
    classes, lc_transform = _landcover(archive)
    series: dict[int, list[tuple[int, float, float]]] = defaultdict(list)
    for item in s2_items:
        if item["properties"]["s2:nodata_pixel_percentage"] > 0:
            continue
        red_a, nir_a = item["assets"]["red"], item["assets"]["nir"]
        red = (_read(red_a["href"]).astype(float) - 1000) / 1e4
        nir = (_read(nir_a["href"]).astype(float) - 1000) / 1e4
        scl = np.repeat(np.repeat(_read(item["assets"]["scl"]["href"]), 2, 0), 2, 1)
        lc = _window_of(classes, lc_transform, red_a["proj:transform"], red.shape)
        clear = np.isin(scl, [4, 5, 6])
        ndvi = (nir - red) / (nir + red + 1e-6)
        doy = datetime.fromisoformat(item["properties"]["datetime"]).timetuple().tm_yday
        for cls in np.unique(lc):
            m = clear & (lc == cls)
            if m.sum() >= 30:
                series[int(cls)].append((doy, float(ndvi[m].mean()), float(nir[m].mean())))
    return series


def test_phenology_is_visible(archive: DemoArchive, s2_items: list[dict]) -> None:
    series = _class_series(archive, s2_items)

    def amplitude(cls: int) -> float:
        values = np.array([v for _, v, _ in series[cls]])
        return float(np.percentile(values, 90) - np.percentile(values, 10))

    def mean_ndvi(cls: int, first: int, last: int) -> float:
        return float(np.mean([v for d, v, _ in series[cls] if first <= d <= last]))

    assert amplitude(LandCover.WINTER_CEREAL) > 0.3
    assert amplitude(LandCover.WINTER_CEREAL) > 2 * amplitude(LandCover.EVERGREEN_FOREST)
    assert amplitude(LandCover.EVERGREEN_FOREST) < 0.15
    # Winter cereal peaks in late spring and is bare after the harvest; maize peaks in August.
    assert mean_ndvi(LandCover.WINTER_CEREAL, 120, 170) > mean_ndvi(LandCover.WINTER_CEREAL, 225, 260) + 0.3
    if LandCover.MAIZE in series:
        assert mean_ndvi(LandCover.MAIZE, 210, 250) > mean_ndvi(LandCover.MAIZE, 100, 140) + 0.3
    # Broadleaf woods leaf out; water stays dark in the NIR with negative NDVI.
    assert mean_ndvi(LandCover.DECIDUOUS_FOREST, 160, 240) > mean_ndvi(LandCover.DECIDUOUS_FOREST, 1, 60) + 0.15
    water = np.array([(v, n) for _, v, n in series[LandCover.WATER]])
    assert np.median(water[:, 1]) < 0.05 and np.median(water[:, 0]) < 0


def test_cloud_shadows_fall_away_from_the_sun() -> None:
    """Cross-correlating cloud and shadow masks recovers the sun-geometry displacement."""
    spec = DemoSpec(bounds=(630_000.0, 5_756_000.0, 646_000.0, 5_772_000.0))
    grid = Grid(630_000.0, 5_772_000.0, 40.0, 400, 400)
    when = datetime(2024, 4, 20, 11, 0, tzinfo=UTC)
    weather = Weather(day=when.date(), cloud_cover=0.25, cloud_height=1500.0, cloud_scale=800.0,
                      wind=(0.0, 0.0), cirrus=0.0, wetness=0.3, water_wind=0.5, snow=0.0)
    elevation, azimuth = solar_position(when, -1.0, 52.0)
    assert 45 < elevation < 52 and 150 < azimuth < 190
    s = sky(spec, weather, grid, grid, when, elevation, azimuth)
    cloud = (s.cloud > 0.5).astype(float)
    shadow = (s.shadow > 0.45).astype(float)
    assert 0.1 < cloud.mean() < 0.35 and shadow.mean() > 0.05
    corr = np.fft.irfft2(np.conj(np.fft.rfft2(cloud - cloud.mean())) * np.fft.rfft2(shadow - shadow.mean()),
                         s=cloud.shape)
    dy, dx = np.unravel_index(np.argmax(corr), corr.shape)
    dy, dx = (dy + 200) % 400 - 200, (dx + 200) % 400 - 200
    reach = 1500.0 / math.tan(math.radians(elevation))
    east = -reach * math.sin(math.radians(azimuth))
    north = -reach * math.cos(math.radians(azimuth))
    assert abs(dx * 40 - east) <= 80 and abs(-dy * 40 - north) <= 80


# --------------------------------------------------------------------------- Sentinel-1 and Landsat content


def test_sentinel1_backscatter_by_class(archive: DemoArchive) -> None:
    classes, lc_transform = _landcover(archive)
    means: dict[int, list[float]] = defaultdict(list)
    vh_crop: list[tuple[int, float]] = []
    nodata_seen = False
    for item in archive.item_dicts(S1):
        vv = _read(item["assets"]["vv"]["href"])
        vh = _read(item["assets"]["vh"]["href"])
        assert vv.dtype == np.float32
        valid = vv != -32768
        nodata_seen |= not valid.all()
        assert (vv[valid] > 0).all() and np.array_equal(valid, vh != -32768)
        for cls in (LandCover.URBAN, LandCover.DECIDUOUS_FOREST, LandCover.WINTER_CEREAL, LandCover.WATER):
            m = valid & (classes == cls)
            means[cls].append(10 * np.log10(vv[m].mean()))
        m = valid & (classes == LandCover.MAIZE)
        if m.any():
            doy = datetime.fromisoformat(item["properties"]["datetime"]).timetuple().tm_yday
            vh_crop.append((doy, 10 * np.log10(vh[m].mean())))
    urban, forest, crop, water = (np.mean(means[c]) for c in (
        LandCover.URBAN, LandCover.DECIDUOUS_FOREST, LandCover.WINTER_CEREAL, LandCover.WATER))
    assert urban > forest > crop > water + 5
    assert -25 < water < -13 and -6 < urban < 2
    assert nodata_seen  # the ascending swath edge clips a corner
    if vh_crop:
        summer = np.mean([v for d, v in vh_crop if 200 <= d <= 250])
        spring = np.mean([v for d, v in vh_crop if 90 <= d <= 140])
        assert summer > spring + 1.5  # a growing maize canopy raises VH


def test_landsat_qa_bits_are_consistent(archive: DemoArchive) -> None:
    classes, lc_transform = _landcover(archive)
    cloudy_blue, clear_blue = [], []
    for item in archive.item_dicts(LANDSAT):
        qa = _read(item["assets"]["qa_pixel"]["href"]).astype(np.uint32)
        blue = _read(item["assets"]["blue"]["href"]).astype(float) * 2.75e-5 - 0.2
        cloud = (qa & CLOUD) > 0
        assert not (qa & FILL).any()
        assert np.array_equal((qa & CLEAR) > 0, ~cloud & ((qa & DILATED) == 0))
        assert ((qa[cloud] >> 8) & 3 == 3).all()  # cloud bit => high cloud confidence
        assert (((qa >> 8) & 3) >= 1).all()
        assert ((qa[(qa & SHADOW) > 0] >> 10) & 3 == 3).all()
        assert ((qa[(qa & CIRRUS) > 0] >> 14) & 3 == 3).all()
        assert not ((qa & WATER) > 0)[cloud].any()
        assert not ((qa & DILATED) > 0)[cloud].any()
        assert math.isclose(item["properties"]["eo:cloud_cover"], round(100 * cloud.mean(), 2))
        cloudy_blue += list(blue[cloud])
        clear_blue += list(blue[((qa & CLEAR) > 0) & ((qa & SHADOW) == 0)])
    assert cloudy_blue and clear_blue
    assert np.mean(cloudy_blue) > 0.35 > 0.1 > np.median(clear_blue)


# --------------------------------------------------------------------------- loading and determinism


def test_odc_stac_loads_exact_dns(archive: DemoArchive) -> None:
    import odc.stac
    from odc.geo.geobox import GeoBox

    for collection, bands in ((S2, ["red", "swir16", "scl"]), (S1, ["vv"]), (LANDSAT, ["blue", "qa_pixel"])):
        raw = archive.item_dicts(collection)[3]
        item = pystac.Item.from_dict(raw)
        for band in bands:
            asset = raw["assets"][band]
            t = asset.get("proj:transform") or raw["properties"]["proj:transform"]
            shape = asset.get("proj:shape") or raw["properties"]["proj:shape"]
            geobox = GeoBox(tuple(shape), Affine(*t[:6]), f"EPSG:{SMALL.epsg}")
            ds = odc.stac.load([item], bands=[band], geobox=geobox, resampling="nearest")
            loaded = ds[band].values[0]
            expected = _read(asset["href"])
            assert loaded.dtype == expected.dtype == np.dtype(asset["raster:bands"][0]["data_type"])
            assert np.array_equal(loaded, expected), (collection, band)


def _normalised(archive: DemoArchive) -> list[dict]:
    root = archive.root.resolve().as_uri()
    text = json.dumps([archive.item_dicts(c, raw=True) for c in archive.collections])
    return json.loads(text.replace(root, "ROOT"))


def test_same_seed_same_archive_other_seed_differs(tmp_path: Path) -> None:
    first = generate_demo_archive(SHORT, tmp_path / "a", workers=2)  # worker processes
    second = generate_demo_archive(SHORT, tmp_path / "b", workers=1)  # inline
    other = generate_demo_archive(SHORT.model_copy(update={"seed": 7}), tmp_path / "c")
    assert sum(first.item_counts.values()) >= 8
    # file:checksum / file:size are in the items, so equal items mean byte-identical COGs.
    assert _normalised(first) == _normalised(second)
    assert (first.root / "landcover.tif").read_bytes() == (second.root / "landcover.tif").read_bytes()
    for c in first.collections:
        assert first.catalog_paths[c].read_bytes() != b""
        for x, y in zip(first.item_dicts(c), second.item_dicts(c), strict=True):
            for key in list(x["assets"])[:2]:
                assert np.array_equal(_read(x["assets"][key]["href"]), _read(y["assets"][key]["href"]))
    a, c = _normalised(first), _normalised(other)
    assert [i["id"] for i in a[0]] == [i["id"] for i in c[0]]  # same schedule...
    s2a, s2c = first.item_dicts(S2)[0], other.item_dicts(S2)[0]
    assert s2a["assets"]["red"]["file:checksum"] != s2c["assets"]["red"]["file:checksum"]
    assert not np.array_equal(_read(s2a["assets"]["red"]["href"]), _read(s2c["assets"]["red"]["href"]))
    assert not np.array_equal(*(_landcover(x)[0] for x in (first, other)))  # ...other landscape


def test_regeneration_is_idempotent(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    first = generate_demo_archive(SHORT, out)
    marker = out / "demo-archive.json"
    stamp = marker.stat().st_mtime_ns
    again = generate_demo_archive(SHORT, out)
    assert again == first and marker.stat().st_mtime_ns == stamp  # reused, not rewritten
    items_before = _normalised(first)
    parquet_before = {c: p.read_bytes() for c, p in first.catalog_paths.items()}
    forced = generate_demo_archive(SHORT, out, force=True)
    assert _normalised(forced) == items_before
    assert {c: p.read_bytes() for c, p in forced.catalog_paths.items()} == parquet_before
    assert not list(out.glob(".staging-*"))
    other = generate_demo_archive(SHORT.model_copy(update={"seed": 3}), out)
    assert other.spec.seed == 3 and _normalised(other) != items_before


def test_refuses_to_overwrite_foreign_folders(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "precious.txt").write_text("not ours")
    with pytest.raises(DemoArchiveError, match="not a demo archive"):
        generate_demo_archive(SHORT, tmp_path)
    assert (tmp_path / "data" / "precious.txt").exists()
