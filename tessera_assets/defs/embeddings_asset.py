"""``embeddings``: TESSERA embeddings of a tile-year, computed by the Ray inference engine, in
the published TESSERA Zarr layout (DESIGN §1, §4, §5). Provisional until the year is complete."""

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

from tessera_assets.defs.conventions import (
    DEMO_LABEL,
    EAGER,
    GROUP_EMBED,
    OWNERS,
    code_version,
    with_lineage,
)
from tessera_assets.defs.metadata import (
    embedding_metadata,
    ledger_metadata,
    model_metadata,
    observation_metadata,
    partition_labels,
    preview_metadata,
    read_metadata,
)
from tessera_assets.defs.partitions import tile_year
from tessera_assets.defs.resources import InferenceResource, PipelineResource
from tessera_assets.inference.inputs import masked_inputs
from tessera_assets.inference.strips import embedding_note, strip_refs
from tessera_assets.inference.tasks import assemble_tile
from tessera_assets.ops.planner import device_of, manifest_estimates
from tessera_assets.ops.previews import pca_rgb
from tessera_assets.ops.provisional import manifest_provisional
from tessera_assets.products.registry import store_url
from tessera_assets.sources.manifest import SceneManifest

INFERENCE_POOL = "gpu"
"""Dagster concurrency pool of the ``embeddings`` step; its limit is the cluster's slots."""


def build_embeddings(partitions: MultiPartitionsDefinition) -> AssetsDefinition:
    @asset(partitions_def=partitions, io_manager_key="embeddings_io_manager",
           group_name=GROUP_EMBED, kinds={"zarr", "ray", "pytorch"}, owners=OWNERS,
           code_version=code_version(__name__, "tessera_assets.inference",
                                     "tessera_assets.model"),
           automation_condition=EAGER, pool=INFERENCE_POOL)
    def embeddings(context: AssetExecutionContext, pipeline: PipelineResource,
                   inference: InferenceResource,
                   s2_masked: xr.Dataset, s1_calibrated: xr.Dataset,
                   scene_manifest: SceneManifest) -> Output[xr.Dataset]:
        """TESSERA embeddings: int8 (band, y, x) + float32 scale per pixel (NaN = not embedded),
        computed by the shared inference actors (which read their strips from the masked-cube
        stores), in the published TESSERA Zarr layout. Provisional (metadata + lineage) until
        the year is complete. In the ``gpu`` pool: the instance bounds how many runs feed the
        inference slots at once."""
        settings = pipeline.settings
        tile, year = tile_year(context.partition_key)
        engine = inference.service()
        info = engine.info
        assert info is not None
        if info.is_demo:
            context.log.warning(DEMO_LABEL)
        height, width = tile.geobox.shape
        t0 = time.perf_counter()
        done = [0]

        def progress(rows: int) -> None:
            done[0] += rows
            context.log.info("embedded %d/%d rows of %s", done[0], height, tile.id)

        # the inputs were verified by their load; the actors read each stored chunk once
        inputs = masked_inputs(settings, tile, year)
        tasks = strip_refs(tile.id, year, height, scene_manifest,
                           inputs.strip_rows(settings.inference.strip_rows),
                           settings.model_dump_json(), regions=inputs.regions)
        result = assemble_tile(engine.embed(tasks, progress), height, width)
        seconds = time.perf_counter() - t0
        assert result.n_s2 is not None and result.n_s1 is not None  # StripRefs carry counts
        n_s2, n_s1 = result.n_s2, result.n_s1
        note = embedding_note(n_s2, n_s1, result.pixels_embedded, info.family)
        if not n_s2.any():  # nothing optical: few or no embeddings, say why
            context.log.warning("embeddings %s %d: %s", tile.id, year, note)
        provisional, reason = manifest_provisional(scene_manifest.items, year,
                                                   datetime.now(UTC).date(), settings.scene_watch)
        ds = xr.Dataset(
            {
                "embeddings": (("band", "y", "x"), result.codes),
                "scales": (("y", "x"), result.scales),
                "s2_obs_count": (("y", "x"), n_s2),
                "s1_obs_count": (("y", "x"), n_s1),
            },
            coords={k: s2_masked.coords[k] for k in ("y", "x", "spatial_ref")
                    if k in s2_masked.coords},
        )
        with_lineage(ds, scene_manifest.digest(), settings.digest(), model_family=info.family,
                     model_sha256=info.sha256, model_source=info.source,
                     demo_weights=info.is_demo, provisional=provisional,
                     provisional_reason=reason, embedding_note=note)
        estimate = manifest_estimates(scene_manifest, settings,
                                      device_of(info.device))["embeddings"]
        preview = preview_metadata(context, settings, "embeddings", tile.id, year,
                                   lambda px: pca_rgb(result.codes, result.scales, max_px=px),
                                   f"PCA false colour {tile.id} {year}")
        if provisional:
            context.log.info("embeddings %s %d are provisional: %s", tile.id, year, reason)
        return Output(ds, metadata={
            **model_metadata(info, DEMO_LABEL),
            **embedding_metadata(result, ds, seconds, estimate),
            **ledger_metadata(context, settings, tile.id, year, info, result, ds, seconds,
                              estimate),
            **partition_labels(settings, "embeddings", tile.id, year,
                               store_url(settings.root, "embeddings")),
            "manifest_digest": scene_manifest.digest(),
            **observation_metadata(n_s2, n_s1),
            **read_metadata(result.bytes_read, inputs.region_bytes),
            "provisional": provisional,
            "provisional_reason": reason,
            "embedding_note": note,
            **preview,
        })

    return embeddings
