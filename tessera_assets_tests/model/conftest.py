"""Shared fixtures: locating the golden reference data, small random models, tiny series."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

GOLDEN_FAMILIES = {"v1_0_qat": "v1.0", "v1_1": "v1.1", "v2_nano": "v2-nano"}


def find_golden_dir() -> Path | None:
    """``$TESSERA_GOLDEN_DIR``, else the first ``shared/fixtures/golden`` beside an ancestor of
    this file (CI clones the repo with ``shared/`` next to the clone)."""
    env = os.environ.get("TESSERA_GOLDEN_DIR")
    if env:
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "fixtures" / "golden"
        if candidate.is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    path = find_golden_dir()
    if path is None or not path.is_dir() or not any(path.glob("*/meta.json")):
        msg = (
            f"golden fixtures not found (looked at {path or 'shared/fixtures/golden above the repo'});"
            " set TESSERA_GOLDEN_DIR"
        )
        if os.environ.get("TESSERA_ALLOW_MISSING_GOLDEN") == "1":
            pytest.skip(f"{msg}; skipped because TESSERA_ALLOW_MISSING_GOLDEN=1")
        pytest.fail(msg + " (or TESSERA_ALLOW_MISSING_GOLDEN=1 to skip)", pytrace=False)
    return path


class GoldenFamily:
    """One golden family folder with its cases (main, nosar, aws)."""

    def __init__(self, root: Path, folder: str) -> None:
        self.root = root / folder
        self.folder = folder
        self.family = GOLDEN_FAMILIES[folder]
        self.meta = json.loads((self.root / "meta.json").read_text())

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint.pt"

    def cases(self) -> list[dict]:
        """Each case: inputs/model_inputs/outputs paths and the normalisation set used."""
        out = []
        for case in self.meta["cases"]:
            ds = case.get("data_source")
            out.append(
                {
                    "name": case["case"],
                    "inputs": self.root / case["inputs"],
                    "model_inputs": self.root / case["model_inputs"],
                    "outputs": self.root / case["outputs"],
                    "norm": ds,
                    "seed": case.get("np_random_seed"),
                }
            )
        return out


@pytest.fixture(scope="session", params=list(GOLDEN_FAMILIES))
def golden(request, golden_dir: Path) -> GoldenFamily:
    if not (golden_dir / request.param / "meta.json").is_file():
        pytest.skip(f"golden family {request.param} absent from {golden_dir}")
    return GoldenFamily(golden_dir, request.param)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as d:
        return {k: d[k] for k in d}
