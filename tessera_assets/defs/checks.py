"""Asset checks: what must hold before downstream assets may consume a partition.

Every check is partitioned like its asset (tile × year) and reads **only that partition's
region** of the store, never the zone. Checks that guard consumers are *blocking*: when one
fails (severity ERROR) in a run, Dagster does not run the downstream assets of that run — a
corrupt embeddings region never reaches ``embeddings_coarse``.

- ``region_complete`` (every zone-store asset): the partition is committed and every shard
  its lineage record lists exists, is not empty and matches its recorded content hash
  (:meth:`ZoneStore.region_status` with ``verify``).
- ``lineage_audit`` (embeddings, coarse): recorded manifest digest = the upstream manifest's;
  model checksum = the pinned ``inference.model_sha256``, else the store's recorded checksum;
  code version and config digest recorded.
- ``value_sanity`` (embeddings): dtypes and shapes; scales finite (> 0, and ≤ 1.0 for v2,
  geotessera's ``MAX_VALID_SCALE``) or NaN, never ±inf inside a committed region; every
  embedded pixel's codes reach ±127 (the quantiser's full scale: zero vectors fail);
  observation counts within what the manifest offers.
- ``coarse_consistency`` (coarse): at every pyramid level, the stored region equals a fresh
  coarsening of the stored level below (the fine region for the first) within one
  quantisation step, with the same validity and pixel counts.

- ``manifest_schema`` (scene_manifest): the partition's manifest exists, holds scenes and has
  the columns the cubes read.

The ``audit_*`` functions are plain (store, tile, year) → :class:`Outcome`, testable without
Dagster; the decorated checks only open the stores and convert the outcome.

A check launched **without a partition** (the Checks tab's "Execute all" does that) evaluates
nothing and says why in the run's log (:func:`partitioned_check`): it shows as skipped, and
the button never turns a healthy asset red.
"""

import io
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np
import pyarrow.parquet as pq
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    MetadataValue,
    MultiPartitionsDefinition,
    PreviewWarning,
    multi_asset_check,
)

from tessera_assets.config import PipelineSettings
from tessera_assets.defs.partitions import tile_year
from tessera_assets.defs.resources import PipelineResource
from tessera_assets.grid import Tile
from tessera_assets.inference.strips import orbit_days
from tessera_assets.model.families import clamp_for_family, is_v2
from tessera_assets.products import attributes as attr
from tessera_assets.products.coarse import coarsen_tile
from tessera_assets.products.embeddings import N_BANDS, EmbeddingsStore, dequantise
from tessera_assets.products.pyramid import audit_pyramid, summarise
from tessera_assets.products.registry import (
    PRODUCTS,
    manifest_url,
    open_pyramid,
    open_store,
    stored_attrs,
)
from tessera_assets.sources.manifest import SceneManifest
from tessera_assets.store import ZoneStore

MAX_VALID_SCALE = 1.0
"""geotessera's upper bound on admissible v2 scales (LayerNormed output, tessera-model.md)."""


@dataclass
class Outcome:
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def result(self, asset: str | None = None, name: str | None = None, *,
               severity: AssetCheckSeverity = AssetCheckSeverity.ERROR) -> AssetCheckResult:
        return AssetCheckResult(asset_key=asset, check_name=name, passed=self.passed,
                                severity=severity,
                                description=self.description,
                                metadata={k: _meta(v) for k, v in self.metadata.items()})


def _meta(value: Any) -> Any:
    if isinstance(value, dict | list):
        return MetadataValue.json(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


# ------------------------------------------------------------------------------ stores


def load_manifest(settings: PipelineSettings, tile: Tile, year: int) -> SceneManifest | None:
    try:
        return SceneManifest.load(manifest_url(settings.root, tile.id, year),
                                  settings.storage_options)
    except FileNotFoundError:
        return None


# ------------------------------------------------------------------------------ audits


def audit_completeness(store: ZoneStore, tile: Tile, year: int) -> Outcome:
    """Committed, every listed shard present, non-empty and matching its content hash (reads
    the region once). Records from before content hashes pass as "unverified"."""
    status = store.region_status(tile, year, verify=True)
    expected = sum(len(v) for v in status.expected.values())
    missing = status.missing
    n_missing = sum(len(v) for v in missing.values())
    meta = {"shards_expected": expected, "shards_missing": n_missing,
            "shards_corrupt": len(status.corrupt), "shards_unverified": len(status.unverified),
            "committed": status.committed, "write_in_progress": status.in_progress}
    if not status.committed:
        return Outcome(False, f"{store.product} {tile.id} {year} has no committed lineage "
                              "record (never written, or the last write did not finish)", meta)
    if missing:
        sample = [k for keys in missing.values() for k in keys][:5]
        meta["missing_sample"] = sample
        return Outcome(False, f"{n_missing} of {expected} shards of the region are missing "
                              f"(e.g. {sample[0]})", meta)
    if status.corrupt:
        meta["corrupt_sample"] = dict(list(status.corrupt.items())[:5])
        key, why = next(iter(status.corrupt.items()))
        return Outcome(False, f"{len(status.corrupt)} of {expected} shards do not match the "
                              f"lineage record: {key}: {why}", meta)
    if status.unverified:
        return Outcome(True, f"all {expected} shards present and committed; unverified: the "
                             "record predates content hashes (re-materialize to add them)", meta)
    return Outcome(True, f"all {expected} shards present, committed and matching their content "
                         "hashes", meta)


def audit_lineage(
    store: ZoneStore,
    tile: Tile,
    year: int,
    *,
    manifest_digest: str | None,
    pinned_sha256: str | None,
    stored_sha256: str | None,
    upstream: Any | None = None,
) -> Outcome:
    """Provenance of one region against its upstream (``upstream``: the fine record a coarse
    region must have been built from)."""
    record = store.read_lineage(tile, year)
    if record is None:
        return Outcome(False, f"{store.product} {tile.id} {year} is not committed", {})
    problems: list[str] = []
    meta: dict[str, Any] = {"recorded_manifest_digest": record.manifest_digest,
                            "recorded_model_sha256": record.model_sha256 or "",
                            "code_version": record.code_version,
                            "config_digest": record.config_digest}
    if manifest_digest is None:
        problems.append("the upstream scene manifest is missing")
    elif record.manifest_digest != manifest_digest:
        problems.append(f"manifest digest {record.manifest_digest[:12]}… ≠ the upstream "
                        f"manifest's {manifest_digest[:12]}… (built from other scenes)")
    want = pinned_sha256 or stored_sha256
    meta["expected_model_sha256"] = want or ""
    if not record.model_sha256:
        problems.append("no model checksum recorded")
    elif want and record.model_sha256 != want:
        origin = "inference.model_sha256" if pinned_sha256 else "the store's attributes"
        problems.append(f"model checksum {record.model_sha256[:12]}… ≠ {origin} {want[:12]}…")
    if not record.code_version:
        problems.append("no code version recorded")
    if not record.config_digest:
        problems.append("no config digest recorded")
    if upstream is not None:
        if record.manifest_digest != upstream.manifest_digest:
            problems.append("coarse and fine regions were built from different manifests")
        if record.model_sha256 != upstream.model_sha256:
            problems.append("coarse and fine regions were built by different models")
    if problems:
        return Outcome(False, "; ".join(problems), meta)
    return Outcome(True, "manifest digest, model checksum and code version agree", meta)


def audit_values(store: ZoneStore, tile: Tile, year: int, *, family: str,
                 manifest: SceneManifest | None) -> Outcome:
    """Dtypes, shapes, scale bounds, the codes themselves and observation-count ranges of one
    embeddings region. Reads the stored values without trusting the content hashes (that is
    ``region_complete``'s job), so it also judges regions whose records predate them."""
    if store.read_lineage(tile, year) is None:
        return Outcome(False, f"{store.product} {tile.id} {year} is not committed", {})
    try:
        return _audit_values(store, tile, year, family=family, manifest=manifest)
    except Exception as exc:  # a shard that no longer decodes (zstd, shard index) is a failure
        return Outcome(False, f"the region's values cannot be read: {type(exc).__name__}: "
                              f"{str(exc)[:300]}", {})


CODE_ROWS = 256
"""Rows of codes read at a time by :func:`audit_codes` (128 × 256 × 2048 int8 = 64 MB)."""


def audit_codes(emb: Any, finite: np.ndarray) -> int:
    """Embedded pixels whose code vector does not reach full scale. The quantiser maps each
    pixel's largest component to ±127 (v1 and v2), so a vector of zeros (a 0-byte or lost shard
    reads back as the fill) or a damaged one shows up here; streamed in row strips."""
    bad = 0
    for r0 in range(0, finite.shape[0], CODE_ROWS):
        rows = slice(r0, min(r0 + CODE_ROWS, finite.shape[0]))
        peak = np.abs(emb[:, rows, :].astype(np.int16)).max(axis=0)
        bad += int((finite[rows] & (peak < 126)).sum())
    return bad


def _audit_values(store: ZoneStore, tile: Tile, year: int, *, family: str,
                  manifest: SceneManifest | None) -> Outcome:
    px = store.schema.tile_px
    emb = store.tile_array(tile, year, "embeddings", verify=False)
    scales_view = store.tile_array(tile, year, "scales", verify=False)
    problems: list[str] = []
    if np.dtype(emb.dtype) != np.int8 or tuple(emb.shape) != (N_BANDS, px, px):
        problems.append(f"embeddings are {emb.dtype} {tuple(emb.shape)}, expected int8 "
                        f"{(N_BANDS, px, px)}")
    if np.dtype(scales_view.dtype) != np.float32 or tuple(scales_view.shape) != (px, px):
        problems.append(f"scales are {scales_view.dtype} {tuple(scales_view.shape)}, "
                        f"expected float32 {(px, px)}")
    scales = scales_view[:, :]
    finite = np.isfinite(scales)
    pos_inf, neg_inf = int(np.isposinf(scales).sum()), int(np.isneginf(scales).sum())
    meta: dict[str, Any] = {"pixels": int(scales.size), "embedded": int(finite.sum()),
                            "not_embedded": int(np.isnan(scales).sum()),
                            "unwritten_inf": pos_inf}
    if pos_inf:
        problems.append(f"{pos_inf} pixels still hold the +inf fill (never written)")
    if neg_inf:
        problems.append(f"{neg_inf} pixels have scale -inf")
    vals = scales[finite]
    if vals.size:
        meta.update(scale_min=float(vals.min()), scale_max=float(vals.max()))
        if (vals <= 0).any():
            problems.append(f"{int((vals <= 0).sum())} scales are ≤ 0")
        if is_v2(family) and (vals > MAX_VALID_SCALE).any():
            problems.append(f"{int((vals > MAX_VALID_SCALE).sum())} scales exceed "
                            f"{MAX_VALID_SCALE} (MAX_VALID_SCALE for v2)")
    weak = audit_codes(emb, finite)
    meta["codes_below_full_scale"] = weak
    if weak:
        problems.append(f"{weak} embedded pixels have codes that do not reach ±127 (zero or "
                        "damaged vectors)")
    names = {v.name for v in store.schema.variables}
    if manifest is not None and {"s2_obs_count", "s1_obs_count"} <= names:
        n_s2 = store.tile_array(tile, year, "s2_obs_count", verify=False)[:, :]
        n_s1 = store.tile_array(tile, year, "s1_obs_count", verify=False)[:, :]
        s2_days = len(manifest.days("s2"))
        s1_slots = sum(len(v) for v in orbit_days(manifest).values())
        meta.update(s2_obs_max=int(n_s2.max()), s2_days=s2_days, s1_obs_max=int(n_s1.max()),
                    s1_orbit_days=s1_slots)
        if int(n_s2.max()) > s2_days:
            problems.append(f"s2_obs_count reaches {int(n_s2.max())} but the manifest has "
                            f"{s2_days} S2 days")
        if int(n_s1.max()) > s1_slots:
            problems.append(f"s1_obs_count reaches {int(n_s1.max())} but the manifest has "
                            f"{s1_slots} S1 orbit-days")
        if is_v2(family):
            empty = finite & (n_s2.astype(np.int64) + n_s1 == 0)
            if empty.any():
                problems.append(f"{int(empty.sum())} embedded pixels have no observation")
    if problems:
        return Outcome(False, "; ".join(problems), meta)
    return Outcome(True, f"{meta['embedded']} of {meta['pixels']} pixels embedded, values in "
                         "range", meta)


def audit_coarse(fine: EmbeddingsStore, coarse: ZoneStore, tile: Tile, year: int, *,
                 family: str) -> Outcome:
    """Coarse region = coarsening of the fine region, within one quantisation step."""
    if coarse.read_lineage(tile, year) is None or fine.read_lineage(tile, year) is None:
        return Outcome(False, "fine or coarse region is not committed", {})
    factor = round(coarse.schema.resolution / fine.schema.resolution)
    expected = coarsen_tile(fine, tile, year, coarse.schema.resolution,
                            clamp=clamp_for_family(family))
    q = coarse.tile_array(tile, year, "embeddings")[:, :, :]
    s = coarse.tile_array(tile, year, "scales")[:, :]
    have_valid, want_valid = np.isfinite(s), np.isfinite(expected.scales)
    meta: dict[str, Any] = {"factor": factor, "coarse_pixels": int(s.size)}
    if not np.array_equal(have_valid, want_valid):
        n = int((have_valid != want_valid).sum())
        return Outcome(False, f"{n} coarse pixels differ in validity from the coarsened fine "
                              "region", meta | {"pixels_differing": n})
    ok = want_valid
    got = dequantise(q, s)[:, ok]
    want = dequantise(expected.embeddings, expected.scales)[:, ok]
    step = expected.scales[ok][None]
    err = np.abs(got - want) / np.where(step > 0, step, 1)
    worst = float(err.max()) if err.size else 0.0
    meta["max_error_in_quant_steps"] = round(worst, 4)
    if worst > 1.0 + 1e-3:
        bad = int((err > 1.0 + 1e-3).any(axis=0).sum())
        return Outcome(False, f"{bad} coarse pixels differ from the coarsened fine region by "
                              f"up to {worst:.2f} quantisation steps", meta)
    return Outcome(True, f"coarse equals the coarsened fine region (max {worst:.3f} steps)",
                   meta)


MANIFEST_COLUMNS = ("id", "collection", "datetime", "geometry", "assets", "tessera:sensor",
                    "tessera:doy")
"""Columns of the stored stac-geoparquet manifest the cubes and the checks read."""


def audit_manifest(url: str, storage_options: dict[str, Any] | None = None) -> Outcome:
    """The manifest at ``url`` (no suffix) exists, holds scenes and has :data:`MANIFEST_COLUMNS`."""
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    if not fs.exists(path + ".parquet"):
        return Outcome(False, f"no scene manifest at {url}.parquet", {})
    with fs.open(path + ".parquet", "rb") as f:
        data = f.read()
    if not data:
        return Outcome(False, "the manifest holds no scene (the catalog found nothing to read "
                              "for this tile-year)", {"rows": 0})
    meta_pq = pq.ParquetFile(io.BytesIO(data)).metadata
    names = set(meta_pq.schema.to_arrow_schema().names)
    missing = [c for c in MANIFEST_COLUMNS if c not in names]
    meta: dict[str, Any] = {"rows": meta_pq.num_rows, "columns": len(names)}
    if missing:
        return Outcome(False, f"the manifest lacks columns {missing}", meta | {"missing": missing})
    if meta_pq.num_rows == 0:
        return Outcome(False, "the manifest holds no scene", meta)
    return Outcome(True, f"{meta_pq.num_rows} scenes with every required column", meta)


NO_PARTITION = ("launched without a partition, so nothing was checked (a partitioned check "
                "audits one tile-year region): pick a partition, or use a backfill of the check")


def partitioned_check(asset: str, name: str, description: str,
                      partitions: MultiPartitionsDefinition,
                      audit: Callable[[PipelineSettings, Tile, int], Outcome]
                      ) -> AssetChecksDefinition:
    """A blocking check of ``asset``'s partition by ``audit``.

    A run without a partition (the Checks tab's "Execute all") evaluates nothing: it logs
    :data:`NO_PARTITION` and the check shows as skipped. Any result there would fail on
    Dagster's side (it looks the target materialisation up without a partition) and turn a
    healthy asset red; hence a multi-asset check that may emit no result (``can_subset``)."""
    spec = AssetCheckSpec(name, asset=asset, blocking=True, partitions_def=partitions,
                          description=description)

    @multi_asset_check(name=f"{asset}_{name}", specs=[spec], can_subset=True,
                       description=description)
    def _check(context: AssetCheckExecutionContext,
               pipeline: PipelineResource) -> Iterator[AssetCheckResult]:
        if not context.has_partition_key:
            context.log.warning("%s of %s %s", name, asset, NO_PARTITION)
            return
        tile, year = tile_year(context.partition_key)
        yield audit(pipeline.settings, tile, year).result(asset, name)

    return _check


# ------------------------------------------------------------------------------ definitions


def _lineage_outcome(settings: PipelineSettings, product: str, tile: Tile, year: int) -> Outcome:
    """:func:`audit_lineage` of an embeddings product against the manifest, the pinned or
    stored model checksum and, for the coarse product, the fine region it was built from."""
    manifest = load_manifest(settings, tile, year)
    fine = open_store("embeddings", settings)
    return audit_lineage(
        open_store(product, settings), tile, year,
        manifest_digest=manifest.digest() if manifest else None,
        pinned_sha256=settings.inference.model_sha256,
        stored_sha256=fine.schema.attrs.get(attr.MODEL_SHA256),
        upstream=fine.read_lineage(tile, year) if product != "embeddings" else None,
    )


def _family(settings: PipelineSettings) -> str:
    attrs = stored_attrs("embeddings", settings)
    return str(attrs.get(attr.MODEL_FAMILY) or settings.inference.family or "v2")


def build_checks(partitions: MultiPartitionsDefinition) -> list[AssetChecksDefinition]:
    """The blocking, partitioned checks of every zone-store asset.

    Partitioned asset checks are a Dagster 1.13 preview feature; its warning is silenced here
    (docs/operations.md says so) rather than on every import of the code location."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreviewWarning)
        return _build_checks(partitions)


def _build_checks(partitions: MultiPartitionsDefinition) -> list[AssetChecksDefinition]:
    def check(asset: str, name: str, description: str,
              audit: Callable[[PipelineSettings, Tile, int], Outcome]) -> AssetChecksDefinition:
        return partitioned_check(asset, name, description, partitions, audit)

    def completeness(product: str) -> AssetChecksDefinition:
        return check(product, "region_complete",
                     f"The {product} region of the partition is committed and every shard it "
                     "lists exists.",
                     lambda s, tile, year: audit_completeness(open_store(product, s), tile, year))

    return [
        *(completeness(p) for p in PRODUCTS),
        check("scene_manifest", "manifest_schema",
              "The manifest exists, holds scenes and has the columns the cubes read.",
              lambda s, tile, year: audit_manifest(manifest_url(s.root, tile.id, year),
                                                   s.storage_options)),
        check("embeddings", "lineage_audit",
              "Recorded manifest digest = upstream manifest; model checksum = pinned/stored "
              "one; code version recorded.",
              lambda s, tile, year: _lineage_outcome(s, "embeddings", tile, year)),
        check("embeddings", "value_sanity",
              "dtype/shape, scale bounds, no unwritten (+inf) pixels, observation-count ranges.",
              lambda s, tile, year: audit_values(open_store("embeddings", s), tile, year,
                                                 family=_family(s),
                                                 manifest=load_manifest(s, tile, year))),
        check("embeddings_coarse", "lineage_audit",
              "The coarse region was built from the current manifest by the same model as the "
              "fine region.",
              lambda s, tile, year: _lineage_outcome(s, "embeddings_coarse", tile, year)),
        check("embeddings_coarse", "coarse_consistency",
              "Every pyramid level = the mean of its children in the level below (the fine "
              "region for the first), renormalised and re-quantised, within one quantisation "
              "step.",
              lambda s, tile, year: Outcome(*summarise(audit_pyramid(
                  open_store("embeddings", s), open_pyramid(s), tile, year,
                  clamp=clamp_for_family(_family(s)))))),
    ]
