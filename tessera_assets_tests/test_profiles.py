"""Collection profiles and load plans on every real catalog item in shared/fixtures/stac.

Each item (including every item of the ItemCollections) must produce the load plan its catalog
calls for: asset keys, data type, nodata, scale/offset and where they came from, the S2 BOA
offset, the S1 orbit direction (derived for OPERA), Landsat QA bits, the solar day. Also:
duplicates across reprocessings and catalogs, and plans that survive a geoparquet round trip.
"""

from __future__ import annotations

import copy
import io
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pystac
import pytest
import stac_geoparquet.arrow as sga

from tessera_assets.grid import Tile
from tessera_assets.sources.bands import BOA_OFFSET, LANDSAT_BANDS, S2_BANDS
from tessera_assets.sources.decisions import (
    acquisition_key,
    centroid_lon,
    item_datetime,
    parse_datetime,
    s1_orbit,
    s2_boa_offset,
    solar_day,
)
from tessera_assets.sources.load_plan import load_plan
from tessera_assets.sources.manifest import SceneManifest, build_manifest, drop_duplicates
from tessera_assets.sources.plan_record import (
    PlanNotRecordedError,
    recorded_decision,
    recorded_plan,
)
from tessera_assets.sources.profiles import ProfileError, profile_for
from tessera_assets_tests.fixtures import stac_fixture_dir

pytestmark = pytest.mark.filterwarnings("ignore:Could not parse bucket:UserWarning")

S2_COMMON = {"B04": "red", "B02": "blue", "B03": "green", "B08": "nir", "B8A": "nir08",
             "B05": "rededge1", "B06": "rededge2", "B07": "rededge3", "B11": "swir16",
             "B12": "swir22", "SCL": "scl"}
S2_PC = {**{b: b for b in S2_BANDS}, "SCL": "SCL"}
S2_CDSE = {"B04": "B04_10m", "B02": "B02_10m", "B03": "B03_10m", "B08": "B08_10m",
           "B8A": "B8A_20m", "B05": "B05_20m", "B06": "B06_20m", "B07": "B07_20m",
           "B11": "B11_20m", "B12": "B12_20m", "SCL": "SCL_20m"}
LANDSAT = {**{b: b for b in LANDSAT_BANDS}, "qa_pixel": "qa_pixel"}


@dataclass(frozen=True)
class Expect:
    """What one catalog's item must turn into."""

    profile: str
    sensor: str
    assets: dict[str, str]
    data_type: str
    nodata: float
    scale: float
    offset: float
    source: str
    boa: int | None = None
    boa_reason: str = ""
    orbit: str | None = None
    orbit_reason: str = ""
    day: date | None = None  # None: the date in the item id (ItemCollections)
    extra: dict[str, str] = field(default_factory=dict)


def _s2(profile: str, assets: dict[str, str], boa: int, reason: str, source: str,
        day: date | None = None) -> Expect:
    return Expect(profile, "s2", assets, "uint16", 0.0, 1e-4, -boa * 1e-4, source, boa=boa,
                  boa_reason=reason, day=day)


def _landsat(profile: str, source: str, day: date) -> Expect:
    return Expect(profile, "landsat", LANDSAT, "uint16", 0.0, 2.75e-5, -0.2, source, day=day,
                  extra={"qa_nodata": "1"})


EXPECTED: dict[str, Expect] = {
    "asf__OPERA_L2_RTC-S1_V1_1__OPERA_L2_RTC-S1_T063-133417-IW3_20240701T001410Z_20240701T044329Z_S1A_30_v1.0.json":
        Expect("asf/opera-rtc-s1", "s1", {"vv": "0_VV", "vh": "0_VH"}, "float32", math.nan,
               1.0, 0.0, "profile defaults: OPERA RTC-S1", orbit="ascending",
               orbit_reason="derived: local solar time 18:00", day=date(2024, 6, 30)),
    "cdse__sentinel-2-l2a__S2C_MSIL2A_20250330T100051_N0511_R122_T33UWP_20250330T145914.json":
        _s2("cdse/sentinel-2-l2a", S2_CDSE, BOA_OFFSET, "baseline 05.11 (processing:version)",
            "asset raster fields (scale, offset, nodata, data_type)", date(2025, 3, 30)),
    "earth-search__landsat-c2-l2__LC08_L2SP_033032_20231008_02_T1.json":
        _landsat("landsat-c2-l2", "raster:bands (scale, offset, nodata, data_type)",
                 date(2023, 10, 8)),
    "earth-search__sentinel-2-c1-l2a__S2B_T20EPT_20250731T131905_L2A.json":
        _s2("earth-search/sentinel-2-c1-l2a", S2_COMMON, BOA_OFFSET, "baseline 05.11",
            "raster:bands", date(2025, 7, 31)),
    "earth-search__sentinel-2-c1-l2a__itemcollection-MGRS-13TDE-20240331-20240422.json":
        _s2("earth-search/sentinel-2-c1-l2a", S2_COMMON, BOA_OFFSET, "baseline 05.10",
            "raster:bands"),
    "earth-search__sentinel-2-l2a__S2A_13TDE_20231008_0_L2A.json":
        _s2("earth-search/sentinel-2-l2a", S2_COMMON, 0,
            "removed the offset in its COGs; earthsearch:boa_offset_applied=true agrees",
            "declared offset -0.1 overridden by the BOA decision", date(2023, 10, 8)),
    "earth-search__sentinel-2-l2a__S2B_20EPT_20250731_0_L2A.json":
        _s2("earth-search/sentinel-2-l2a", S2_COMMON, 0,
            "baseline 05.11 (s2:processing_baseline) >= 04.00; earth-search removed",
            "declared offset -0.1 overridden", date(2025, 7, 31)),
    "planetary-computer__landsat-c2-l2__LC09_L2SP_090091_20250310_02_T1.json":
        _landsat("landsat-c2-l2", "raster:bands", date(2025, 3, 11)),  # 23:53 UTC, 146.7°E
    "planetary-computer__landsat-c2-l2__LC09_L2SR_084082_20250722_02_T1.json":
        _landsat("landsat-c2-l2", "raster:bands", date(2025, 7, 23)),
    "planetary-computer__sentinel-1-rtc__S1A_IW_GRDH_1SDV_20240419T045904_20240419T045916_053498_067DF2_rtc.json":
        Expect("planetary-computer/sentinel-1-rtc", "s1", {"vv": "vv", "vh": "vh"}, "float32",
               -32768.0, 1.0, 0.0, "raster:bands (nodata, data_type)", orbit="descending",
               orbit_reason="sat:orbit_state (local solar time 06:0", day=date(2024, 4, 19)),
    "planetary-computer__sentinel-1-rtc__S1A_IW_GRDH_1SDV_20250311T044231_20250311T044249_058252_073302_rtc.json":
        Expect("planetary-computer/sentinel-1-rtc", "s1", {"vv": "vv", "vh": "vh"}, "float32",
               -32768.0, 1.0, 0.0, "raster:bands (nodata, data_type)", orbit="descending",
               orbit_reason="sat:orbit_state", day=date(2025, 3, 11)),
    "planetary-computer__sentinel-2-l2a__S2A_MSIL2A_20190101T000001_R116_T59VNE_20201007T214705.json":
        _s2("planetary-computer/sentinel-2-l2a", S2_PC, 0, "baseline 02.12", "profile defaults",
            date(2019, 1, 1)),
    "planetary-computer__sentinel-2-l2a__S2B_MSIL2A_20220612T182919_R027_T24XWR_20220613T123251.json":
        _s2("planetary-computer/sentinel-2-l2a", S2_PC, BOA_OFFSET, "baseline 04.00",
            "profile defaults", date(2022, 6, 12)),
    "planetary-computer__sentinel-2-l2a__S2B_MSIL2A_20250312T014549_R074_T53NKG_20250312T041213.json":
        _s2("planetary-computer/sentinel-2-l2a", S2_PC, BOA_OFFSET, "baseline 05.11",
            "profile defaults", date(2025, 3, 12)),
    "planetary-computer__sentinel-2-l2a__itemcollection-T13TDE-20240823-20240825.json":
        _s2("planetary-computer/sentinel-2-l2a", S2_PC, BOA_OFFSET, "baseline 05.11",
            "profile defaults"),
    "planetary-computer__sentinel-2-l2a__itemcollection-T35MNM-202006-202007.json":
        _s2("planetary-computer/sentinel-2-l2a", S2_PC, 0, "baseline 02.12 (s2:processing_"
            "baseline) < 04.00 carries no offset", "profile defaults"),
    "usgs__landsat-c2l2-sr__LC09_L2SP_092068_20230607_20230609_02_T1_SR.json":
        _landsat("usgs/landsat-c2l2-sr", "profile defaults: Landsat C2 L2 SR defaults",
                 date(2023, 6, 8)),
}


def _fixture_items() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(stac_fixture_dir().glob("*.json")):
        doc = json.loads(path.read_text())
        feats = doc["features"] if doc.get("type") == "FeatureCollection" else [doc]
        out.extend((path.name, f) for f in feats)
    return out


FIXTURE_ITEMS = _fixture_items()


def _item(name: str) -> pystac.Item:
    return pystac.Item.from_dict(json.loads((stac_fixture_dir() / name).read_text()))


def test_every_fixture_file_has_expectations() -> None:
    files = {p.name for p in stac_fixture_dir().glob("*.json")}
    assert files == set(EXPECTED), "add expectations for new fixtures (or remove stale ones)"
    assert len(FIXTURE_ITEMS) == 39  # 14 single items + 10 + 2 + 13 in the ItemCollections
    assert len({d["id"] for _, d in FIXTURE_ITEMS}) == len(FIXTURE_ITEMS)


@pytest.mark.parametrize(("name", "doc"), FIXTURE_ITEMS,
                         ids=[d["id"] for _, d in FIXTURE_ITEMS])
def test_load_plan_of_every_fixture_item(name: str, doc: dict) -> None:
    want = EXPECTED[name]
    item = pystac.Item.from_dict(copy.deepcopy(doc))
    plan = load_plan(item)
    assert plan.profile.name == want.profile and plan.sensor == want.sensor
    assert {b.band: b.asset for b in plan.bands} == want.assets
    assert all(item.assets[b.asset].href == b.href for b in plan.bands)
    expected_day = want.day or datetime.strptime(_id_date(item.id), "%Y%m%d").date()
    assert plan.day == expected_day == solar_day(item)
    first = plan.bands[0]
    assert first.data_type == want.data_type
    assert (math.isnan(first.nodata) if math.isnan(want.nodata) else first.nodata == want.nodata)
    assert first.scale == pytest.approx(want.scale) and first.offset == pytest.approx(want.offset)
    assert want.source in first.source, first.source
    for b in plan.bands:
        qa = b.band in ("SCL", "qa_pixel")
        assert b.resampling == ("nearest" if qa else "bilinear")
        if not qa:  # every reflectance/backscatter band gets the same treatment
            assert (b.data_type, b.scale) == (first.data_type, first.scale)
            assert b.offset == pytest.approx(first.offset)
    cfg = plan.stac_cfg()[plan.collection]["assets"]
    assert set(cfg) == set(want.assets.values())
    assert cfg[first.asset]["data_type"] == want.data_type
    if want.sensor == "s2":
        assert plan.boa_offset is not None and plan.boa_offset.value == want.boa
        assert want.boa_reason in plan.boa_offset.reason, plan.boa_offset.reason
        scl = plan.band("SCL")
        assert (scl.data_type, scl.nodata, scl.resampling) == ("uint8", 0, "nearest")
        assert plan.orbit is None
    elif want.sensor == "s1":
        assert plan.orbit is not None and plan.orbit.value == want.orbit
        assert want.orbit_reason in plan.orbit.reason, plan.orbit.reason
        assert plan.boa_offset is None
    else:
        qa = plan.band("qa_pixel")
        assert (qa.data_type, qa.nodata) == ("uint16", 1.0)
        assert plan.qa_bits is not None
        assert plan.qa_bits.value == {"fill": 0, "dilated_cloud": 1, "cirrus": 2, "cloud": 3,
                                      "cloud_shadow": 4}
        assert "classification:bitfields" in plan.qa_bits.reason
    record = json.loads(plan.record())
    assert set(record) == set(want.assets)
    assert record[first.band]["asset"] == first.asset


def _id_date(item_id: str) -> str:
    import re

    return re.search(r"(20\d{6})T", item_id)[1]  # type: ignore[index]


def test_plans_survive_a_geoparquet_round_trip() -> None:
    """Served items come back with normalised timestamps, ints as floats and ``None`` for
    fields other items had: the plans and decisions must not change."""
    groups: dict[str, list[dict]] = {}
    for name, doc in FIXTURE_ITEMS:
        groups.setdefault(name.split("__")[0], []).append(copy.deepcopy(doc))
    checked = 0
    for docs in groups.values():
        buf = io.BytesIO()
        pq.write_table(sga.parse_stac_items_to_arrow(copy.deepcopy(docs)).read_all(), buf)
        back = list(sga.stac_table_to_items(pq.read_table(io.BytesIO(buf.getvalue()))))
        for before, after in zip(docs, back, strict=True):
            a, b = load_plan(pystac.Item.from_dict(before)), load_plan(pystac.Item.from_dict(after))
            assert (a.record(), a.day, a.when) == (b.record(), b.day, b.when)
            assert (a.boa_offset, a.orbit, a.qa_bits) == (b.boa_offset, b.orbit, b.qa_bits)
            checked += 1
    assert checked == len(FIXTURE_ITEMS)


# --------------------------------------------------------------------------- decisions


def test_same_acquisition_in_two_earth_search_collections_harmonises_equally() -> None:
    old = _item("earth-search__sentinel-2-l2a__S2B_20EPT_20250731_0_L2A.json")
    c1 = _item("earth-search__sentinel-2-c1-l2a__S2B_T20EPT_20250731T131905_L2A.json")
    assert solar_day(old) == solar_day(c1)
    assert acquisition_key(old, "s2") == acquisition_key(c1, "s2") == (
        "s2", "S2B", "20250731T131909", "095", "20EPT")
    # Earth Search rewrote the old collection's COGs without the offset; C1 keeps it.
    assert s2_boa_offset(c1).value - s2_boa_offset(old).value == BOA_OFFSET
    assert load_plan(old).band("B04").offset - load_plan(c1).band("B04").offset == pytest.approx(0.1)


def test_boa_flag_is_reported_but_the_baseline_decides() -> None:
    doc = json.loads((stac_fixture_dir() / "earth-search__sentinel-2-l2a__S2B_20EPT_20250731_0_L2A.json").read_text())
    doc["properties"]["earthsearch:boa_offset_applied"] = False  # as in earth-search#66/#71
    decision = s2_boa_offset(pystac.Item.from_dict(doc))
    assert decision.value == 0
    assert "earthsearch:boa_offset_applied=false disagrees (flag ignored)" in decision.reason
    doc["properties"].pop("s2:processing_baseline")  # the product name still says N0511
    assert "product name N0511" in s2_boa_offset(pystac.Item.from_dict(doc)).reason
    pc = json.loads((stac_fixture_dir() / "planetary-computer__sentinel-2-l2a__S2B_MSIL2A_20250312T014549_R074_T53NKG_20250312T041213.json").read_text())
    for key in ("s2:processing_baseline", "s2:product_uri"):
        pc["properties"].pop(key)
    decision = s2_boa_offset(pystac.Item.from_dict(pc))  # id has no N: falls back to the date
    assert decision.value == BOA_OFFSET and "no baseline in item; acquired after" in decision.reason
    pc["properties"]["s2:processing_baseline"] = "garbage"
    with pytest.raises(ProfileError, match="unreadable s2:processing_baseline"):
        s2_boa_offset(pystac.Item.from_dict(pc))


def test_opera_orbit_is_derived_from_local_solar_time() -> None:
    name = "asf__OPERA_L2_RTC-S1_V1_1__OPERA_L2_RTC-S1_T063-133417-IW3_20240701T001410Z_20240701T044329Z_S1A_30_v1.0.json"
    doc = json.loads((stac_fixture_dir() / name).read_text())
    item = pystac.Item.from_dict(copy.deepcopy(doc))
    decision = s1_orbit(item)
    assert decision.value == "ascending"
    assert "track (relative orbit) 63 from burst id T063-133417-IW3" in decision.reason
    for when, orbit in (("2024-07-01T12:14:10.000Z", "descending"),
                        ("2024-07-01T10:30:00Z", "descending"),
                        ("2024-07-02T01:30:00Z", "ascending")):
        d = copy.deepcopy(doc)
        d["properties"]["datetime"] = when
        assert s1_orbit(pystac.Item.from_dict(d)).value == orbit, when
    d = copy.deepcopy(doc)
    d["properties"]["datetime"] = "2024-07-01T18:14:10Z"  # 12:00 local: neither pass
    with pytest.raises(ProfileError, match="not within 4 h of 06:00 or 18:00"):
        s1_orbit(pystac.Item.from_dict(d))
    d["properties"]["sat:orbit_state"] = "sideways"
    with pytest.raises(ProfileError, match="unusable sat:orbit_state"):
        s1_orbit(pystac.Item.from_dict(d))


def test_times_and_places() -> None:
    assert parse_datetime("2025-03-11 04:42:31.719576+00:00") == datetime(
        2025, 3, 11, 4, 42, 31, 719576, tzinfo=UTC)
    assert parse_datetime("2022-06-13T12:32:51.87450Z").microsecond == 874500
    assert parse_datetime("2024-07-01T00:14:10") == datetime(2024, 7, 1, 0, 14, 10, tzinfo=UTC)
    assert parse_datetime("2024-07-01t02:14:10+02:00") == parse_datetime("2024-07-01T00:14:10z")
    with pytest.raises(ProfileError, match="unreadable datetime"):
        parse_datetime("yesterday")
    s1 = _item("planetary-computer__sentinel-1-rtc__S1A_IW_GRDH_1SDV_20250311T044231_20250311T044249_058252_073302_rtc.json")
    s1.properties["datetime"] = None
    s1.datetime = None
    assert item_datetime(s1) == datetime(2025, 3, 11, 4, 42, 31, 719576, tzinfo=UTC)
    crossing = copy.deepcopy(s1)
    crossing.bbox = [179.5, -17.0, -179.5, -16.0]
    assert centroid_lon(crossing) == pytest.approx(180.0) or centroid_lon(crossing) == pytest.approx(-180.0)
    assert solar_day(crossing) == date(2025, 3, 11)  # 04:42 UTC + 12 h


def test_profile_lookup() -> None:
    assert profile_for("sentinel-2-l2a").name == "planetary-computer/sentinel-2-l2a"
    assert profile_for("sentinel-2-c1-l2a").name == "earth-search/sentinel-2-c1-l2a"
    assert profile_for("OPERA_L2_RTC-S1_V1_2").name == "asf/opera-rtc-s1"
    assert profile_for("cdse/sentinel-2-l2a").band_assets["B8A"] == "B8A_20m"
    with pytest.raises(ProfileError, match="no collection profile"):
        profile_for("sentinel-3-olci")
    item = _item("cdse__sentinel-2-l2a__S2C_MSIL2A_20250330T100051_N0511_R122_T33UWP_20250330T145914.json")
    del item.assets["B8A_20m"]
    with pytest.raises(ProfileError, match=r"missing assets \['B8A_20m'\]"):
        load_plan(item)
    item.collection_id = "sentinel-5p"
    with pytest.raises(ProfileError, match="no collection profile for collection 'sentinel-5p'"):
        profile_for(item)


def test_landsat_qa_layout_is_checked() -> None:
    doc = json.loads((stac_fixture_dir() / "earth-search__landsat-c2-l2__LC08_L2SP_033032_20231008_02_T1.json").read_text())
    for field_ in doc["assets"]["qa_pixel"]["classification:bitfields"]:
        if field_["name"] == "cloud":
            field_["offset"] = 5
    with pytest.raises(ProfileError, match="QA_PIXEL bit layout"):
        load_plan(pystac.Item.from_dict(doc))


# --------------------------------------------------------------------------- duplicates


TILE = Tile(zone=13, col=25, row=261, size=64)


def _reprocessed(doc: dict, *, baseline: str | None = None, generated: str | None = None,
                 new_id: str | None = None) -> pystac.Item:
    d = copy.deepcopy(doc)
    props = d["properties"]
    if baseline:
        n = "N" + baseline.replace(".", "")
        props["s2:processing_baseline"] = baseline
        props["s2:product_uri"] = props["s2:product_uri"].replace("N0511", n)
    if generated:
        props["s2:generation_time"] = generated
    d["id"] = new_id or d["id"]
    return pystac.Item.from_dict(d)


def test_duplicates_keep_the_newest_processing_deterministically() -> None:
    name = "planetary-computer__sentinel-2-l2a__S2B_MSIL2A_20250312T014549_R074_T53NKG_20250312T041213.json"
    doc = json.loads((stac_fixture_dir() / name).read_text())
    original = pystac.Item.from_dict(copy.deepcopy(doc))
    older = _reprocessed(doc, baseline="05.10", new_id=doc["id"] + "_pb0510")
    later = _reprocessed(doc, generated="2025-03-20T00:00:00.000000Z",
                         new_id="S2B_MSIL2A_20250312T014549_R074_T53NKG_20250320T000000")
    twin = _reprocessed(doc, new_id="A_" + doc["id"])  # same everything but the id
    for order in ([original, older, later, twin], [twin, later, older, original]):
        manifest = build_manifest(TILE, 2025, {"sentinel-2-l2a": [copy.deepcopy(i) for i in order]})
        assert [i.id for i in manifest.items] == [later.id]
        assert sorted(d.item_id for d in manifest.duplicates) == sorted(
            [original.id, older.id, twin.id])
        reasons = {d.item_id: d.reason for d in manifest.duplicates}
        assert reasons[older.id].startswith(f"duplicate of {later.id}")
        assert "version 05.10" in reasons[older.id] and "processed 20250320T000000" in reasons[older.id]
    manifest = build_manifest(TILE, 2025, {"sentinel-2-l2a": [copy.deepcopy(original),
                                                               copy.deepcopy(twin)]})
    assert [i.id for i in manifest.items] == [twin.id]  # tie: the smallest id


def test_duplicates_across_collections_and_sensors() -> None:
    es = _item("earth-search__sentinel-2-l2a__S2B_20EPT_20250731_0_L2A.json")
    c1 = _item("earth-search__sentinel-2-c1-l2a__S2B_T20EPT_20250731T131905_L2A.json")
    opera_doc = json.loads((stac_fixture_dir() / "asf__OPERA_L2_RTC-S1_V1_1__OPERA_L2_RTC-S1_T063-133417-IW3_20240701T001410Z_20240701T044329Z_S1A_30_v1.0.json").read_text())
    v11 = copy.deepcopy(opera_doc)
    v11["id"] = v11["id"].replace("20240701T044329Z", "20240905T101010Z").replace("v1.0", "v1.1")
    ls_doc = json.loads((stac_fixture_dir() / "earth-search__landsat-c2-l2__LC08_L2SP_033032_20231008_02_T1.json").read_text())
    ls_pc = copy.deepcopy(ls_doc)
    ls_pc["properties"]["landsat:product_generated"] = "2024-01-01T00:00:00Z"
    items = [es, c1, pystac.Item.from_dict(opera_doc), pystac.Item.from_dict(v11),
             pystac.Item.from_dict(ls_doc), pystac.Item.from_dict(ls_pc)]
    for it in items:
        it.properties["tessera:sensor"] = load_plan(it).sensor
    kept, dups = drop_duplicates(items)
    assert sorted(i.id for i in kept) == sorted([es.id, v11["id"], ls_doc["id"]])
    assert len(dups) == 3
    by_id = {d.item_id: d for d in dups}
    assert by_id[c1.id].collection == "sentinel-2-c1-l2a"
    assert by_id[opera_doc["id"]].reason.startswith(f"duplicate of {v11['id']}")
    # Same Landsat scene from two publications: the later processing is kept; ids tie.
    assert kept[[i.id for i in kept].index(ls_doc["id"])].properties[
        "landsat:product_generated"] == "2024-01-01T00:00:00Z"


# --------------------------------------------------------------------------- manifest


def test_manifest_records_decisions_and_survives_save_and_load(tmp_path: Path) -> None:
    tde = json.loads((stac_fixture_dir() / "earth-search__sentinel-2-c1-l2a__itemcollection-MGRS-13TDE-20240331-20240422.json").read_text())
    es = [pystac.Item.from_dict(d) for d in tde["features"]]
    ls = _item("earth-search__landsat-c2-l2__LC08_L2SP_033032_20231008_02_T1.json")
    opera = _item("asf__OPERA_L2_RTC-S1_V1_1__OPERA_L2_RTC-S1_T063-133417-IW3_20240701T001410Z_20240701T044329Z_S1A_30_v1.0.json")
    broken = _item("planetary-computer__sentinel-2-l2a__S2B_MSIL2A_20250312T014549_R074_T53NKG_20250312T041213.json")
    del broken.assets["SCL"]
    cloudy = copy.deepcopy(es[0])
    cloudy.id = "cloudy"
    cloudy.properties["eo:cloud_cover"] = 99.5
    manifest = build_manifest(
        TILE, 2024,
        {"sentinel-2-c1-l2a": [*es, cloudy], "landsat-c2-l2": [ls],
         "OPERA_L2_RTC-S1_V1_1": [opera], "sentinel-2-l2a": [broken]},
        max_s2_cloud_cover=99, catalog={"preset": "earth-search"},
    )
    assert manifest.counts() == {"s2": 10, "s1": 1, "landsat": 0}
    reasons = {s.item_id: s.reason for s in manifest.skipped}
    assert reasons[ls.id] == "solar day 2023-10-08 outside 2024"
    assert reasons["cloudy"].startswith("eo:cloud_cover 99.5 > 99")
    assert "missing assets ['SCL']" in reasons[broken.id]
    s1 = manifest.sensor_items("s1")[0]
    assert s1.properties["tessera:orbit"] == "ascending"
    assert s1.properties["tessera:solar_day"] == "2024-06-30"
    assert s1.properties["tessera:orbit_method"].startswith("derived: local solar time")
    s2 = manifest.sensor_items("s2")[0]
    assert s2.properties["tessera:boa_offset"] == BOA_OFFSET
    assert json.loads(s2.properties["tessera:load_plan"])["B8A"]["asset"] == "nir08"
    summary = manifest.summary()
    assert summary["mosaic_rules"]["s2"].startswith("per solar day, per pixel: the first granule")
    assert summary["resampling"]["s2"] == {"spectral": "bilinear", "SCL": "nearest"}
    assert summary["catalog"] == {"preset": "earth-search"}
    manifest.save(str(tmp_path / "m" / "2024"))
    back = SceneManifest.load(str(tmp_path / "m" / "2024"))
    assert back.digest() == manifest.digest() == json.loads(
        (tmp_path / "m" / "2024.json").read_text())["digest"]
    assert [i.id for i in back.items] == [i.id for i in manifest.items]
    assert "tessera:boa_offset" not in back.sensor_items("s1")[0].properties
    assert back.days("s2") and back.catalog == {"preset": "earth-search"}


def test_ingestion_reads_back_exactly_the_recorded_plan(tmp_path: Path) -> None:
    """Every fixture item, through a built, saved and reloaded manifest: the plan read back
    from its ``tessera:*`` properties is the plan it was annotated with."""
    checked = 0
    for n, (_, doc) in enumerate(FIXTURE_ITEMS):
        item = pystac.Item.from_dict(copy.deepcopy(doc))
        plan = load_plan(item)
        manifest = build_manifest(TILE, plan.day.year, {item.collection_id: [item]})
        manifest.save(str(tmp_path / str(n)))
        (back,) = SceneManifest.load(str(tmp_path / str(n))).items
        got = recorded_plan(back)
        assert [b.as_record() | {"band": b.band, "href": b.href} for b in got.bands] == [
            b.as_record() | {"band": b.band, "href": b.href} for b in plan.bands]
        assert (got.profile, got.collection, got.when, got.day, got.sensor) == (
            plan.profile, plan.collection, plan.when, plan.day, plan.sensor)
        assert (got.boa_offset, got.orbit, got.qa_bits) == (
            plan.boa_offset, plan.orbit, plan.qa_bits)
        assert got.stac_cfg().keys() == plan.stac_cfg().keys()
        checked += 1
    assert checked == len(FIXTURE_ITEMS)


def test_a_manifest_without_the_recorded_plan_fails_clearly() -> None:
    item = _item("earth-search__landsat-c2-l2__LC08_L2SP_033032_20231008_02_T1.json")
    manifest = build_manifest(TILE, 2023, {"landsat-c2-l2": [item]})
    (kept,) = manifest.items
    assert recorded_decision(kept, "qa_bits") == {"fill": 0, "dilated_cloud": 1, "cirrus": 2,
                                                  "cloud": 3, "cloud_shadow": 4}
    with pytest.raises(PlanNotRecordedError, match="no orbit decision"):
        recorded_decision(kept, "orbit")
    del kept.properties["tessera:qa_bits"]
    with pytest.raises(PlanNotRecordedError, match=f"{kept.id}: .*'tessera:qa_bits'"):
        recorded_plan(kept)
    del kept.properties["tessera:load_plan"]
    with pytest.raises(PlanNotRecordedError, match="does not record 'tessera:load_plan'"):
        recorded_plan(kept)
    with pytest.raises(PlanNotRecordedError, match="tessera:profile"):
        recorded_plan(_item("earth-search__landsat-c2-l2__LC08_L2SP_033032_20231008_02_T1.json"))
