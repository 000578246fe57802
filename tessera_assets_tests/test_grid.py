"""Tile grid: ids, geoboxes, zone windows and AOI → tiles (DESIGN §3)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from pyproj import Transformer
from shapely import geometry as sg

from tessera_assets.grid import (
    PIXEL_SIZE,
    GridError,
    Tile,
    check_tile_size,
    coarsen_factor,
    tile_pixels,
    tiles_for_geometry,
    valid_coarse_resolutions,
    valid_resolutions,
    zone_epsg,
    zone_for_lon,
    zone_geobox,
    zone_grid,
    zone_shape_px,
)


def test_tile_id_round_trip_and_geobox() -> None:
    tile = Tile(zone=30, col=497, row=2841, size=128)
    assert tile.id == "32630_128_497_2841"
    assert Tile.parse(tile.id) == tile
    gb = tile.geobox
    assert gb.shape == (128, 128)
    assert str(gb.crs) == "EPSG:32630"
    assert gb.resolution.x == PIXEL_SIZE and gb.resolution.y == -PIXEL_SIZE
    west, south, east, north = tile.bounds
    assert (gb.boundingbox.left, gb.boundingbox.top) == (west, north)
    assert east - west == 1280.0 and north - south == 1280.0


@pytest.mark.parametrize("bad", ["", "32630_128_1", "4326_128_1_1", "32630_100_1_1", "x_1_2_3"])
def test_bad_tile_ids_are_rejected_clearly(bad: str) -> None:
    with pytest.raises(GridError):
        Tile.parse(bad)


def test_tile_window_is_a_slice_of_the_zone_geobox() -> None:
    tile = Tile(zone=30, col=10, row=20, size=64)
    ys, xs = tile.pixel_window()
    zone = zone_geobox(30)
    sub = zone[ys, xs]
    assert sub == tile.geobox
    assert zone.shape == zone_shape_px()
    # Windows of neighbours touch without overlap and are chunk aligned.
    right = Tile(zone=30, col=11, row=20, size=64)
    assert right.pixel_window()[1].start == xs.stop
    assert xs.start % 32 == 0 and ys.start % 32 == 0


def test_coarse_geobox_and_window() -> None:
    tile = Tile(zone=30, col=3, row=4, size=160)
    gb = tile.geobox_at(100.0)
    assert gb.shape == (16, 16)
    ys, xs = tile.pixel_window(100.0)
    assert (ys.start, xs.start) == (64, 48)
    with pytest.raises(GridError):
        tile.geobox_at(30.0)


def test_southern_tiles_have_negative_northings_in_the_northern_crs() -> None:
    tiles = tiles_for_geometry(sg.box(150.1, -33.9, 150.2, -33.8), 2048)
    assert tiles and all(t.epsg == 32656 for t in tiles)
    assert all(t.bounds[3] < 0 for t in tiles)
    # The tile really covers the AOI: its lon/lat footprint contains the AOI centre.
    assert any(t.footprint_lonlat().contains(sg.Point(150.15, -33.85)) for t in tiles)


def test_aoi_to_tiles_matches_projected_coverage() -> None:
    aoi = sg.box(-1.02, 51.99, -0.98, 52.01)
    tiles = tiles_for_geometry(aoi, 128)
    to_utm = Transformer.from_crs(4326, 32630, always_xy=True)
    # Every tile intersects the AOI, and a dense sample of AOI points is covered by the tiles.
    for t in tiles:
        assert t.footprint_lonlat().intersects(aoi)
    lons, lats = np.meshgrid(np.linspace(-1.0199, -0.9801, 25), np.linspace(51.9901, 52.0099, 25))
    xs, ys = to_utm.transform(lons.ravel(), lats.ravel())
    for x, y in zip(xs, ys, strict=True):
        assert any(t.bounds[0] <= x < t.bounds[2] and t.bounds[1] < y <= t.bounds[3]
                   for t in tiles)
    assert len(tiles) == len(set(tiles))


def test_aoi_across_a_zone_boundary_gets_tiles_in_both_zones() -> None:
    tiles = tiles_for_geometry(sg.box(-0.05, 51.0, 0.05, 51.05), 2048)
    assert {t.zone for t in tiles} == {30, 31}


def test_polar_aoi_is_rejected() -> None:
    with pytest.raises(GridError, match="UTM coverage"):
        tiles_for_geometry(sg.box(10, 84.5, 11, 85), 2048)


def test_tessera_cells_are_centre_named() -> None:
    tile = Tile(zone=30, col=497, row=2841, size=128)
    cells = tile.tessera_cells()
    assert "grid_-1.05_51.95" in cells
    assert all(c.startswith("grid_") for c in cells)


def test_zone_helpers() -> None:
    assert zone_for_lon(-1.0) == 30 and zone_for_lon(179.99) == 60 and zone_for_lon(-180) == 1
    assert zone_epsg(30) == 32630
    with pytest.raises(GridError):
        zone_epsg(61)
    with pytest.raises(GridError):
        Tile(zone=30, col=0, row=0, size=100)


# Outputs of the hand-written lattice (before odc-geo's GridSpec took over), north and south of
# the equator, at zone edges and for several tile sizes: ids, bounds and geoboxes must not move.
GOLDEN_TILES = [
    ((30, 497, 2841, 128), "32630_128_497_2841", (636160.0, 5762240.0, 637440.0, 5763520.0)),
    ((30, 31, 177, 2048), "32630_2048_31_177", (634880.0, 5754560.0, 655360.0, 5775040.0)),
    ((1, 0, 0, 32), "32601_32_0_0", (0.0, 9399680.0, 320.0, 9400000.0)),
    ((60, 47, 897, 2048), "32660_2048_47_897", (962560.0, -8991040.0, 983040.0, -8970560.0)),
    ((56, 16, 875, 2048), "32656_2048_16_875", (327680.0, -8540480.0, 348160.0, -8520000.0)),
    ((56, 1070, 28124, 64), "32656_64_1070_28124", (684800.0, -8600000.0, 685440.0, -8599360.0)),
    ((18, 2, 229, 4096), "32618_4096_2_229", (81920.0, -20800.0, 122880.0, 20160.0)),
    ((33, 398, 2273, 160), "32633_160_398_2273", (636800.0, 5761600.0, 638400.0, 5763200.0)),
    ((33, 624, 11499, 160), "32633_160_624_11499", (998400.0, -9000000.0, 1000000.0, -8998400.0)),
    ((19, 30, 451, 2048), "32619_2048_30_451", (614400.0, 143040.0, 634880.0, 163520.0)),
]


@pytest.mark.parametrize(("args", "tile_id", "bounds"), GOLDEN_TILES)
def test_tile_ids_bounds_and_geoboxes_are_unchanged(args: tuple[int, int, int, int],
                                                    tile_id: str, bounds: tuple) -> None:
    zone, col, row, size = args
    tile = Tile(zone=zone, col=col, row=row, size=size)
    assert tile.id == tile_id and Tile.parse(tile_id) == tile
    assert tile.bounds == bounds
    west, _, _, north = bounds
    assert tuple(tile.geobox.affine)[:6] == (10.0, 0.0, west, 0.0, -10.0, north)
    assert tuple(tile.geobox.shape) == (size, size)
    assert str(tile.geobox.crs) == f"EPSG:{32600 + zone}"


@pytest.mark.parametrize(("tile_id", "res", "window"), [
    ("32633_160_398_2273", 100.0, (36368, 36384, 6368, 6384)),
    ("32656_2048_16_875", 160.0, (112000, 112128, 2048, 2176)),
    ("32619_2048_30_451", 1280.0, (7216, 7232, 480, 496)),
])
def test_coarse_geoboxes_and_windows_are_unchanged(tile_id: str, res: float,
                                                   window: tuple[int, int, int, int]) -> None:
    tile = Tile.parse(tile_id)
    west, _, _, north = tile.bounds
    gb = tile.geobox_at(res)
    assert tuple(gb.affine)[:6] == (res, 0.0, west, 0.0, -res, north)
    n = round(tile.size * PIXEL_SIZE / res)
    assert tuple(gb.shape) == (n, n)
    ys, xs = tile.pixel_window(res)
    assert (ys.start, ys.stop, xs.start, xs.stop) == window
    assert zone_geobox(tile.zone, res)[ys, xs] == gb


GOLDEN_AOIS = {
    "england": (sg.box(-1.02, 51.99, -0.98, 52.01), ["32630_2048_31_177"], 4, "2dec3aef6cb8f4f6"),
    "sydney": (sg.box(150.1, -33.9, 150.2, -33.8), ["32656_2048_11_641", "32656_2048_11_642"],
               25, "d83398a3a5dc126e"),
    "seam": (sg.box(-0.05, 51.0, 0.05, 51.05), ["32630_2048_34_182", "32631_2048_14_182"],
             12, "52a0031f2d6fd612"),
    "equator": (sg.box(36.7, -0.05, 36.8, 0.05), ["32637_2048_11_458", "32637_2048_11_459",
                                                   "32637_2048_12_458", "32637_2048_12_459"],
                30, "a0f8e7c871262d55"),
    "line": (sg.LineString([(10.0, 45.0), (10.3, 45.1)]),
             ["32632_2048_28_215", "32632_2048_29_215"], 15, "73ff42269b32adb6"),
    "antimeridian": (sg.MultiPolygon([sg.box(179.9, -17.0, 180.0, -16.9),
                                      sg.box(-180.0, -17.0, -179.9, -16.9)]),
                     ["32601_2048_8_550", "32601_2048_9_550", "32660_2048_39_550",
                      "32660_2048_40_550"], 62, "4ef09e240956b591"),
}


@pytest.mark.parametrize("name", sorted(GOLDEN_AOIS))
def test_aoi_tiles_are_unchanged(name: str) -> None:
    geom, ids_2048, count_256, digest_256 = GOLDEN_AOIS[name]
    assert [t.id for t in tiles_for_geometry(geom, 2048)] == ids_2048
    ids = [t.id for t in tiles_for_geometry(geom, 256)]
    assert len(ids) == count_256
    assert hashlib.sha256(",".join(ids).encode()).hexdigest()[:16] == digest_256


def test_tile_size_and_resolution_rules() -> None:
    assert check_tile_size(2048) == 2048
    for bad in (0, -32, 100, 48):
        with pytest.raises(GridError, match="multiple of 32"):
            check_tile_size(bad)
    assert tile_pixels(2048) == 2048 and tile_pixels(160, 100.0) == 16 and tile_pixels(64, 5.0) == 128
    assert valid_resolutions(64) == [10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0]
    for bad in (30.0, 0.0, -10.0, float("nan")):
        with pytest.raises(GridError, match="valid resolutions: 10, 20, 40, 80, 160, 320, 640 m"):
            tile_pixels(64, bad)
    assert coarsen_factor(1600, 100.0) == 10 and valid_coarse_resolutions(64)[0] == 20.0
    for bad in (10.0, 30.0, -160.0, 0.0, float("inf")):  # a factor of 1 coarsens nothing
        with pytest.raises(GridError, match="does not divide"):
            coarsen_factor(64, bad)


def test_zone_grid_is_the_tile_lattice() -> None:
    grid = zone_grid(56, 2048)
    tile = Tile(zone=56, col=16, row=875, size=2048)
    assert grid.tile_geobox((16, 875)) == tile.geobox
    assert grid.tile_geobox((16, 876)).boundingbox.top == tile.bounds[1]  # rows count south
    west, south, east, north = tile.bounds
    assert tuple(grid.pt2idx((west + east) / 2, (south + north) / 2).xy) == (16, 875)
