"""Domain modules must never import dagster (DESIGN §2): only ``tessera_assets.defs`` may."""

from __future__ import annotations

import ast
from pathlib import Path

import tessera_assets

PACKAGE_ROOT = Path(tessera_assets.__file__).parent
DAGSTER_PREFIXES = ("dagster",)


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _domain_files() -> list[Path]:
    return [
        p
        for p in PACKAGE_ROOT.rglob("*.py")
        if "defs" not in p.relative_to(PACKAGE_ROOT).parts
    ]


def test_domain_code_never_imports_dagster() -> None:
    offenders = {
        p.relative_to(PACKAGE_ROOT).as_posix(): mod
        for p in _domain_files()
        for mod in _imported_modules(p)
        if mod.split(".")[0].startswith(DAGSTER_PREFIXES)
    }
    assert offenders == {}, f"domain modules import dagster: {offenders}"


def test_checker_detects_a_dagster_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom dagster import asset\nimport dagster_aws.s3\n")
    assert _imported_modules(bad) == ["os", "dagster", "dagster_aws.s3"]


def test_defs_package_is_where_dagster_lives() -> None:
    defs_files = list((PACKAGE_ROOT / "defs").rglob("*.py"))
    assert any(
        mod.startswith("dagster") for p in defs_files for mod in _imported_modules(p)
    )
