"""What every asset module shares: asset groups, the automation condition, the demo-weights
label and the lineage attributes each output carries (the IO managers turn them into the
region's lineage record, DESIGN §4)."""

from __future__ import annotations

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
DEMO_LABEL = ("DEMO WEIGHTS: seeded random weights in the official checkpoint format, not a "
              "trained TESSERA model")


def with_lineage(ds: xr.Dataset, manifest_digest: str, config_digest: str,
                 **extra: Any) -> xr.Dataset:
    """``ds`` with the ``tessera:*`` provenance attributes set (in place)."""
    ds.attrs.update(provenance_attrs(manifest_digest=manifest_digest, code_version=__version__,
                                     config_digest=config_digest, **extra))
    return ds
