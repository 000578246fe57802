"""Demo Landsat C2 L2 STAC items shaped like Planetary Computer's ``landsat-c2-l2`` (see
``shared/fixtures/stac``): band assets with ``raster:bands``/``eo:bands`` and the QA_PIXEL bit
fields. Shared item helpers live in :mod:`tessera_assets.demo.items`."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from shapely.geometry import Polygon

from tessera_assets.demo.cog import COG_MEDIA_TYPE
from tessera_assets.demo.geo import geometry_bbox
from tessera_assets.demo.items import AssetFile, _ext, _footprint, _stamp

if TYPE_CHECKING:
    from tessera_assets.demo.context import DemoContext
    from tessera_assets.demo.landsat import LandsatPass


# --------------------------------------------------------------------------- Landsat

# key: (file suffix, OLI band, title, description of eo:bands, centre, FWHM, asset description)
_LANDSAT_BANDS: dict[str, tuple[str, str, str, str, float, float, str]] = {
    "coastal": ("SR_B1", "OLI_B1", "Coastal/Aerosol Band", "Coastal/Aerosol", 0.44, 0.02,
                "Coastal/Aerosol Band (SR_B1)"),
    "blue": ("SR_B2", "OLI_B2", "Blue Band", "Visible blue", 0.48, 0.06, "Blue Band (SR_B2)"),
    "green": ("SR_B3", "OLI_B3", "Green Band", "Visible green", 0.56, 0.06, "Green Band (SR_B3)"),
    "red": ("SR_B4", "OLI_B4", "Red Band", "Visible red", 0.65, 0.04, "Red Band (SR_B4)"),
    "nir08": ("SR_B5", "OLI_B5", "Near Infrared Band 0.8", "Near infrared", 0.87, 0.03,
              "Near Infrared Band 0.8 (SR_B5)"),
    "swir16": ("SR_B6", "OLI_B6", "Short-wave Infrared Band 1.6", "Short-wave infrared", 1.61,
               0.09, "Short-wave Infrared Band 1.6 (SR_B6)"),
    "swir22": ("SR_B7", "OLI_B7", "Short-wave Infrared Band 2.2", "Short-wave infrared", 2.2,
               0.19, "Short-wave Infrared Band 2.2 (SR_B7)"),
}
LANDSAT_FILES = {key: v[0] for key, v in _LANDSAT_BANDS.items()} | {"qa_pixel": "QA_PIXEL"}

# QA_PIXEL bit fields: (name, offset, length, description, classes as (name, value, description))
_QA_FIELDS: list[tuple[str, int, int, str, list[tuple[str, int, str]]]] = [
    ("fill", 0, 1, "Image or fill data",
     [("not_fill", 0, "Image data"), ("fill", 1, "Fill data")]),
    ("dilated_cloud", 1, 1, "Dilated cloud",
     [("not_dilated", 0, "Cloud is not dilated or no cloud"), ("dilated", 1, "Cloud dilation")]),
    ("cirrus", 2, 1, "Cirrus mask",
     [("not_cirrus", 0, "Cirrus confidence is not high"), ("cirrus", 1, "High confidence cirrus")]),
    ("cloud", 3, 1, "Cloud mask",
     [("not_cloud", 0, "Cloud confidence is not high"), ("cloud", 1, "High confidence cloud")]),
    ("cloud_shadow", 4, 1, "Cloud shadow mask",
     [("not_shadow", 0, "Cloud shadow confidence is not high"),
      ("shadow", 1, "High confidence cloud shadow")]),
    ("snow", 5, 1, "Snow/Ice mask",
     [("not_snow", 0, "Snow/Ice confidence is not high"), ("snow", 1, "High confidence snow cover")]),
    ("clear", 6, 1, "Clear mask",
     [("not_clear", 0, "Cloud or dilated cloud bits are set"),
      ("clear", 1, "Cloud and dilated cloud bits are not set")]),
    ("water", 7, 1, "Water mask", [("not_water", 0, "Land or cloud"), ("water", 1, "Water")]),
]
_QA_CONFIDENCE_FIELDS = [
    ("cloud_confidence", 8, "Cloud confidence levels", "cloud", True),
    ("cloud_shadow_confidence", 10, "Cloud shadow confidence levels", "cloud shadow", False),
    ("snow_confidence", 12, "Snow/Ice confidence levels", "snow/ice", False),
    ("cirrus_confidence", 14, "Cirrus confidence levels", "cirrus", False),
]


def _qa_bitfields() -> list[dict[str, Any]]:
    fields = [
        {
            "name": name,
            "length": length,
            "offset": offset,
            "classes": [{"name": n, "value": v, "description": d} for n, v, d in classes],
            "description": description,
        }
        for name, offset, length, description, classes in _QA_FIELDS
    ]
    for name, offset, description, what, has_medium in _QA_CONFIDENCE_FIELDS:
        levels = [
            ("not_set", 0, "No confidence level set"),
            ("low", 1, f"Low confidence {what}"),
            ("medium", 2, f"Medium confidence {what}") if has_medium
            else ("reserved", 2, "Reserved - value not used"),
            ("high", 3, f"High confidence {what}"),
        ]
        fields.append(
            {
                "name": name,
                "length": 2,
                "offset": offset,
                "classes": [{"name": n, "value": v, "description": d} for n, v, d in levels],
                "description": description,
            }
        )
    return fields


def landsat_product(p: LandsatPass, processed: bool = False) -> str:
    """``LC09_L2SR_084082_20250722_02_T1`` (with the processing date when ``processed``)."""
    mid = f"_{p.processed:%Y%m%d}" if processed else ""
    return f"{p.sensor_code}_L2SR_{p.path:03d}{p.row:03d}_{p.when:%Y%m%d}{mid}_02_T1"


def landsat_item(
    ctx: DemoContext,
    p: LandsatPass,
    assets: dict[str, AssetFile],
    footprint: Polygon,
    cloud_cover: float,
    cloud_cover_land: float,
    sun_elevation: float,
    sun_azimuth: float,
) -> dict[str, Any]:
    spec = ctx.spec
    grid = assets["qa_pixel"].grid
    geometry = _footprint(spec.epsg, footprint)
    properties = {
        "gsd": 30,
        "created": _stamp(p.processed + timedelta(hours=9, minutes=24, seconds=29)),
        "sci:doi": "10.5066/P9OGBGM6",
        "datetime": _stamp(p.when),
        "platform": p.platform,
        "proj:epsg": spec.epsg,
        "proj:shape": list(grid.shape),
        "description": "Landsat Collection 2 Level-2",
        "instruments": ["oli", "tirs"],
        "eo:cloud_cover": cloud_cover,
        "proj:transform": grid.proj_transform(),
        "view:off_nadir": 0,
        "landsat:wrs_row": f"{p.row:03d}",
        "landsat:scene_id": p.scene_id,
        "landsat:wrs_path": f"{p.path:03d}",
        "landsat:wrs_type": "2",
        "view:sun_azimuth": round(sun_azimuth, 8),
        "landsat:correction": "L2SR",
        "view:sun_elevation": round(sun_elevation, 8),
        "landsat:cloud_cover_land": cloud_cover_land,
        "landsat:collection_number": "02",
        "landsat:collection_category": "T1",
    }
    asset_dicts: dict[str, Any] = {}
    for key, (_, band, title, band_desc, centre, fwhm, desc) in _LANDSAT_BANDS.items():
        asset_dicts[key] = {
            "href": assets[key].href,
            "eo:bands": [
                {"name": band, "center_wavelength": centre, "full_width_half_max": fwhm,
                 "common_name": key, "description": band_desc}
            ],
            "description": f"Collection 2 Level-2 {desc} Surface Reflectance",
            "type": COG_MEDIA_TYPE,
            "roles": ["data", "reflectance"],
            "title": title,
            "raster:bands": [
                {"scale": 2.75e-05, "nodata": 0, "offset": -0.2, "data_type": "uint16",
                 "spatial_resolution": 30}
            ],
        }
    asset_dicts["qa_pixel"] = {
        "href": assets["qa_pixel"].href,
        "classification:bitfields": _qa_bitfields(),
        "type": COG_MEDIA_TYPE,
        "roles": ["cloud", "cloud-shadow", "snow-ice", "water-mask"],
        "title": "Pixel Quality Assessment Band",
        "description": "Collection 2 Level-1 Pixel Quality Assessment Band (QA_PIXEL)",
        "raster:bands": [
            {"unit": "bit index", "nodata": 1, "data_type": "uint16", "spatial_resolution": 30}
        ],
    }
    return {
        "id": landsat_product(p),
        "bbox": geometry_bbox(geometry),
        "type": "Feature",
        "links": [
            {"rel": "cite-as", "href": "https://doi.org/10.5066/P9OGBGM6",
             "title": "Landsat 8-9 OLI/TIRS Collection 2 Level-2"}
        ],
        "assets": asset_dicts,
        "geometry": geometry,
        "collection": "landsat-c2-l2",
        "properties": properties,
        "stac_extensions": [
            _ext("raster", "v1.1.0"),
            _ext("eo", "v1.0.0"),
            _ext("view", "v1.0.0"),
            _ext("projection", "v1.1.0"),
            "https://landsat.usgs.gov/stac/landsat-extension/v1.1.1/schema.json",
            _ext("classification", "v1.0.0"),
            _ext("scientific", "v1.0.0"),
        ],
        "stac_version": "1.0.0",
    }
