"""v2 matryoshka depths: the ``embeddings_d{K}`` prefix arrays of the TESSERA Zarr layout.

geotessera's spec (``docs/specs/zarr-matryoshka-depths.md`` in ucam-eo/geotessera) stores the
first 4 and 16 of the 128 dimensions of v2 embeddings as arrays of their own, because
``embeddings`` is one chunk wide on the band axis: a prefix read from it would decode all 128
bands. The prefixes are **byte-exact slices** of the int8 codes, dequantised with the same
``scales``, listed in the root ``geoemb:depths``, on the same shard grid as ``embeddings``.

Only v2 families get them: v1/v1.1 dimensions are not ordered by importance, so a prefix of
them would be an arbitrary slice that looks correct and means nothing.

**Write order is load-bearing**: the prefixes are written before ``embeddings`` (the schema
lists them first, and a partition write follows the schema's order), so an ``embeddings``
shard implies its prefixes, and the full array stays geotessera's resume marker. Our own
commit marker (the lineage record) comes after all of them anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tessera_assets.products import attributes as attr
from tessera_assets.products.embeddings import N_BANDS, depth_array_name

SPEC_DEPTHS: tuple[int, ...] = (4, 16)
"""The depths geotessera writes for v2 stores (``--matryoshka-depths`` default ``4,16``)."""


def family_depths(family: str | None) -> tuple[int, ...]:
    """The prefix depths a store written by ``family`` carries: the spec's for v2, else none."""
    return SPEC_DEPTHS if family and str(family).startswith("v2") else ()


def stored_depths(root_attrs: Mapping[str, Any]) -> tuple[int, ...]:
    """Prefix depths a store's root declares in ``geoemb:depths`` (the full depth excluded)."""
    entries = root_attrs.get(attr.GEOEMB_DEPTHS) or []
    return tuple(sorted(int(e["dimensions"]) for e in entries if int(e["dimensions"]) < N_BANDS))


def with_prefixes(data: Mapping[str, Any], depths: Sequence[int]) -> dict[str, Any]:
    """``data`` with ``embeddings_d{K} = embeddings[:K]`` added for every prefix depth.

    Slices of the one in-memory array (no copy for numpy, no extra read for dask), so every
    prefix is byte-identical to the leading bands of ``embeddings`` by construction. Prefix
    arrays already in ``data`` are replaced, never trusted.
    """
    emb = data["embeddings"]
    prefixes = {depth_array_name(d): emb[:d] for d in sorted(depths) if d < N_BANDS}
    return {**prefixes, **{k: v for k, v in data.items() if k not in prefixes}}


def prefix_mismatches(arrays: Mapping[str, Any], depths: Sequence[int]) -> list[str]:
    """Depth arrays of a region that are not byte-exact prefixes of its ``embeddings``
    (geotessera's ``zarr-scan`` rule); empty when every prefix matches."""
    full = np.asarray(arrays["embeddings"])
    out = []
    for d in sorted(depths):
        if d >= N_BANDS:
            continue
        name = depth_array_name(d)
        if name not in arrays:
            out.append(f"{name} is missing")
        elif not np.array_equal(np.asarray(arrays[name]), full[:d]):
            out.append(f"{name} is not the first {d} dimensions of embeddings")
    return out
