"""Locating the shared fixtures (real STAC items, golden model outputs) from any clone."""

from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path:
    """``$TESSERA_SHARED_DIR``, else the first ``shared/`` found beside a parent of this file
    (CI clones the repo with ``shared/`` next to it)."""
    env = os.environ.get("TESSERA_SHARED_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        for candidate in (parent / "shared", parent.parent / "shared"):
            if (candidate / "fixtures").is_dir():
                return candidate
    raise FileNotFoundError(
        "shared/ fixtures not found beside the repository; set TESSERA_SHARED_DIR"
    )


def stac_fixture_dir() -> Path:
    return shared_dir() / "fixtures" / "stac"


def one_line(text: str) -> str:
    """The one non-blank line of a CLI error (no traceback): what users are promised."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]
