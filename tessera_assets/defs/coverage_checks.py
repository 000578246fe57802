"""Coverage checks: a skip that empties a day or a partition must not look like success
(issue 10.5).

With ``catalog.on_unreadable = "skip"`` an unreadable scene is recorded in the cube's lineage
record and its day holds no data (or is gone). A run whose every granule was skipped still
writes and commits a region, so ``region_complete`` passes. The blocking ``coverage`` check of
each cube (``s2_cube``, ``s1_cube``, ``landsat_cube``) fails when, for a sensor that has scenes
in the manifest:

- more than ``coverage.max_skipped_fraction`` of its scenes were skipped;
- a day lost every granule to skips (unless ``coverage.allow_emptied_days``);
- fewer than ``coverage.min_observed_fraction`` of the tile's pixels were observed at least
  once in the year.

A sensor without scenes passes (an S1-only catalog, open ocean): the embeddings metadata says
what could be embedded. The audit is a plain (settings, tile, year) → :class:`Outcome`
function; reading the observed fraction streams one band of the region, chunk by chunk.
"""

import warnings
from collections.abc import Callable

import dask.array as da
from dagster import AssetChecksDefinition, MultiPartitionsDefinition, PreviewWarning

from tessera_assets.config import CoverageSettings, PipelineSettings
from tessera_assets.defs.checks import Outcome, load_manifest, partitioned_check
from tessera_assets.grid import Tile
from tessera_assets.ingest.validity import landsat_has_data, s1_present
from tessera_assets.products.registry import open_store
from tessera_assets.sources.manifest import SceneManifest
from tessera_assets.store import ZoneStore

SENSOR_OF = {"s2_cube": "s2", "s1_cube": "s1", "landsat_cube": "landsat"}


def _observed_s2(ds) -> da.Array:  # SCL 0 = no data
    return ds["bands"].sel(band="SCL").data != 0


def _observed_s1(ds) -> da.Array:  # any orbit/polarisation with backscatter
    return da.map_blocks(s1_present, ds["backscatter"].data, dtype=bool).any(axis=1)


def _observed_landsat(ds) -> da.Array:  # QA_PIXEL neither fill nor 0 (no granule)
    return da.map_blocks(landsat_has_data, ds["bands"].sel(band="qa_pixel").data, dtype=bool)


OBSERVED: dict[str, Callable] = {
    "s2_cube": _observed_s2,
    "s1_cube": _observed_s1,
    "landsat_cube": _observed_landsat,
}


def observed_fraction(store: ZoneStore, tile: Tile, year: int) -> float:
    """Fraction of the tile's pixels with data on at least one day of the committed region."""
    ds = store.read_tile(tile, year)
    if ds.sizes.get("doy", 0) == 0:
        return 0.0
    return float(OBSERVED[store.product](ds).any(axis=0).mean().compute())


def audit_coverage(
    store: ZoneStore,
    manifest: SceneManifest | None,
    tile: Tile,
    year: int,
    limits: CoverageSettings,
) -> Outcome:
    """Skipped scenes, emptied days and observed pixels of one cube partition."""
    sensor = SENSOR_OF[store.product]
    record = store.read_lineage(tile, year)
    if record is None or manifest is None:
        return Outcome(
            False,
            f"{store.product} {tile.id} {year}: no committed region or no "
            "manifest to measure coverage against",
        )
    items = {i.id for i in manifest.sensor_items(sensor)}
    recorded = (record.model_extra or {}).get("skipped_scenes") or []
    skipped = sorted({s["item_id"] for s in recorded if s.get("item_id") in items})
    meta: dict = {"scenes": len(items), "skipped_scenes": len(skipped)}
    if not items:
        return Outcome(True, f"no {sensor} scenes in the manifest: nothing to cover", meta)
    fraction = len(skipped) / len(items)
    emptied = sorted(
        d for d, its in manifest.days(sensor).items() if its and all(i.id in skipped for i in its)
    )
    observed = observed_fraction(store, tile, year)
    meta.update(
        skipped_fraction=round(fraction, 4),
        emptied_days=emptied,
        observed_fraction=round(observed, 4),
        skipped_sample=skipped[:5],
    )
    problems = []
    if fraction > limits.max_skipped_fraction:
        problems.append(
            f"{len(skipped)} of {len(items)} {sensor} scenes skipped as unreadable "
            f"({fraction:.0%} > max_skipped_fraction {limits.max_skipped_fraction:.0%})"
        )
    if emptied and not limits.allow_emptied_days:
        problems.append(f"{len(emptied)} day(s) lost every granule to skips (doy {emptied[:5]})")
    if observed < limits.min_observed_fraction:
        problems.append(
            f"only {observed:.1%} of the tile observed "
            f"(< min_observed_fraction {limits.min_observed_fraction:.1%})"
        )
    if problems:
        return Outcome(
            False,
            "; ".join(problems) + ": re-run once the scenes are readable, or "
            "raise the coverage thresholds",
            meta,
        )
    return Outcome(
        True,
        f"{len(items) - len(skipped)}/{len(items)} {sensor} scenes read, "
        f"{observed:.1%} of the tile observed",
        meta,
    )


def _coverage(settings: PipelineSettings, product: str, tile: Tile, year: int) -> Outcome:
    return audit_coverage(
        open_store(product, settings),
        load_manifest(settings, tile, year),
        tile,
        year,
        settings.coverage,
    )


def build_coverage_checks(partitions: MultiPartitionsDefinition) -> list[AssetChecksDefinition]:
    """The blocking ``coverage`` check of each cube asset."""

    def one(product: str) -> AssetChecksDefinition:
        return partitioned_check(
            product,
            "coverage",
            "Skipped scenes within coverage.max_skipped_fraction, no day emptied by skips, and "
            "at least coverage.min_observed_fraction of the tile observed.",
            partitions,
            lambda s, tile, year: _coverage(s, product, tile, year),
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreviewWarning)
        return [one(p) for p in SENSOR_OF]
