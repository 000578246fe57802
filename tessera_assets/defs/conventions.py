"""What every asset module shares: asset groups, owners, per-asset code versions, the
automation condition, the demo-weights label and the lineage attributes each output carries
(the IO managers turn them into the region's lineage record, DESIGN §4)."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import xarray as xr
from dagster import AutomationCondition

from tessera_assets import __version__
from tessera_assets.products.attributes import provenance_attrs

GROUP_INGEST = "ingest"
GROUP_PREPARE = "prepare"
GROUP_EMBED = "embed"
EAGER = AutomationCondition.eager()
"""Downstream assets follow a re-built upstream partition (evaluated by the automation sensor)."""

OPTIONAL_PRODUCTS = frozenset({"landsat_cube", "landsat_masked"})
"""Assets no model consumes (Landsat): built when asked (the demo, a backfill or
``materialize`` that selects them), never by the automation sensor, so they neither fail nor
slow the embeddings path (a backfill of the embeddings path would otherwise be followed by one
automation run per partition for them)."""


def automation_for(name: str) -> AutomationCondition | None:
    """``EAGER`` for the embeddings path, none for :data:`OPTIONAL_PRODUCTS`."""
    return None if name in OPTIONAL_PRODUCTS else EAGER
OWNERS = ["team:tessera-assets"]
"""Who answers for the assets (shown in the catalog; Dagster wants an email or ``team:``)."""
DEMO_LABEL = ("DEMO WEIGHTS: seeded random weights in the official checkpoint format, not a "
              "trained TESSERA model")


def with_lineage(ds: xr.Dataset, manifest_digest: str, config_digest: str,
                 **extra: Any) -> xr.Dataset:
    """``ds`` with the ``tessera:*`` provenance attributes set (in place)."""
    ds.attrs.update(provenance_attrs(manifest_digest=manifest_digest, code_version=__version__,
                                     config_digest=config_digest, **extra))
    return ds


def code_version(*modules: str) -> str:
    """A digest of the source of ``modules`` (dotted names; a package counts with all its
    modules): an asset's Dagster code version,
    which changes when the code that computes that asset changes, and only then (a release
    that leaves it alone keeps its partitions up to date)."""
    h = hashlib.sha256()
    for name in sorted(modules):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ValueError(f"no source for module {name!r}")
        origin = Path(spec.origin)
        files = (sorted(origin.parent.rglob("*.py")) if spec.submodule_search_locations
                 else [origin])  # a package: every module in it
        for f in files:
            h.update(f"{name}:{f.relative_to(origin.parent)}".encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]
