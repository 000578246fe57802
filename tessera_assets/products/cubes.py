"""Store schemas of the cube products (raw, masked, calibrated): one place that says which
variables each asset writes, with which dtype, fill value and band names (DESIGN §4)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from tessera_assets.grid import PIXEL_SIZE
from tessera_assets.ingest.cubes import LANDSAT_CUBE_BANDS, S1_CUBE_BANDS, S2_CUBE_BANDS
from tessera_assets.products import attributes as attr
from tessera_assets.sources.bands import LANDSAT_BANDS, S2_BANDS
from tessera_assets.store.schema import ProductSchema, VariableSpec

DOYS = list(range(1, 367))
CUBE_INNER_CHUNK = 256
"""Spatial inner chunk of cube shards: cubes are read whole per tile, so larger chunks than
the embeddings' 32 px keep object counts and per-chunk overhead down."""

_VARIABLES: dict[str, list[tuple[str, str, float | int | str, tuple[str, ...] | None, str]]] = {
    "s2_cube": [("bands", "uint16", 0, S2_CUBE_BANDS, "Sentinel-2 L2A DN (+ SCL), 0 = nodata")],
    "s1_cube": [("backscatter", "float32", "nan", S1_CUBE_BANDS,
                 "Sentinel-1 RTC gamma0, linear, NaN = missing")],
    "landsat_cube": [("bands", "uint16", 0, LANDSAT_CUBE_BANDS,
                      "Landsat C2 L2 SR DN (+ QA_PIXEL), 0 = nodata")],
    "s2_masked": [
        ("bands", "uint16", 0, S2_BANDS, "harmonised Sentinel-2 DN (pre-04.00 baseline)"),
        ("valid", "uint8", 0, None, "1 = clear (SCL not in 0,1,2,3,8,9)"),
    ],
    "s1_calibrated": [("codes", "int16", 0, S1_CUBE_BANDS,
                       "int16 dB code (20*log10(x)+50)*200, 0 = missing")],
    "landsat_masked": [
        ("reflectance", "uint16", 0, LANDSAT_BANDS, "surface reflectance * 10000, 0 = nodata"),
        ("valid", "uint8", 0, None, "1 = clear (no fill/cloud/shadow/cirrus QA bits)"),
    ],
}

CUBE_PRODUCTS: tuple[str, ...] = tuple(_VARIABLES)


def cube_schema(product: str, years: Sequence[int], tile_size: int) -> ProductSchema:
    """The zone-store schema of a cube product: (year, doy, [band,] y, x) per variable."""
    if product not in _VARIABLES:
        raise KeyError(f"unknown cube product {product!r}; known: {sorted(_VARIABLES)}")
    spatial = math.gcd(tile_size, CUBE_INNER_CHUNK)
    variables, coords = [], {"doy": DOYS}
    for name, dtype, fill, bands, desc in _VARIABLES[product]:
        dims = ("year", "doy", "band", "y", "x") if bands else ("year", "doy", "y", "x")
        if bands:
            if "band" in coords and list(coords["band"]) != list(bands):
                raise ValueError(f"{product}: variables disagree on band names")
            coords["band"] = list(bands)
        variables.append(VariableSpec(
            name=name, dims=dims, dtype=dtype, fill_value=fill,
            chunks={"y": spatial, "x": spatial},
            attrs={"long_name": desc, "grid_mapping": "spatial_ref"},
        ))
    return ProductSchema(
        variables=tuple(variables), years=tuple(sorted(years)), tile_size=tile_size,
        resolution=PIXEL_SIZE, coords=coords,
        attrs={attr.PRODUCT: product, attr.LAYOUT: "cube-v1"},
    )
