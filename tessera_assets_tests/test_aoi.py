"""AOI parsing: every bad input fails with a clear message before any work starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tessera_assets.aoi import AoiError, load_aoi


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
    ],
)
def test_bad_aois_fail_clearly(spec, message: str) -> None:
    with pytest.raises(AoiError, match=message):
        load_aoi(spec)


def test_unknown_crs() -> None:
    with pytest.raises(AoiError, match="unknown CRS"):
        load_aoi("0,0,1,1", crs="EPSG:999999")
