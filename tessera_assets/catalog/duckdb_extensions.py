"""DuckDB extensions without the internet: rustac's embedded DuckDB would fetch its
spatial/icu/parquet extensions on first use, so the copies shipped as PyPI packages
(``duckdb-extension-*``) are laid out as a local extension directory instead."""

from __future__ import annotations

import os
import platform
import shutil
from importlib import util as importlib_util
from pathlib import Path

from tessera_assets.catalog.base import CatalogError

DUCKDB_EXTENSIONS = ("spatial", "icu", "parquet")
EXTENSION_DIR_ENV = "TESSERA_DUCKDB_EXTENSION_DIR"


def _read_footer(path: Path) -> tuple[str, str] | None:
    """(DuckDB version, platform) from a ``.duckdb_extension`` file's metadata footer.

    The last 512 bytes hold 8 fields of 32 bytes (then the signature); field 5 is the DuckDB
    version the extension was built for and field 6 its platform, e.g. ``v1.5.5`` and
    ``linux_amd64``.
    """
    try:
        with path.open("rb") as f:
            f.seek(-512, os.SEEK_END)
            footer = f.read(256)
    except OSError:
        return None
    fields = [footer[i * 32 : (i + 1) * 32].rstrip(b"\0").decode("ascii", "replace") for i in range(8)]
    version, plat = fields[5], fields[6]
    if not version.startswith("v") or not plat:
        return None
    return version, plat


def _fallback_platform() -> str:
    system = {"Linux": "linux", "Darwin": "osx", "Windows": "windows"}.get(platform.system(), "linux")
    machine = platform.machine().lower()
    arch = "arm64" if machine in ("arm64", "aarch64") else "amd64"
    return f"{system}_{arch}"


def _packaged_extension(name: str) -> Path:
    """The ``.duckdb_extension`` file shipped by the ``duckdb-extension-<name>`` package."""
    spec = importlib_util.find_spec(f"duckdb_extension_{name}")
    if spec is None or not spec.submodule_search_locations:
        raise CatalogError(
            f"the duckdb-extension-{name} package is not installed; it provides DuckDB's {name} "
            f"extension offline (pip install duckdb-extension-{name}==<DuckDB version>)"
        )
    found = sorted(
        p
        for root in spec.submodule_search_locations
        for p in Path(root).rglob(f"{name}.duckdb_extension")
    )
    if not found:
        raise CatalogError(f"duckdb-extension-{name} is installed but holds no {name}.duckdb_extension")
    return found[-1]


def default_extension_cache() -> Path:
    """``$TESSERA_DUCKDB_EXTENSION_DIR``, else a folder in the user's cache."""
    if os.environ.get(EXTENSION_DIR_ENV):
        return Path(os.environ[EXTENSION_DIR_ENV])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "tessera_assets" / "duckdb-extensions"


def duckdb_extension_directory(cache_dir: Path | str | None = None) -> Path:
    """Lay out the packaged DuckDB extensions as ``<dir>/<version>/<platform>/<name>.duckdb_extension``.

    This is the layout DuckDB searches when given an ``extension_directory``. Version and
    platform come from each file's footer (falling back to the package's folder name and this
    machine), so a DuckDB upgrade gets a new folder instead of a stale file. Files are linked
    (copied where links are not possible); nothing is downloaded.
    """
    root = Path(cache_dir) if cache_dir is not None else default_extension_cache()
    for name in DUCKDB_EXTENSIONS:
        source = _packaged_extension(name)
        footer = _read_footer(source)
        version, plat = footer or (source.parent.name, _fallback_platform())
        target = root / version / plat / f"{name}.duckdb_extension"
        if target.exists() and target.stat().st_size == source.stat().st_size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            tmp.symlink_to(source.resolve())
        except OSError:
            shutil.copyfile(source, tmp)
        tmp.replace(target)  # atomic: concurrent processes never see a partial file
    return root
