"""``embeddings_coarse``: the multiscale pyramid of the embeddings (factor-2 levels up to the
configured coarsest resolution, each the renormalised, re-quantised mean of its children) in
the same TESSERA layout, one store per level (DESIGN §1, :mod:`tessera_assets.products.pyramid`).
The finer levels are written here; the coarsest is the asset's output, committed last by its IO
manager. Every level inherits the fine partition's provisional flag."""

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
from tessera_assets.defs.conventions import EAGER, GROUP_EMBED, OWNERS, code_version
from tessera_assets.defs.metadata import coarse_metadata, partition_labels, seconds_since
from tessera_assets.defs.partitions import tile_year
from tessera_assets.defs.resources import PipelineResource
from tessera_assets.model.families import clamp_for_family
from tessera_assets.ops.provisional import inherited_provisional
from tessera_assets.products.attributes import MODEL_FAMILY, PROVISIONAL, provenance
from tessera_assets.products.pyramid import pyramid_datasets, write_level
from tessera_assets.products.registry import ModelStamp, open_pyramid, open_store, store_url


def build_embeddings_coarse(partitions: MultiPartitionsDefinition) -> AssetsDefinition:
    @asset(partitions_def=partitions, io_manager_key="embeddings_coarse_io_manager",
           group_name=GROUP_EMBED, kinds={"zarr"}, owners=OWNERS,
           code_version=code_version(__name__, "tessera_assets.products.coarse",
                                        "tessera_assets.products.pyramid"),
           automation_condition=EAGER)
    def embeddings_coarse(context: AssetExecutionContext, pipeline: PipelineResource,
                          embeddings: xr.Dataset) -> Output[xr.Dataset]:
        """Pyramid of the embeddings: each level the mean of its children, renormalised and
        re-quantised with the family's clamp, in the same TESSERA layout, up to the configured
        coarsest resolution. Inherits the fine partition's provisional flag."""
        t0 = time.perf_counter()
        settings = pipeline.settings
        tile, year = tile_year(context.partition_key)
        # ``embeddings`` orders this asset after the fine one; the fine region itself is
        # streamed from its store in strips (a dask read would re-read chunks per strip).
        fine = open_store("embeddings", settings)
        family = str(fine.schema.attrs.get(MODEL_FAMILY) or "v2")
        levels = open_pyramid(settings, ModelStamp.from_attrs(fine.schema.attrs))
        datasets = pyramid_datasets(fine, levels, tile, year, clamp=clamp_for_family(family),
                                    lineage={"code_version": __version__,
                                             "config_digest": settings.digest()})
        provisional = inherited_provisional(provenance(datasets[-1].attrs), year,
                                            datetime.now(UTC).date())
        for store, level in zip(levels[:-1], datasets[:-1], strict=True):
            level.attrs[PROVISIONAL] = provisional
            write_level(store, tile, year, level)  # finer levels first; the IO manager commits
        ds = datasets[-1]                          # the coarsest level last
        ds.attrs[PROVISIONAL] = provisional
        return Output(ds, metadata={
            **coarse_metadata(ds, settings.coarse_resolution, settings.coarse_factor),
            "provisional": provisional,
            "pyramid_levels_m": [store.schema.resolution for store in levels],
            "seconds": seconds_since(t0),
            **partition_labels(settings, "embeddings_coarse", tile.id, year,
                               store_url(settings.root, "embeddings_coarse")),
        })

    return embeddings_coarse
