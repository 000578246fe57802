"""``embeddings_coarse``: the embeddings block-averaged to the configured resolution,
renormalised and re-quantised, in the same TESSERA layout (DESIGN §1). It inherits the fine
partition's provisional flag from the fine store's committed lineage record."""

# No ``from __future__ import annotations``: Dagster checks the ``context`` annotation as a class.

import time
from datetime import UTC, datetime

import xarray as xr
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    MultiPartitionsDefinition,
    Output,
    asset,
)

from tessera_assets import __version__
from tessera_assets.defs.conventions import EAGER, GROUP_EMBED
from tessera_assets.defs.metadata import coarse_metadata, seconds_since
from tessera_assets.defs.partitions import tile_year
from tessera_assets.defs.resources import PipelineResource
from tessera_assets.model.families import clamp_for_family
from tessera_assets.ops.provisional import inherited_provisional
from tessera_assets.products.attributes import MODEL_FAMILY, PROVISIONAL, provenance
from tessera_assets.products.coarse import coarse_dataset
from tessera_assets.products.registry import open_store


def build_embeddings_coarse(partitions: MultiPartitionsDefinition) -> AssetsDefinition:
    @asset(partitions_def=partitions, io_manager_key="embeddings_coarse_io_manager",
           group_name=GROUP_EMBED, code_version=__version__, kinds={"zarr"},
           automation_condition=EAGER)
    def embeddings_coarse(context: AssetExecutionContext, pipeline: PipelineResource,
                          embeddings: xr.Dataset) -> Output[xr.Dataset]:
        """Block mean of the dequantised embeddings at the configured resolution, renormalised
        and re-quantised with the family's clamp, in the same TESSERA layout. Inherits the
        fine partition's provisional flag."""
        t0 = time.perf_counter()
        settings = pipeline.settings
        tile, year = tile_year(context.partition_key)
        # ``embeddings`` orders this asset after the fine one; the fine region itself is
        # streamed from its store in strips (a dask read would re-read chunks per strip).
        fine = open_store("embeddings", settings)
        family = str(fine.schema.attrs.get(MODEL_FAMILY) or "v2")
        ds = coarse_dataset(fine, tile, year, resolution=settings.coarse_resolution,
                            clamp=clamp_for_family(family),
                            lineage={"code_version": __version__,
                                     "config_digest": settings.digest()})
        provisional = inherited_provisional(provenance(ds.attrs), year, datetime.now(UTC).date())
        ds.attrs[PROVISIONAL] = provisional
        return Output(ds, metadata={
            **coarse_metadata(ds, settings.coarse_resolution, settings.coarse_factor),
            "provisional": provisional,
            "seconds": seconds_since(t0),
        })

    return embeddings_coarse
