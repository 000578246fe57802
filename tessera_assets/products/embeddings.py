"""The embeddings product in the published TESSERA Zarr layout (DESIGN §4, geoemb: convention).

Readers of the published stores (geotessera ≥ 0.11 ``GeoTesseraZarr`` / ``open_zone``) open
our output unchanged: group ``utm{NN}`` in EPSG:326NN; ``embeddings`` int8 (time, band, y, x)
with inner chunks (1, 128, 32, 32) and **one shard per tile** (1, 128, tile_px, tile_px);
``scales`` float32 (time, y, x) where finite = embedded, NaN = not embedded (water, no
observations, outside the AOI) and the fill value +inf = not written yet; ``time`` int32
years; pixel-centre ``x``/``y`` float64; ``band`` int32. Root attributes follow the ``geoemb:``
convention as geotessera's writer emits it, plus our own ``tessera:*`` provenance
(model checksum, demo-weights flag; :mod:`.attributes`). Observation counts sit beside as uint16 arrays.

The same layout at a coarser resolution is the ``embeddings_coarse`` product (see
:mod:`tessera_assets.products.coarse`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from tessera_assets.grid import PIXEL_SIZE, STORAGE_CHUNK, Tile
from tessera_assets.products import attributes as attr
from tessera_assets.store import Lineage, LineageRecord, ProductSchema, VariableSpec, ZoneStore

N_BANDS = 128
INNER_CHUNK_BUDGET_BYTES = N_BANDS * STORAGE_CHUNK * STORAGE_CHUNK
"""Inner chunks of the depth arrays are sized to at most the bytes of (128, 32, 32) int8."""

GEOEMB_CONVENTION = {
    "uuid": "61c12cc5-0e28-4056-999a-480cf3fb7e4c",
    "name": "geoemb:",
    "description": "Geoembeddings convention for geospatial embedding arrays with model provenance",
    "spec_url": "https://github.com/geo-embeddings/embeddings-zarr-convention/blob/v1/README.md",
    "schema_url": "https://raw.githubusercontent.com/geo-embeddings/embeddings-zarr-convention/refs/tags/v1/schema.json",
}
SOURCE_DATA = [
    "https://sentinel.esa.int/web/sentinel/missions/sentinel-1",
    "https://sentinel.esa.int/web/sentinel/missions/sentinel-2",
]
SCALE_SEMANTICS = (
    "finite = embedded; NaN = not embedded (water, no observations, outside the AOI); "
    "+inf (fill value) = not written yet"
)


def depth_array_name(depth: int) -> str:
    """geotessera's name for the array holding the first ``depth`` dimensions."""
    return "embeddings" if depth >= N_BANDS else f"embeddings_d{depth}"


def depth_band_dim(depth: int) -> str:
    """Distinct band dim per depth, so xarray can open all depth arrays in one dataset."""
    return "band" if depth >= N_BANDS else f"band_d{depth}"


def depth_inner_chunk(depth: int, tile_px: int) -> int:
    """Spatial inner chunk of a depth array: the largest power of two within the byte budget
    that divides the shard (geotessera's rule, bounded by our tile-sized shards)."""
    side = _pow2_divisor(tile_px, STORAGE_CHUNK)
    while tile_px % (side * 2) == 0 and depth * (side * 2) ** 2 <= INNER_CHUNK_BUDGET_BYTES:
        side *= 2
    return side


def _pow2_divisor(n: int, cap: int) -> int:
    """Largest power of two ≤ ``cap`` dividing ``n``."""
    side = 1
    while side * 2 <= cap and n % (side * 2) == 0:
        side *= 2
    return side


def _validate_depths(depths: Sequence[int]) -> tuple[int, ...]:
    out = tuple(sorted({int(d) for d in depths}))
    if out and (out[0] < 1 or out[-1] >= N_BANDS):
        raise ValueError(f"matryoshka depths must be in 1..{N_BANDS - 1}, got {list(out)}")
    return out


def embeddings_schema(
    years: Sequence[int],
    tile_size: int,
    *,
    model_name: str,
    build_version: str,
    model_sha256: str | None = None,
    model_family: str | None = None,
    demo_weights: bool = False,
    depths: Sequence[int] = (),
    resolution: float = PIXEL_SIZE,
    obs_counts: bool = True,
    extra_variables: Sequence[VariableSpec] = (),
    extra_attrs: Mapping[str, Any] | None = None,
) -> ProductSchema:
    """Schema of an embeddings store in the published TESSERA layout.

    ``model_name`` becomes ``geoemb:model`` (e.g. ``"tessera-v1.1"`` or a model URL) and
    ``build_version`` ``geoemb:build_version`` (the store layout/build identity, *not* the code
    version, which goes into each partition's lineage). ``depths`` adds matryoshka prefix arrays
    ``embeddings_d{N}`` (v2 only; geotessera reads them via ``depth=``). ``demo_weights`` labels
    stores produced with seeded random weights. Root attributes must match on every write, so
    one store never mixes models.
    """
    depths = _validate_depths(depths)
    common = {"grid_mapping": "spatial_ref"}
    variables = []
    for depth in (*depths, N_BANDS):
        px = round(tile_size * PIXEL_SIZE / resolution)
        side = depth_inner_chunk(depth, px) if depth < N_BANDS else None
        chunks = {"y": side, "x": side} if side else {}
        variables.append(
            VariableSpec(
                name=depth_array_name(depth),
                dims=("time", depth_band_dim(depth), "y", "x"),
                dtype="int8",
                fill_value=0,
                chunks=chunks,
                attrs={
                    **common,
                    "long_name": f"quantised TESSERA embedding (first {depth} dimensions)",
                    "dequantisation": "embedding = int8 value * scales (per pixel)",
                },
            )
        )
    variables.append(
        VariableSpec(
            name="scales",
            dims=("time", "y", "x"),
            dtype="float32",
            fill_value="inf",
            attrs={
                **common,
                "long_name": "per-pixel dequantisation scale",
                "semantics": SCALE_SEMANTICS,
            },
        )
    )
    if obs_counts:
        for sensor in ("s2", "s1"):
            variables.append(
                VariableSpec(
                    name=f"{sensor}_obs_count",
                    dims=("time", "y", "x"),
                    dtype="uint16",
                    fill_value=0,
                    attrs={**common, "long_name": f"{sensor.upper()} observations used per pixel"},
                )
            )
    variables.extend(extra_variables)
    attrs: dict[str, Any] = {
        "zarr_conventions": [GEOEMB_CONVENTION],
        "geoemb:type": "pixel",
        "geoemb:dimensions": N_BANDS,
        attr.GEOEMB_MODEL: model_name,
        "geoemb:source_data": SOURCE_DATA,
        "geoemb:data_type": "int8",
        "geoemb:gsd": float(resolution),
        "geoemb:spatial_layout": "utm_zones",
        attr.GEOEMB_BUILD_VERSION: build_version,
        "geoemb:quantization": {
            "method": "per_pixel_scale",
            "original_dtype": "float32",
            "quantized_dtype": "int8",
            "scale": {"type": "array", "array_name": "scales", "nodata": "+inf"},
        },
        attr.MODEL_SHA256: model_sha256,
        attr.MODEL_FAMILY: model_family,
        attr.DEMO_WEIGHTS: bool(demo_weights),
        attr.SCALE_SEMANTICS: SCALE_SEMANTICS,
        attr.RESOLUTION_M: float(resolution),
    }
    if depths:
        attrs[attr.GEOEMB_DEPTHS] = [
            {"dimensions": d, "array": depth_array_name(d)} for d in (*depths, N_BANDS)
        ]
    attrs.update(extra_attrs or {})
    coords: dict[str, list[int] | list[str]] = {"band": list(range(N_BANDS))}
    coords.update({depth_band_dim(d): list(range(d)) for d in depths})
    return ProductSchema(
        variables=tuple(variables),
        years=tuple(int(y) for y in years),
        tile_size=tile_size,
        resolution=resolution,
        year_dim="time",
        coords=coords,
        attrs=attrs,
    )


def dequantise(q: Any, scales: Any, *, axis: int | None = None) -> np.ndarray:
    """int8 codes × per-pixel scales → float32 embeddings; NaN wherever the scale is not finite.

    The one dequantisation of the layout (geotessera's ``dequantize_embedding`` rule): a NaN
    scale means not embedded, +inf not written, so neither yields a vector. ``axis`` is the
    embedding axis of ``q`` and ``scales`` has ``q``'s shape without it; by default the first
    axis of a (band, y, x) cube and the last of (pixel, dim) rows (the model's output).
    """
    q = np.asarray(q)
    band = (0 if q.ndim >= 3 else -1) if axis is None else axis
    scales = np.asarray(scales, dtype=np.float32)
    valid = np.isfinite(scales)
    out = q.astype(np.float32) * np.expand_dims(np.where(valid, scales, np.float32(0)), band)
    return np.where(np.expand_dims(valid, band), out, np.float32(np.nan))


class EmbeddingsStore(ZoneStore):
    """A :class:`ZoneStore` for the TESSERA layout, with embedding-shaped helpers."""

    def __init__(
        self,
        root: str,
        schema: ProductSchema,
        product: str = "embeddings",
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        if "embeddings" not in {v.name for v in schema.variables} or schema.year_dim != "time":
            raise ValueError("EmbeddingsStore needs a schema from embeddings_schema()")
        super().__init__(root, product, schema, storage_options)

    @property
    def depths(self) -> list[int]:
        return [d["dimensions"] for d in self.schema.attrs.get(attr.GEOEMB_DEPTHS, [])]

    def write_embeddings(
        self,
        tile: Tile,
        year: int,
        *,
        embeddings: Any,
        scales: Any,
        lineage: Lineage | Mapping[str, Any],
        **extra: Any,
    ) -> LineageRecord:
        """Write int8 (128, H, W) embeddings and float32 (H, W) scales (+ e.g. obs counts).

        Matryoshka depth arrays, if the schema has them, are filled from the leading bands.
        """
        data: dict[str, Any] = {"embeddings": embeddings, "scales": scales, **extra}
        for depth in self.depths:
            if depth < N_BANDS:
                data[depth_array_name(depth)] = embeddings[:depth]
        return self.write_tile(tile, year, data, lineage)

    def read_dequantised(self, tile: Tile, year: int) -> xr.DataArray:
        """Lazy float32 (band, y, x) embeddings of a committed partition, NaN where not embedded."""
        ds = self.read_tile(tile, year, ["embeddings", "scales"])
        out = xr.apply_ufunc(
            dequantise,
            ds["embeddings"],
            ds["scales"],
            input_core_dims=[["band"], []],
            output_core_dims=[["band"]],
            kwargs={"axis": -1},
            dask="parallelized",
            output_dtypes=[np.float32],
        )
        return out.transpose(*ds["embeddings"].dims).rename("embeddings").assign_attrs(ds.attrs)
