"""Ocean and empty tiles (issue 13.7): ``aoi add`` over open ocean warns with a land fraction
from the bundled Natural Earth 1:110m land mask (no network), and says that materialize will
embed nothing there. The zero-scene materialization itself (NaN scales, a metadata note, no
crash) is tested end to end in ``test_no_s2_partitions.py``."""

from __future__ import annotations

import pytest

from tessera_assets.aoi import land_fraction, land_warning, load_aoi, tiles_for_aoi
from tessera_assets.cli.main import main
from tessera_assets_tests.test_cli import env  # noqa: F401  (fixture)

CORAL_SEA = (152.2, -11.6, 152.4, -11.5)  # open ocean, the coral-sea test location
MID_ATLANTIC = (-30.5, 30.0, -30.3, 30.2)
COLORADO = (-105.1, 40.1, -105.0, 40.2)


@pytest.mark.parametrize(
    ("bbox", "lo", "hi"),
    [
        (CORAL_SEA, 0.0, 0.0),
        (MID_ATLANTIC, 0.0, 0.0),
        (COLORADO, 1.0, 1.0),
        ((-10.5, 35.0, -4.5, 39.0), 0.2, 0.6),  # SW Iberia: part land, part Atlantic
    ],
)
def test_land_fraction_from_the_bundled_mask(bbox, lo: float, hi: float) -> None:
    assert lo <= land_fraction(load_aoi(list(bbox))) <= hi


def test_warning_only_over_open_ocean() -> None:
    sea = load_aoi(list(MID_ATLANTIC))
    tiles = tiles_for_aoi(sea, 2048)
    warning = land_warning(sea, tiles)
    assert warning is not None
    assert (
        "0.0% land" in warning and f"{len(tiles)} of {len(tiles)} tile(s) touch no land" in warning
    )
    land = load_aoi(list(COLORADO))
    assert land_warning(land, tiles_for_aoi(land, 2048)) is None


def test_aoi_add_over_open_ocean_warns_and_registers(env, capsys) -> None:  # noqa: F811
    code = main(["aoi", "add", ",".join(map(str, CORAL_SEA)), "--years", "2024", "--name", "sea"])
    out = capsys.readouterr().out
    assert code == 0  # a warning, not a refusal: the coarse mask misses small islands
    assert "warning:" in out and "0.0% land (Natural Earth 1:110m)" in out
    assert "materialize embeds nothing (NaN scales" in out
