"""Collection profiles on the real catalog items in shared/fixtures/stac."""

from __future__ import annotations

import json

import pystac
import pytest

from tessera_assets.profiles import (
    BOA_OFFSET,
    S2_BANDS,
    profile_for,
    s1_orbit,
    s2_boa_offset,
    solar_day,
)
from tessera_assets_tests.fixtures import stac_fixture_dir


def _item(name: str) -> pystac.Item:
    return pystac.Item.from_dict(json.loads((stac_fixture_dir() / name).read_text()))


S2_CASES = {
    "earth-search__sentinel-2-l2a__S2B_20EPT_20250731_0_L2A.json": 0,
    "earth-search__sentinel-2-l2a__S2A_13TDE_20231008_0_L2A.json": 0,
    "earth-search__sentinel-2-c1-l2a__S2B_T20EPT_20250731T131905_L2A.json": BOA_OFFSET,
    "planetary-computer__sentinel-2-l2a__S2B_MSIL2A_20250312T014549_R074_T53NKG_20250312T041213.json": BOA_OFFSET,
    "planetary-computer__sentinel-2-l2a__S2B_MSIL2A_20220612T182919_R027_T24XWR_20220613T123251.json": BOA_OFFSET,
    "planetary-computer__sentinel-2-l2a__S2A_MSIL2A_20190101T000001_R116_T59VNE_20201007T214705.json": 0,
}


@pytest.mark.parametrize(("name", "offset"), S2_CASES.items())
def test_s2_boa_offset_decided_by_baseline(name: str, offset: int) -> None:
    item = _item(name)
    decision = s2_boa_offset(item)
    assert decision.value == offset, decision.reason
    assert "baseline" in decision.reason
    prof = profile_for(item)
    assert prof.missing_assets(item) == []
    assert list(prof.band_assets) == list(S2_BANDS)


def test_same_acquisition_in_two_earth_search_collections_harmonises_equally() -> None:
    old = _item("earth-search__sentinel-2-l2a__S2B_20EPT_20250731_0_L2A.json")
    c1 = _item("earth-search__sentinel-2-c1-l2a__S2B_T20EPT_20250731T131905_L2A.json")
    assert solar_day(old) == solar_day(c1)
    # Earth Search rewrote the old collection's COGs without the offset; C1 keeps it.
    assert s2_boa_offset(c1).value - s2_boa_offset(old).value == BOA_OFFSET


@pytest.mark.parametrize("name", [
    "planetary-computer__sentinel-1-rtc__S1A_IW_GRDH_1SDV_20250311T044231_20250311T044249_058252_073302_rtc.json",
    "planetary-computer__sentinel-1-rtc__S1A_IW_GRDH_1SDV_20240419T045904_20240419T045916_053498_067DF2_rtc.json",
])
def test_s1_orbit_state(name: str) -> None:
    item = _item(name)
    assert s1_orbit(item).value in {"ascending", "descending"}
    assert profile_for(item).missing_assets(item) == []


def test_landsat_profile_on_pc_items() -> None:
    for name in ["planetary-computer__landsat-c2-l2__LC09_L2SP_090091_20250310_02_T1.json",
                 "planetary-computer__landsat-c2-l2__LC09_L2SR_084082_20250722_02_T1.json"]:
        item = _item(name)
        prof = profile_for(item)
        assert prof.sensor == "landsat" and prof.missing_assets(item) == []
        assert prof.resampling()["qa_pixel"] == "nearest"
