"""AOI parsing: every bad input fails with a clear message before any work starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tessera_assets.aoi import (
    DEFAULT_MAX_AREA_KM2,
    AoiError,
    aoi_area_km2,
    load_aoi,
    tiles_for_aoi,
)


def test_bbox_string_and_sequence() -> None:
    a = load_aoi("-1.02,51.99,-0.98,52.01")
    b = load_aoi([-1.02, 51.99, -0.98, 52.01])
    assert a.equals(b)
    assert a.bounds == pytest.approx((-1.02, 51.99, -0.98, 52.01))


def test_projected_bbox_is_reprojected() -> None:
    g = load_aoi("636200,5762300,638700,5763500", crs="EPSG:32630")
    west, south, east, north = g.bounds
    assert -1.02 < west < east < -0.97 and 51.99 < south < north < 52.01


def test_geojson_file_feature_collection(tmp_path: Path) -> None:
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {
            "type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}},
        {"type": "Feature", "properties": {}, "geometry": {
            "type": "Polygon", "coordinates": [[[2, 0], [3, 0], [3, 1], [2, 1], [2, 0]]]}},
    ]}
    p = tmp_path / "aoi.geojson"
    p.write_text(json.dumps(fc))
    g = load_aoi(p)
    assert g.geom_type == "MultiPolygon" and g.area == pytest.approx(2.0)


def test_wkt() -> None:
    assert load_aoi("POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))").area == pytest.approx(1.0)


def test_antimeridian_bbox_is_split() -> None:
    g = load_aoi([179.5, -17.0, -179.5, -16.0])
    assert g.geom_type == "MultiPolygon" and g.area == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ('{"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}',
         "invalid"),
        ('{"type": "Polygon", "coordinates": []}', "empty"),
        ('{"type": "FeatureCollection", "features": []}', "no features"),
        ("{not json", "not valid GeoJSON"),
        ("1,2,3", "neither GeoJSON"),
        ("10,5,0,6", "minx"),
        ("0,5,1,4", "miny"),
        ([10, 85, 11, 86], "UTM coverage"),
        ([200, 0, 201, 1], "outside -180..180"),
        ('{"type": "Polygon", "coordinates": [[[-179, 0], [179, 0], [179, 1], [-179, 1], [-179, 0]]]}',
         "antimeridian"),
        ("missing-file.geojson", "not found"),
        ('{"type": "Polygon", "coordinates": [[[0, 0], ["a", 0], [1, 1], [0, 0]]]}',
         "invalid GeoJSON Polygon"),
        ('{"type": "Feature", "geometry": null, "properties": {}}', "no geometry"),
        ('{"coordinates": [0, 0]}', "no 'type'"),
        ('{"type": "Feature", "geometry": [1, 2], "properties": {}}', "must be an object"),
        ('{"type": "Point", "coordinates": [NaN, 1]}', "non-finite"),
        ('{"type": "Point", "coordinates": [500000, 5700000], "crs": {"type": "name", '
         '"properties": {"name": "urn:ogc:def:crs:EPSG::32630"}}}', "RFC 7946"),
        ("POLYGON EMPTY", "empty"),
        ([-60, -85, -59, -79], "UTM coverage"),
        ([-10, 30, 30, 60], "more than the 1,000,000 km"),
    ],
)
def test_bad_aois_fail_clearly(spec, message: str) -> None:
    with pytest.raises(AoiError, match=message):
        load_aoi(spec)


def test_unknown_crs() -> None:
    with pytest.raises(AoiError, match="unknown CRS"):
        load_aoi("0,0,1,1", crs="EPSG:999999")


def test_too_large_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    one_degree = [10.0, 50.0, 11.0, 51.0]
    area = aoi_area_km2(load_aoi(one_degree))
    assert 7_000 < area < 8_000  # 1° x 1° at 50°N ≈ 7,800 km²
    with pytest.raises(AoiError, match="split it into smaller AOIs"):
        load_aoi(one_degree, max_area_km2=5_000)
    monkeypatch.setenv("TESSERA_AOI_MAX_AREA_KM2", "1000")
    with pytest.raises(AoiError, match="more than the 1,000 km"):
        load_aoi(one_degree)
    assert load_aoi(one_degree, max_area_km2=DEFAULT_MAX_AREA_KM2).area == pytest.approx(1.0)
    monkeypatch.setenv("TESSERA_AOI_MAX_AREA_KM2", "lots")
    with pytest.raises(AoiError, match="not a number"):
        load_aoi(one_degree)


def test_too_many_tiles_fails_before_enumerating(monkeypatch: pytest.MonkeyPatch) -> None:
    small = load_aoi([-1.02, 51.99, -0.98, 52.01])
    tiles = tiles_for_aoi(small, 64)
    assert 12 <= len(tiles) <= 30  # ~2.8 x 2.2 km in 640 m tiles
    with pytest.raises(AoiError, match=r"needs at least 1[0-9] tiles of 64 px, more than the 1 "):
        tiles_for_aoi(small, 64, max_tiles=1)  # the area alone says so
    with pytest.raises(AoiError, match=f"needs {len(tiles)} tiles of 64 px, more than the 15 "):
        tiles_for_aoi(small, 64, max_tiles=15)  # the estimate passes, the real count does not
    big = load_aoi([0.0, 40.0, 3.0, 43.0])  # ~83,000 km²: ~200,000 tiles of 640 m
    monkeypatch.setenv("TESSERA_AOI_MAX_TILES", "5000")
    with pytest.raises(AoiError, match=r"at least 2[0-9]{2},[0-9]{3} tiles"):
        tiles_for_aoi(big, 64)  # estimated from the area, nothing enumerated
    assert len(tiles_for_aoi(big, 2048)) < 5000
