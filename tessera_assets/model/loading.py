"""``load_model``: from a local path, fsspec URL or hf:// source to a ready TesseraModel."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import torch

from tessera_assets.model.architecture import TesseraModel
from tessera_assets.model.checkpoint import (
    DEMO_MARKER,
    CheckpointError,
    CheckpointKeyError,
    ParsedCheckpoint,
    parse_checkpoint,
    read_container,
)
from tessera_assets.model.families import DEFAULT_NORM
from tessera_assets.model.normalisation import resolve_norm_name
from tessera_assets.model.sources import resolve_source, verify_sha256

log = logging.getLogger(__name__)


def choose_norm(parsed: ParsedCheckpoint, norm: str | None) -> str:
    """The normalisation set: explicit ``norm``, else what a v1.1 config says, else the default.

    v1.1's set (mpc or aws) is tied to the preprocessing source and cannot be read from the
    weights, so an unspecified v1.1 set falls back to mpc with a warning.
    """
    kind = parsed.kind
    wanted = resolve_norm_name(kind, norm)
    declared = None
    if kind == "v1.1":
        cfg = parsed.meta.get("config") or {}
        for key in ("data_source", "norm"):
            if isinstance(cfg.get(key), str):
                declared = resolve_norm_name(kind, cfg[key])
                break
    if wanted and declared and wanted != declared:
        raise CheckpointError(f"norm={norm!r} contradicts the checkpoint config ({declared})")
    chosen = wanted or declared
    if chosen is None:
        chosen = DEFAULT_NORM[kind]
        if kind == "v1.1":
            log.warning(
                "v1.1 checkpoint does not say which normalisation set it was trained with; "
                "using %s. Pass norm='aws' for tessera_v1_1_aws_encoder.pt.",
                chosen,
            )
    return chosen


def load_state(model: TesseraModel, state: dict[str, torch.Tensor]) -> None:
    """Load ``state`` into ``model``, failing with the lists of missing and unexpected keys."""
    expected = set(model.state_dict())
    missing = sorted(expected - state.keys())
    unexpected = sorted(state.keys() - expected)
    if missing or unexpected:
        raise CheckpointKeyError(missing, unexpected, model.family)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # shape mismatches
        raise CheckpointError(
            f"checkpoint tensors do not fit the {model.family} model: {exc}"
        ) from exc


def check_checkpoint(
    path: str | os.PathLike,
    *,
    family: str | None = None,
    sha256: str | None = None,
    norm: str | None = None,
) -> str:
    """What :func:`load_model` would refuse in a local checkpoint file (a pinned ``sha256``
    it does not match, bytes torch cannot open, a container of no supported family), checked
    without building the model, so a run can refuse before writing anything instead of in its
    inference actors after the cubes. Returns the file's sha256; cached per file state."""
    stat = os.stat(path)
    return _checked(os.fspath(path), stat.st_size, stat.st_mtime_ns, family, sha256, norm)


@functools.lru_cache(maxsize=8)
def _checked(path: str, size: int, mtime_ns: int, family: str | None, sha256: str | None,
             norm: str | None) -> str:
    digest = verify_sha256(path, sha256)
    parsed = parse_checkpoint(read_container(path), family=family)
    choose_norm(parsed, norm)
    return digest


def load_model(
    source: str | os.PathLike,
    *,
    family: str | None = None,
    device: str | torch.device = "cpu",
    sha256: str | None = None,
    norm: str | None = None,
    allow_pickle: bool = False,
    cache_dir: str | Path | None = None,
) -> TesseraModel:
    """Load a TESSERA checkpoint of any supported family.

    Args:
        source: local path, fsspec URL (``s3://``, ``https://`` ...) or
            ``hf://owner/repo/path/in/repo`` (Hugging Face, cached).
        family: expected family ('v1.0', 'v1.1', 'v2', 'v2-medium' ...); an error is raised if
            the checkpoint is something else. Detected from the checkpoint when None.
        device: where to put the weights.
        sha256: pinned hash of the file; a mismatch raises ``ChecksumMismatchError``.
        norm: normalisation set ('mpc'/'aws' for v1.1); needed only for v1.1 checkpoints whose
            config does not name it.
        allow_pickle: permit full pickle loading (only for trusted files that are not plain
            tensor containers).
        cache_dir: where fsspec downloads are cached.

    Returns:
        A :class:`TesseraModel` in eval mode with ``family``, ``norm``, ``source``, ``sha256``,
        ``is_demo``, ``embedding_dim`` and ``device`` set.
    """
    path = resolve_source(source, cache_dir=cache_dir)
    digest = verify_sha256(path, sha256)
    container = read_container(path, allow_pickle=allow_pickle)
    parsed = parse_checkpoint(container, family=family)
    model = TesseraModel(
        parsed.config,
        norm=choose_norm(parsed, norm),
        source=os.fspath(source),
        sha256=digest,
        is_demo=DEMO_MARKER in container,
    )
    load_state(model, parsed.state)
    model.demo_info = container.get(DEMO_MARKER)
    model.ignored_keys = parsed.ignored_keys
    return model.to(device).eval()
