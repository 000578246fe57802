"""Reproduce a committed ``embeddings`` partition from what it recorded, and compare bit for bit.

The lineage record of an embeddings region names its scene manifest (digest), its model
(source + sha256) and its configuration (digest). :func:`reproduce` re-runs the partition's
chain — raw cubes, masked/calibrated cubes, embeddings — from exactly those, in process, into a
*scratch* root (never the live store), then compares every product the live root committed for
the partition, in graph order, and reports the first difference (product, variable, index,
values) or that the result is bit-identical. Comparing the cubes too says *where* a
difference starts (a changed archive object, the masking, or the model arithmetic).

It refuses (:class:`ReproduceError`, one line) when the partition is not committed, the stored
manifest is not the recorded one, or the settings given are not the recorded configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tessera_assets import __version__
from tessera_assets.config import PipelineSettings
from tessera_assets.grid import Tile
from tessera_assets.inference.inputs import masked_inputs
from tessera_assets.inference.strips import strip_refs
from tessera_assets.inference.tasks import assemble_tile
from tessera_assets.inference.worker import EmbeddingWorker
from tessera_assets.ingest import prepared_cubes
from tessera_assets.ingest.cog_reading import ReadConfig
from tessera_assets.ingest.cubes import s1_cube, s2_cube
from tessera_assets.products.depths import with_prefixes
from tessera_assets.products.registry import ModelStamp, manifest_url, open_store
from tessera_assets.sources.manifest import SceneManifest
from tessera_assets.store import Lineage

CHAIN = ("s2_cube", "s1_cube", "s2_masked", "s1_calibrated", "embeddings")
"""The products a partition's embeddings depend on, in graph order (compared in this order)."""


class ReproduceError(ValueError):
    """The partition cannot be reproduced as recorded (one-line reason)."""


@dataclass(frozen=True)
class Difference:
    product: str
    variable: str
    index: tuple[int, ...]
    """Position in the partition's array (the stored dims without the year)."""
    live: Any
    reproduced: Any
    count: int
    """How many elements of the variable differ."""

    def __str__(self) -> str:
        return (
            f"{self.product}.{self.variable}{list(self.index)}: live {self.live!r} ≠ "
            f"reproduced {self.reproduced!r} ({self.count} element(s) differ)"
        )


@dataclass
class ReproduceReport:
    tile: str
    year: int
    scratch_root: str
    compared: list[str] = field(default_factory=list)
    """Products compared (committed in the live root), in graph order."""
    not_compared: list[str] = field(default_factory=list)
    """Products the live root holds no committed region of (only their outputs count)."""
    difference: Difference | None = None

    @property
    def identical(self) -> bool:
        return self.difference is None

    def summary(self) -> str:
        where = f"{self.tile} {self.year}"
        if self.identical:
            return f"{where}: bit-identical ({', '.join(self.compared)})"
        return f"{where}: differs, first at {self.difference}"


def _model(record: Lineage) -> tuple[str, str | None, str | None]:
    extra = record.model_extra or {}
    source = extra.get("model_source")
    if not source:
        raise ReproduceError(
            "the lineage record names no model source (written before "
            "tessera:model_source was recorded): cannot re-run its model"
        )
    return str(source), record.model_sha256, extra.get("model_family")


def rerun_partition(
    settings: PipelineSettings,
    tile: Tile,
    year: int,
    manifest: SceneManifest,
    *,
    model_source: str,
    model_sha256: str | None = None,
    family: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Run the partition's embeddings chain in process into ``settings.root``, writing each
    region with the provenance the assets record (the embeddings with ``extra`` besides)."""
    manifest.save(manifest_url(settings.root, tile.id, year), settings.storage_options)
    lineage = {
        "manifest_digest": manifest.digest(),
        "code_version": __version__,
        "config_digest": settings.digest(),
    }
    read = ReadConfig.from_settings(settings.catalog)
    cubes = {
        "s2_cube": s2_cube(manifest, tile, read=read),
        "s1_cube": s1_cube(manifest, tile, read=read),
    }
    cubes["s2_masked"] = prepared_cubes.s2_masked(cubes["s2_cube"], manifest)
    cubes["s1_calibrated"] = prepared_cubes.s1_calibrated(cubes["s1_cube"])
    for product, ds in cubes.items():
        open_store(product, settings).write_tile(tile, year, ds, lineage)
    inference = settings.inference.model_copy(
        update={
            "model_source": model_source,
            "model_sha256": model_sha256,
            "family": family or settings.inference.family,
        }
    )
    worker = EmbeddingWorker(inference.model_dump(), "cpu", 0)
    info = worker.info()
    height, width = tile.geobox.shape
    inputs = masked_inputs(settings, tile, year)  # the same strips as the embeddings asset
    refs = strip_refs(
        tile.id,
        year,
        height,
        manifest,
        inputs.strip_rows(inference.strip_rows),
        settings.model_dump_json(),
        regions=inputs.regions,
    )
    result = assemble_tile((worker.run(r) for r in refs), height, width)
    n_s2, n_s1 = result.n_s2, result.n_s1  # counted by the worker from the strips it read
    stamp = ModelStamp(family=info.family, sha256=info.sha256, demo_weights=info.is_demo)
    store = open_store("embeddings", settings, stamp)
    data = with_prefixes(
        {
            "embeddings": result.codes,
            "scales": result.scales,
            "s2_obs_count": n_s2,
            "s1_obs_count": n_s1,
        },
        store.depths,
    )
    store.write_tile(
        tile,
        year,
        data,
        Lineage(
            **lineage,
            model_sha256=info.sha256,
            model_source=info.source,
            model_family=info.family,
            demo_weights=info.is_demo,
            **(extra or {}),
        ),
    )


def _bits(a: np.ndarray) -> np.ndarray:
    """The array's bytes as unsigned ints per element (NaN payloads and -0.0 count)."""
    a = np.ascontiguousarray(a)
    return a.view(f"u{a.dtype.itemsize}") if a.dtype.kind in "fc" else a


def first_difference(product: str, live: Any, again: Any) -> Difference | None:
    """The first differing element of two read partitions (xarray datasets), variable by
    variable in the store's order; a differing day axis counts as a difference of ``doy``."""
    for name in [*live.coords, *live.data_vars]:
        if name not in again.variables:
            return Difference(product, str(name), (), "present", "absent", 1)
        a, b = np.asarray(live[name].values), np.asarray(again[name].values)
        if a.shape != b.shape or a.dtype != b.dtype:
            return Difference(
                product,
                str(name),
                (),
                f"{a.dtype}{a.shape}",
                f"{b.dtype}{b.shape}",
                max(a.size, b.size),
            )
        differ = _bits(a) != _bits(b)
        if differ.any():
            index = tuple(int(i) for i in np.argwhere(differ)[0])
            return Difference(
                product, str(name), index, a[index].item(), b[index].item(), int(differ.sum())
            )
    return None


def reproduce(
    settings: PipelineSettings, tile: Tile, year: int, scratch_root: str
) -> ReproduceReport:
    """Re-run a committed embeddings partition as recorded into ``scratch_root`` and compare."""
    if str(scratch_root).rstrip("/") == str(settings.root).rstrip("/"):
        raise ReproduceError("the scratch root must not be the live root")
    live = open_store("embeddings", settings)
    record = live.read_lineage(tile, year)
    if record is None:
        raise ReproduceError(f"embeddings {tile.id} {year} is not committed: nothing to reproduce")
    source, sha256, family = _model(record)
    manifest = SceneManifest.load(
        manifest_url(settings.root, tile.id, year), settings.storage_options
    )
    if manifest.digest() != record.manifest_digest:
        raise ReproduceError(
            f"the stored scene manifest ({manifest.digest()[:19]}…) is not the "
            f"recorded one ({record.manifest_digest[:19]}…): re-materialised "
            "since, so the recorded inputs are gone"
        )
    if settings.digest() != record.config_digest:
        raise ReproduceError(
            f"these settings (digest {settings.digest()[:12]}…) are not the "
            f"recorded configuration ({record.config_digest[:12]}…): pass the "
            "settings file the partition was built with"
        )
    scratch = settings.model_copy(update={"root": str(scratch_root), "storage_options": {}})
    rerun_partition(
        scratch, tile, year, manifest, model_source=source, model_sha256=sha256, family=family
    )
    report = ReproduceReport(tile.id, int(year), str(scratch_root))
    for product in CHAIN:
        store = open_store(product, settings)
        if store.read_lineage(tile, year) is None:
            report.not_compared.append(product)
            continue
        report.compared.append(product)
        diff = first_difference(
            product, store.read_tile(tile, year), open_store(product, scratch).read_tile(tile, year)
        )
        if diff is not None:
            report.difference = diff
            break
    return report
