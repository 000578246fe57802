"""Attribute names of everything the pipeline writes: ONE namespace, ``tessera:``.

Our own keys — on store roots, zone groups, output datasets and lineage records — all start
with ``tessera:``. ``geoemb:*`` keys appear only where the published TESSERA Zarr layout
(geotessera ≥ 0.11) defines them, and are never renamed. An output dataset's ``tessera:*``
attributes are its provenance: the IO managers turn them into the region's lineage record
(:func:`lineage_from_attrs`), and a read puts the record back (:func:`lineage_attrs`).

The store's own keys (``tessera:layout`` on zone groups, ``tessera:tile``/``tessera:year`` on
read datasets) are defined in :mod:`tessera_assets.store` — which must not import products —
and re-exported here so this module names every key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tessera_assets.store.documents import LAYOUT_ATTR, NAMESPACE
from tessera_assets.store.lineage import Lineage
from tessera_assets.store.read import TILE_ATTR, YEAR_ATTR

# -- store root attributes (describe a whole store; every writer must agree) ------------------
PRODUCT = f"{NAMESPACE}product"
LAYOUT = LAYOUT_ATTR
MODEL_FAMILY = f"{NAMESPACE}model_family"
MODEL_SHA256 = f"{NAMESPACE}model_sha256"
DEMO_WEIGHTS = f"{NAMESPACE}demo_weights"
"""True when the model is seeded random weights in the official format, not a trained one."""
SCALE_SEMANTICS = f"{NAMESPACE}scale_semantics"
RESOLUTION_M = f"{NAMESPACE}resolution_m"
COARSENED_FROM = f"{NAMESPACE}coarsened_from"
COARSEN_FACTOR = f"{NAMESPACE}coarsen_factor"
COARSEN_METHOD = f"{NAMESPACE}coarsen_method"

# -- per-partition provenance (output dataset attrs → lineage record) -------------------------
MANIFEST_DIGEST = f"{NAMESPACE}manifest_digest"
CODE_VERSION = f"{NAMESPACE}code_version"
CONFIG_DIGEST = f"{NAMESPACE}config_digest"
MODEL_SOURCE = f"{NAMESPACE}model_source"
PROVISIONAL = f"{NAMESPACE}provisional"
PROVISIONAL_REASON = f"{NAMESPACE}provisional_reason"
SOURCE = f"{NAMESPACE}source"
"""Coarse partitions: the fine partition they were built from (product, written_at, factor)."""
SOURCE_WRITTEN_AT = f"{NAMESPACE}source_written_at"
SKIPPED_SCENES = f"{NAMESPACE}skipped_scenes"
ON_UNREADABLE = f"{NAMESPACE}on_unreadable"
MOSAIC_RULE = f"{NAMESPACE}mosaic_rule"
EMBEDDING_NOTE = f"{NAMESPACE}embedding_note"
"""What a tile-year could be embedded from (e.g. nothing: no S2 or S1 observation)."""

# -- datasets returned by a read ---------------------------------------------------------------
TILE = TILE_ATTR
YEAR = YEAR_ATTR

# -- the published layout's keys (geotessera reads these; never rename) -----------------------
GEOEMB_MODEL = "geoemb:model"
GEOEMB_BUILD_VERSION = "geoemb:build_version"
GEOEMB_DEPTHS = "geoemb:depths"

REQUIRED_LINEAGE = ("manifest_digest", "code_version", "config_digest")
"""Provenance every output must carry (:class:`~tessera_assets.store.lineage.Lineage`)."""
RECORDED_LINEAGE = (*REQUIRED_LINEAGE, "model_sha256")
"""Lineage fields a read puts back on the dataset as ``tessera:*`` attributes."""


def key(name: str) -> str:
    """``tessera:{name}``: the attribute of a lineage field."""
    return f"{NAMESPACE}{name}"


def provenance_attrs(**fields: Any) -> dict[str, Any]:
    """``{"tessera:<field>": value}`` for an output's provenance (see :func:`lineage_from_attrs`)."""
    return {key(k): v for k, v in fields.items()}


def provenance(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The ``tessera:*`` attributes of ``attrs``, prefix stripped, numpy scalars made plain."""
    return {
        k.removeprefix(NAMESPACE): _plain(v) for k, v in attrs.items() if k.startswith(NAMESPACE)
    }


def lineage_from_attrs(attrs: Mapping[str, Any]) -> Lineage:
    """The lineage record an output's ``tessera:*`` attributes describe (extra keys kept)."""
    fields = provenance(attrs)
    missing = [k for k in REQUIRED_LINEAGE if k not in fields]
    if missing:
        raise ValueError(f"output has no lineage attributes {missing}; set tessera:* attrs")
    return Lineage.model_validate(fields)


def lineage_attrs(record: Lineage | None) -> dict[str, Any]:
    """The recorded provenance of a committed region as ``tessera:*`` attributes."""
    if record is None:
        return {}
    return {key(k): v for k, v in record.model_dump().items()
            if k in RECORDED_LINEAGE and v is not None}


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
