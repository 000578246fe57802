"""STAC items shaped like the real catalogs' (see ``shared/fixtures/stac``).

Property names, asset keys, ``raster:bands``/``proj:*`` layout and even the quirks (Planetary
Computer's non-RFC 3339 ``start_datetime``) follow the published items, so code written against
the demo meets the same shapes as against Earth Search and Planetary Computer. Provider-specific
fields that would be false here (S3 storage, tiler links, payload ids) are left out, and so are
links to the collection: readers such as pystac-client try to fetch them, and a ``file://`` link
cannot be fetched once items are served over HTTP (the collection JSON sits beside the catalog).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shapely.geometry import Polygon

from tessera_assets.demo.cog import COG_MEDIA_TYPE, FileInfo
from tessera_assets.demo.geo import earth_sun_factor, geometry_bbox, polygon_lonlat, to_lonlat
from tessera_assets.demo.grids import Grid

if TYPE_CHECKING:
    from tessera_assets.demo.context import DemoContext
    from tessera_assets.demo.sentinel1 import S1Pass
    from tessera_assets.demo.sentinel2 import S2Pass


@dataclass(frozen=True)
class AssetFile:
    href: str
    info: FileInfo
    grid: Grid


def _ext(name: str, version: str) -> str:
    return f"https://stac-extensions.github.io/{name}/{version}/schema.json"


def _stamp(t: datetime, digits: int = 6) -> str:
    """RFC 3339 UTC timestamp with ``digits`` fractional digits and a ``Z``."""
    text = t.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return (text[: len(text) - 6 + digits] if digits else text[:-7]) + "Z"


def _footprint(epsg: int, polygon: Polygon) -> dict:
    return polygon_lonlat(epsg, list(polygon.exterior.coords))


# --------------------------------------------------------------------------- Sentinel-2

# key: (file stem, title, band id, eo common name, centre wavelength, FWHM, resolution)
_S2_BANDS: dict[str, tuple[str, str, str, str, float, float, int]] = {
    "red": ("B04", "Red - 10m", "B04", "red", 0.665, 0.038, 10),
    "green": ("B03", "Green - 10m", "B03", "green", 0.56, 0.045, 10),
    "blue": ("B02", "Blue - 10m", "B02", "blue", 0.49, 0.098, 10),
    "nir": ("B08", "NIR 1 - 10m", "B08", "nir", 0.842, 0.145, 10),
    "swir22": ("B12", "SWIR 2.2μm - 20m", "B12", "swir22", 2.19, 0.242, 20),
    "rededge2": ("B06", "Red Edge 2 - 20m", "B06", "rededge", 0.74, 0.018, 20),
    "rededge3": ("B07", "Red Edge 3 - 20m", "B07", "rededge", 0.783, 0.028, 20),
    "rededge1": ("B05", "Red Edge 1 - 20m", "B05", "rededge", 0.704, 0.019, 20),
    "swir16": ("B11", "SWIR 1.6μm - 20m", "B11", "swir16", 1.61, 0.143, 20),
    "nir08": ("B8A", "NIR 2 - 20m", "B8A", "nir08", 0.865, 0.033, 20),
}
S2_FILES = {key: v[0] for key, v in _S2_BANDS.items()} | {"scl": "SCL"}
_S2_SOFTWARE = {"sentinel-2-c1-l2a-to-stac": "v2024.02.01"}


def sentinel2_id(p: S2Pass, tile: str) -> str:
    """Earth Search C1 id: ``S2B_T20EPT_20250731T131905_L2A`` (time = datastrip start)."""
    return f"{_s2_sat(p)}_T{tile}_{_s2_times(p)['datastrip']:%Y%m%dT%H%M%S}_L2A"


def _s2_sat(p: S2Pass) -> str:
    return "S2" + p.platform[-1].upper()


def _s2_times(p: S2Pass) -> dict[str, datetime]:
    datatake = p.when - timedelta(seconds=13)
    generated = p.when + timedelta(hours=1, minutes=33, seconds=41)
    return {
        "datatake": datatake,
        "datastrip": datatake - timedelta(seconds=4),
        "generated": generated.replace(microsecond=0),
        "created": generated + timedelta(minutes=47, seconds=12, milliseconds=517),
    }


def _s2_asset(key: str, f: AssetFile) -> dict[str, Any]:
    if key == "scl":
        head = {"href": f.href, "type": COG_MEDIA_TYPE, "title": "Scene classification map (SCL)"}
        bands = [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}]
        return head | {
            "gsd": 20,
            "proj:shape": list(f.grid.shape),
            "proj:transform": f.grid.proj_transform(),
            "raster:bands": bands,
            "file:checksum": f.info.multihash,
            "file:size": f.info.size,
            "roles": ["data"],
        }
    _, title, band_id, common, centre, fwhm, res = _S2_BANDS[key]
    return {
        "href": f.href,
        "type": COG_MEDIA_TYPE,
        "title": title,
        "eo:bands": [
            {"name": band_id, "common_name": common, "center_wavelength": centre,
             "full_width_half_max": fwhm}
        ],
        "gsd": res,
        "proj:shape": list(f.grid.shape),
        "proj:transform": f.grid.proj_transform(),
        "raster:bands": [
            {"nodata": 0, "data_type": "uint16", "spatial_resolution": res, "scale": 0.0001,
             "offset": -0.1}
        ],
        "file:checksum": f.info.multihash,
        "file:size": f.info.size,
        "roles": ["data", "reflectance"],
    }


def sentinel2_item(
    ctx: DemoContext,
    p: S2Pass,
    tile: str,
    item_id: str,
    assets: dict[str, AssetFile],
    footprint: Polygon,
    stats: dict[str, float],
    sun_elevation: float,
    sun_azimuth: float,
    baseline: str,
) -> dict[str, Any]:
    spec = ctx.spec
    sat = _s2_sat(p)
    t = _s2_times(p)
    geometry = _footprint(spec.epsg, footprint)
    centroid = footprint.centroid
    c_lon, c_lat = to_lonlat(spec.epsg, [centroid.x], [centroid.y])
    gen = f"{t['generated']:%Y%m%dT%H%M%S}"
    take = f"{t['datatake']:%Y%m%dT%H%M%S}"
    n_base = baseline.replace(".", "")
    centre_track = p.track == "centre"
    properties = {
        "created": _stamp(t["created"], 3),
        "platform": p.platform,
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": round(
            stats["medium_proba_clouds"] + stats["high_proba_clouds"] + stats["thin_cirrus"], 6
        ),
        "proj:epsg": spec.epsg,
        "proj:centroid": {"lat": round(c_lat[0], 5), "lon": round(c_lon[0], 5)},
        "mgrs:utm_zone": int(tile[:2]),
        "mgrs:latitude_band": tile[2],
        "mgrs:grid_square": tile[3:],
        "grid:code": f"MGRS-{tile}",
        "view:azimuth": (234.5 if centre_track else 106.4) + (p.absolute_orbit % 7) * 0.11,
        "view:incidence_angle": (3.65 if centre_track else 10.6) + (p.absolute_orbit % 5) * 0.013,
        "view:sun_azimuth": sun_azimuth,
        "view:sun_elevation": sun_elevation,
        "s2:tile_id": f"{sat}_OPER_MSI_L2A_TL_{sat[1:]}PS_{gen}_A{p.absolute_orbit:06d}_T{tile}_N{baseline}",
        "s2:degraded_msi_data_percentage": 0,
        "s2:nodata_pixel_percentage": stats["nodata"],
        "s2:saturated_defective_pixel_percentage": stats["saturated_defective"],
        "s2:dark_features_percentage": stats["dark_features"],
        "s2:cloud_shadow_percentage": stats["cloud_shadow"],
        "s2:vegetation_percentage": stats["vegetation"],
        "s2:not_vegetated_percentage": stats["not_vegetated"],
        "s2:water_percentage": stats["water"],
        "s2:unclassified_percentage": stats["unclassified"],
        "s2:medium_proba_clouds_percentage": stats["medium_proba_clouds"],
        "s2:high_proba_clouds_percentage": stats["high_proba_clouds"],
        "s2:thin_cirrus_percentage": stats["thin_cirrus"],
        "s2:snow_ice_percentage": stats["snow_ice"],
        "s2:product_type": "S2MSI2A",
        "s2:processing_baseline": baseline,
        "s2:product_uri": f"{sat}_MSIL2A_{take}_N{n_base}_R{p.relative_orbit:03d}_T{tile}_{gen}.SAFE",
        "s2:generation_time": _stamp(t["generated"]),
        "s2:datatake_id": f"G{sat}_{take}_{p.absolute_orbit:06d}_N{baseline}",
        "s2:datatake_type": "INS-NOBS",
        "s2:datastrip_id": (
            f"{sat}_OPER_MSI_L2A_DS_{sat[1:]}PS_{gen}_S{t['datastrip']:%Y%m%dT%H%M%S}_N{baseline}"
        ),
        "s2:reflectance_conversion_factor": earth_sun_factor(p.when),
        "datetime": _stamp(p.when),
        "processing:software": dict(_S2_SOFTWARE),
        "updated": _stamp(t["created"], 3),
    }
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "properties": properties,
        "geometry": geometry,
        "links": [],
        "assets": {key: _s2_asset(key, assets[key]) for key in S2_FILES if key in assets},
        "bbox": geometry_bbox(geometry),
        "stac_extensions": [
            _ext("eo", "v1.1.0"),
            _ext("file", "v2.1.0"),
            _ext("grid", "v1.1.0"),
            _ext("mgrs", "v1.0.0"),
            _ext("processing", "v1.1.0"),
            _ext("projection", "v1.1.0"),
            _ext("raster", "v1.1.0"),
            _ext("sentinel-2", "v1.0.0"),
            _ext("view", "v1.0.0"),
        ],
        "collection": "sentinel-2-c1-l2a",
    }


# --------------------------------------------------------------------------- Sentinel-1

_S1_POLARISATIONS = {
    "vh": ("VH: vertical transmit, horizontal receive", "horizontal"),
    "vv": ("VV: vertical transmit, vertical receive", "vertical"),
}


def _pc_time(t: datetime) -> str:
    """Planetary Computer's S1 RTC ``start_/end_datetime`` format: '2024-03-11 04:42:31.719576+00:00'."""
    return str(t)


def sentinel1_id(p: S1Pass) -> str:
    """``S1A_IW_GRDH_1SDV_<start>_<end>_<orbit>_<datatake>_rtc``."""
    return f"{p.product_id}_rtc"


def sentinel1_item(
    ctx: DemoContext, p: S1Pass, assets: dict[str, AssetFile], footprint: Polygon
) -> dict[str, Any]:
    spec = ctx.spec
    grid = assets["vv"].grid
    geometry = _footprint(spec.epsg, footprint)
    x0, y0, x1, y1 = grid.bounds
    properties = {
        "datetime": _stamp(p.when),
        "platform": p.platform.upper(),
        "s1:shape": [grid.width, grid.height],
        "proj:bbox": [x0, y0, x1, y1],
        "proj:epsg": spec.epsg,
        "proj:shape": [grid.height, grid.width],
        "end_datetime": _pc_time(p.end),
        "constellation": "Sentinel-1",
        "s1:resolution": "high",
        "proj:transform": [*grid.proj_transform(), 0.0, 0.0, 1.0],
        "s1:datatake_id": str(p.datatake_id),
        "start_datetime": _pc_time(p.start),
        "s1:orbit_source": "PREORB",
        "s1:slice_number": str(p.slice_number),
        "s1:total_slices": str(p.total_slices),
        "sar:looks_range": 5,
        "sat:orbit_state": p.orbit_state,
        "sar:product_type": "GRD",
        "sar:looks_azimuth": 1,
        "sar:polarizations": ["VV", "VH"],
        "sar:frequency_band": "C",
        "sat:absolute_orbit": p.absolute_orbit,
        "sat:relative_orbit": p.relative_orbit,
        "s1:processing_level": "1",
        "sar:instrument_mode": "IW",
        "sar:center_frequency": 5.405,
        "sar:resolution_range": 20,
        "s1:product_timeliness": "NRT-3h",
        "sar:resolution_azimuth": 22,
        "sar:pixel_spacing_range": 10,
        "sar:observation_direction": "right",
        "sar:pixel_spacing_azimuth": 10,
        "sar:looks_equivalent_number": 4.4,
        "s1:instrument_configuration_ID": "7",
        "sat:platform_international_designator": p.designator,
    }
    asset_dicts = {}
    for key in ("vh", "vv"):
        title, receive = _S1_POLARISATIONS[key]
        f = assets[key]
        asset_dicts[key] = {
            "href": f.href,
            "file:size": f.info.size,
            "file:checksum": f.info.md5,
            "type": COG_MEDIA_TYPE,
            "roles": ["data"],
            "title": title,
            "description": (
                "Terrain-corrected gamma naught values of signal transmitted with vertical "
                f"polarization and received with {receive} polarization with radiometric "
                "terrain correction applied."
            ),
            "raster:bands": [
                {"nodata": -32768, "data_type": "float32", "spatial_resolution": 10.0}
            ],
        }
    return {
        "id": sentinel1_id(p),
        "bbox": geometry_bbox(geometry),
        "type": "Feature",
        "links": [],
        "assets": asset_dicts,
        "geometry": geometry,
        "collection": "sentinel-1-rtc",
        "properties": properties,
        "stac_extensions": [
            _ext("sar", "v1.0.0"),
            _ext("sat", "v1.0.0"),
            _ext("projection", "v1.1.0"),
            _ext("file", "v2.0.0"),
            _ext("raster", "v1.1.0"),
        ],
        "stac_version": "1.0.0",
    }


# --------------------------------------------------------------------------- collections

COLLECTION_TITLES = {
    "sentinel-2-c1-l2a": "Sentinel-2 Collection 1 Level-2A (synthetic demo)",
    "sentinel-1-rtc": "Sentinel-1 Radiometrically Terrain Corrected (synthetic demo)",
    "landsat-c2-l2": "Landsat Collection 2 Level-2 (synthetic demo)",
}


def collection_dict(collection: str, item_dicts: list[dict[str, Any]]) -> dict[str, Any]:
    """A minimal STAC Collection whose extent covers ``item_dicts``."""
    boxes = [i["bbox"] for i in item_dicts]
    times = sorted(i["properties"]["datetime"] for i in item_dicts)
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": collection,
        "title": COLLECTION_TITLES[collection],
        "description": (
            "Synthetic scenes generated by tessera_assets.demo, shaped like the public "
            "collection of the same id. Not real observations."
        ),
        "license": "CC0-1.0",
        "extent": {
            "spatial": {
                "bbox": [[min(b[0] for b in boxes), min(b[1] for b in boxes),
                          max(b[2] for b in boxes), max(b[3] for b in boxes)]]
            },
            "temporal": {"interval": [[times[0], times[-1]]]},
        },
        "links": [],
    }
