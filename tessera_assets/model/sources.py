"""Resolve a model ``source`` to a local file, and hash it.

Accepted sources: a local path (or ``file://`` URL); ``hf://owner/repo/path/in/repo`` (optionally
``hf://owner/repo@revision/path``), fetched with ``huggingface_hub.hf_hub_download`` into the
Hugging Face cache (so ``HF_HUB_OFFLINE=1`` works once cached); any other fsspec URL (``s3://``,
``gs://``, ``https://`` ...), copied once into a local cache directory. Checkpoints are read from a
local file because ``torch.load`` needs random access and the hash must cover the exact bytes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

_CHUNK = 1 << 20


class ChecksumMismatchError(ValueError):
    """The file's sha256 differs from the pinned value."""


def default_cache_dir() -> Path:
    """``$TESSERA_ASSETS_CACHE``, else ``$XDG_CACHE_HOME/tessera_assets/models`` (~/.cache)."""
    if env := os.environ.get("TESSERA_ASSETS_CACHE"):
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "tessera_assets" / "models"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def parse_hf_url(url: str) -> tuple[str, str, str | None]:
    """``hf://owner/repo[@rev]/path/in/repo`` -> (repo_id, filename, revision)."""
    rest = url[len("hf://") :]
    parts = rest.split("/", 2)
    if len(parts) < 3 or not all(parts):
        raise ValueError(f"expected hf://owner/repo/path/in/repo, got {url!r}")
    owner, repo, filename = parts
    revision = None
    if "@" in repo:
        repo, revision = repo.split("@", 1)
    return f"{owner}/{repo}", filename, revision


def _fetch_hf(url: str) -> Path:
    from huggingface_hub import hf_hub_download

    repo_id, filename, revision = parse_hf_url(url)
    return Path(hf_hub_download(repo_id=repo_id, filename=filename, revision=revision))


def _fetch_fsspec(url: str, cache_dir: Path) -> Path:
    import fsspec

    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    name = url.rstrip("/").rsplit("/", 1)[-1] or "checkpoint.pt"
    target = cache_dir / key / name
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out, fsspec.open(url, "rb") as src:
            shutil.copyfileobj(src, out, _CHUNK)
        os.replace(tmp, target)  # atomic: a crashed download never looks cached
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def resolve_source(source: str | os.PathLike, *, cache_dir: str | Path | None = None) -> Path:
    """Local path of the checkpoint named by ``source`` (downloading it if needed)."""
    text = os.fspath(source)
    if text.startswith("hf://"):
        return _fetch_hf(text)
    if text.startswith("file://"):
        text = text[len("file://") :]
    elif "://" in text:
        return _fetch_fsspec(text, Path(cache_dir) if cache_dir else default_cache_dir())
    path = Path(text).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return path


def verify_sha256(path: str | Path, expected: str | None) -> str:
    """Hash ``path``; raise :class:`ChecksumMismatchError` if ``expected`` is given and differs."""
    actual = sha256_file(path)
    if expected is not None and actual.lower() != expected.strip().lower():
        raise ChecksumMismatchError(
            f"sha256 of {path} is {actual}, expected {expected.strip().lower()}"
        )
    return actual
