"""Tile grid: ids, geoboxes, zone windows and AOI → tiles (DESIGN §3)."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Transformer
from shapely import geometry as sg

from tessera_assets.grid import (
    PIXEL_SIZE,
    GridError,
    Tile,
    tiles_for_geometry,
    zone_epsg,
    zone_for_lon,
    zone_geobox,
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
