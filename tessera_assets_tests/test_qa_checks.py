"""Publication-grade QA: a clean store of two neighbouring tiles (smooth embeddings that run on
across the tile edge) passes every audit; a deliberately seamed store (the second tile offset)
fails ``seams``, a store with a constant dimension fails ``dead_dimensions``, a zone-year with
a registered tile neither written nor skipped fails ``coverage_reconciliation``, drifted pixels
fail ``drift`` — and each check records its verdict beside the data before it reports it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tessera_assets.config import PipelineSettings
from tessera_assets.defs.partitions import tile_year_partitions
from tessera_assets.defs.qa_checks import build_qa_checks, judge
from tessera_assets.ops.aoi_registry import AoiRecord, AoiRegistry
from tessera_assets.products import qa
from tessera_assets.products.registry import ModelStamp, open_store
from tessera_assets_tests.store_testkit import LINEAGE, TILE_A, TILE_B

YEARS = [2023, 2024]
STAMP = ModelStamp(family="v1.1", sha256="ab" * 32)
PX = 64


def _settings(root: Path) -> PipelineSettings:
    return PipelineSettings(root=str(root), tile_size=PX, years=YEARS, coarse_resolution=160.0)


def _field(seed: int, x0: int) -> np.ndarray:
    """A smooth (128, 64, 64) float field over columns x0..x0+63: neighbouring tiles continue
    each other, as real embeddings of one landscape do."""
    rng = np.random.default_rng(seed)
    freq, phase = rng.uniform(0.02, 0.15, (2, 128, 1, 1)), rng.uniform(0, 6.3, (128, 1, 1))
    y, x = np.mgrid[0:PX, x0 : x0 + PX]
    return (
        np.sin(freq[0] * x + phase)
        + np.cos(freq[1] * y + phase)
        + 0.05 * rng.normal(size=(128, PX, PX))
    )


def _write(settings: PipelineSettings, tile, year: int, vec: np.ndarray) -> None:
    scale = np.abs(vec).max(axis=0) / 127
    codes = np.round(vec / scale).astype(np.int8)
    ones = np.ones((PX, PX), np.uint16)
    open_store("embeddings", settings, STAMP).write_tile(
        tile,
        year,
        {
            "embeddings": codes,
            "scales": scale.astype(np.float32),
            "s2_obs_count": ones,
            "s1_obs_count": ones,
        },
        LINEAGE,
    )


def _store(root: Path, *, seam: bool = False, dead: bool = False, drift: bool = False):
    settings = _settings(root)
    a, b = _field(1, 0), _field(1, PX)
    if seam:
        b = b + 1.5  # the second tile shifted: a jump at the shared edge
    if dead:
        a[17] = b[17] = 0.25
    for year in YEARS:
        _write(settings, TILE_A, year, a)
        _write(settings, TILE_B, year, -b if (drift and year == 2024) else b)
    AoiRegistry(settings.root).save(
        AoiRecord(
            name="pair",
            geometry={"type": "Point", "coordinates": [-2.49, 52.2]},
            years=YEARS,
            tile_size=PX,
            tiles=[TILE_A.id, TILE_B.id],
        )
    )
    return settings


def test_a_clean_store_passes_every_audit(tmp_path: Path) -> None:
    settings = _store(tmp_path)
    store = open_store("embeddings", settings)
    seams = qa.audit_seams(store, TILE_A, 2024)
    assert seams.passed and seams.metadata["neighbours"] == ["east"], seams
    assert 0.8 <= seams.metadata["ratio"] <= 1.25
    assert qa.audit_dead_dimensions(store, TILE_B, 2024).passed
    drift = qa.audit_drift(store, TILE_B, 2024, store, 2023)
    assert drift.passed and drift.metadata["cosine"]["p50"] > 0.99
    cov = qa.reconcile_coverage(
        [TILE_A.id, TILE_B.id], [TILE_A.id, TILE_B.id], [], zone=30, year=2024
    )
    assert cov.passed and "2 written + 0 skipped == 2 expected" in cov.description


def test_a_seamed_store_fails_seams(tmp_path: Path) -> None:
    store = open_store("embeddings", _store(tmp_path, seam=True))
    v = qa.audit_seams(store, TILE_B, 2024)
    assert not v.passed and v.metadata["ratio"] > 1.25 and v.metadata["neighbours"] == ["west"]


def test_a_constant_dimension_fails_dead_dimensions(tmp_path: Path) -> None:
    store = open_store("embeddings", _store(tmp_path, dead=True))
    v = qa.audit_dead_dimensions(store, TILE_A, 2024)
    assert not v.passed and v.metadata["dead"] == [17], v


def test_drift_and_coverage_fail_with_their_evidence(tmp_path: Path) -> None:
    store = open_store("embeddings", _store(tmp_path, drift=True))
    v = qa.audit_drift(store, TILE_B, 2024, store, 2023)
    assert not v.passed and v.metadata["cosine"]["p50"] < -0.99
    assert sum(v.metadata["histogram"].values()) == PX * PX
    cov = qa.reconcile_coverage(["t1", "t2", "t3"], ["t1", "t4"], ["t2"], zone=30, year=2024)
    assert not cov.passed and cov.metadata["missing_sample"] == ["t3"]
    assert cov.metadata["unexpected_sample"] == ["t4"]


def _run_checks(settings: PipelineSettings, tile, year: int) -> dict[str, object]:
    """Every registered QA check's judgement (what its Dagster check yields)."""
    checks = build_qa_checks(tile_year_partitions(YEARS))
    names = {key.name for c in checks for key in c.check_keys}
    return {name: judge(settings, name, tile, year) for name in sorted(names)}


@pytest.mark.parametrize(
    ("kind", "failing"),
    [
        ("clean", set()),
        ("seam", {"seams"}),
        ("dead", {"dead_dimensions"}),
        ("drift", {"drift", "seams"}),  # a negated tile also jumps at its edge
    ],
)
def test_checks_record_their_verdict_and_fail_as_they_should(
    tmp_path: Path, kind: str, failing: set[str]
) -> None:
    settings = _store(tmp_path, **({} if kind == "clean" else {kind: True}))
    results = _run_checks(settings, TILE_B, 2024)
    assert set(results) == {"seams", "dead_dimensions", "coverage_reconciliation", "drift"}
    assert {name for name, r in results.items() if not r.passed} == failing
    for name, r in results.items():
        saved = json.loads((Path(settings.root) / qa.verdict_key(name, TILE_B, 2024)).read_text())
        assert saved["passed"] == r.passed and saved["description"] == r.description
        assert r.metadata["verdict"].endswith(qa.verdict_key(name, TILE_B, 2024))
