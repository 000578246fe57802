"""Package layering (DESIGN §2): which parts of ``tessera_assets`` may import which.

Every ``.py`` file under ``tessera_assets/`` is parsed with :mod:`ast` (nothing is imported) and
every import it makes is collected — module-level, function-level (lazy), ``TYPE_CHECKING``-only,
relative (resolved against the file's package) and ``importlib.import_module("...")`` with a
literal name. Each file belongs to a *unit*: the first path part under ``tessera_assets/`` (a
subpackage such as ``store``), or, for a top-level module, the module itself (``grid``,
``config`` ...; ``tessera_assets`` for the package's own ``__init__``).

The rules:

- a unit imports only itself and the units :data:`ALLOWED` lists for it. The map is derived
  from :data:`LAYERS` (a unit may use any unit in a lower layer) and then narrowed where a
  package must stay more independent than its layer (:data:`NARROWED`);
- only :data:`DAGSTER_UNITS` (``defs``, ``cli``) import ``dagster`` or any ``dagster_*`` package;
- the imports between units form a DAG (no cycles, not even through lazy imports);
- every unit found on disk has a place in the map: a new package must be placed in a layer.

Files are discovered by globbing, so adding, splitting or renaming modules needs no change here.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import tessera_assets

PACKAGE = "tessera_assets"
PACKAGE_ROOT = Path(tessera_assets.__file__).parent
ROOT_UNIT = PACKAGE
"""The unit of ``tessera_assets/__init__.py`` itself (the version string, nothing else)."""

LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(layer)
    for layer in (
        {ROOT_UNIT, "grid", "retry"},  # leaf utilities: the tile lattice, retry policies
        {"aoi"},  # AOI parsing → one EPSG:4326 geometry → tiles
        {"store"},  # zone-wide Zarr stores, lineage records, object I/O
        {"sources"},  # bands, collection profiles, per-scene decisions, the scene manifest
        {"catalog"},  # presets, signing, STAC API / stac-geoparquet backends
        {"ingest"},  # COG reading, raw cubes, validity masks, harmonisation
        {"products"},  # product registry; cube, embeddings (TESSERA) and coarse layouts
        {"model"},  # TESSERA families, checkpoints, embed()
        {"config"},  # pipeline settings: composes each package's settings (pydantic-settings)
        {"inference"},  # pixel-series strips, the Ray inference service
        {"ops"},  # planner, AOI registry & requests, scene watch, provisional, previews
        {"demo"},  # the synthetic demo archive
        {"api"},  # the read API (FastAPI over the stores; no Dagster)
        {"defs"},  # the Dagster code location
        {"cli"},  # the terminal front end
    )
)
"""Bottom to top. A unit may import any unit of a strictly lower layer, unless narrowed."""

CORE = frozenset({ROOT_UNIT, "grid", "retry", "aoi"})

NARROWED: dict[str, frozenset[str]] = {
    ROOT_UNIT: frozenset(),
    "grid": frozenset(),
    "retry": frozenset(),
    # A generic zone-store library: no knowledge of sensors, catalogs, products or models.
    "store": CORE - {"aoi"},
    # The model is a self-contained port of the official TESSERA code: it knows nothing else.
    "model": frozenset(),
}
"""Units that may import less than their layer allows."""

DAGSTER_UNITS = frozenset({"defs", "cli"})
"""The only units that may import ``dagster`` / ``dagster_*`` (DESIGN §2: the domain never does)."""


def _derive_allowed(
    layers: Iterable[frozenset[str]], narrowed: Mapping[str, frozenset[str]]
) -> dict[str, frozenset[str]]:
    allowed: dict[str, frozenset[str]] = {}
    below: frozenset[str] = frozenset()
    for layer in layers:
        for unit in layer:
            allowed[unit] = narrowed.get(unit, below)
        below = below | layer
    return allowed


ALLOWED: dict[str, frozenset[str]] = _derive_allowed(LAYERS, NARROWED)
"""unit → the other units it may import (a unit may always import itself)."""


# ----------------------------------------------------------------------------------------------
# the checker (parametrised by root and package name so the self-tests can run it on tmp_path)
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Import:
    file: str
    """Path relative to the package root (posix)."""
    line: int
    module: str
    """Absolute dotted name imported (``tessera_assets.store.schema``, ``dagster``...)."""


def discover(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def unit_of_file(root: Path, path: Path, package: str) -> str:
    parts = path.relative_to(root).parts
    if len(parts) == 1:
        return package if parts[0] == "__init__.py" else parts[0].removesuffix(".py")
    return parts[0]


def _file_package(root: Path, path: Path, package: str) -> list[str]:
    """Dotted parts of the package a file's relative imports are resolved against."""
    return [package, *path.relative_to(root).parent.parts]


def imports_of(root: Path, path: Path, package: str) -> list[Import]:
    """Every import in the file, wherever it stands (module, function, TYPE_CHECKING block)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    rel = path.relative_to(root).as_posix()
    here = _file_package(root, path, package)
    out: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(Import(rel, node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level - 1 >= len(here):
                    raise ValueError(f"{rel}:{node.lineno}: relative import above {package}")
                base = ".".join(here[: len(here) - (node.level - 1)])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            # ``from pkg import grid`` / ``from . import x`` name submodules; ``from pkg.store
            # import x`` is in unit store whatever x is, so naming the base is enough there.
            if base == package or (node.level and not node.module):
                out.extend(Import(rel, node.lineno, f"{base}.{a.name}") for a in node.names)
            else:
                out.append(Import(rel, node.lineno, base))
        elif (
            isinstance(node, ast.Call)
            and _call_name(node.func) in {"import_module", "importlib.import_module"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not node.args[0].value.startswith(".")
        ):
            out.append(Import(rel, node.lineno, node.args[0].value))
    return out


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"{func.value.id}.{func.attr}"
    return ""


def unit_of_module(root: Path, module: str, package: str) -> str | None:
    """The unit an absolute module name belongs to; None when it is outside the package."""
    parts = module.split(".")
    if parts[0] != package:
        return None
    if len(parts) == 1:
        return package
    head = parts[1]
    if (root / head).is_dir() or (root / f"{head}.py").is_file():
        return head
    return package  # an attribute of the package's __init__ (e.g. __version__)


def is_dagster(module: str) -> bool:
    return module.split(".")[0].startswith("dagster")


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    where: Import

    def __str__(self) -> str:
        return f"{self.where.file}:{self.where.line} imports {self.where.module} ({self.src} → {self.dst})"


def collect(root: Path, package: str) -> tuple[list[Edge], list[tuple[str, Import]], set[str]]:
    """(edges between different units, (unit, dagster import) pairs, units found on disk)."""
    edges: list[Edge] = []
    dagster: list[tuple[str, Import]] = []
    units: set[str] = set()
    for path in discover(root):
        src = unit_of_file(root, path, package)
        units.add(src)
        for imp in imports_of(root, path, package):
            if is_dagster(imp.module):
                dagster.append((src, imp))
            dst = unit_of_module(root, imp.module, package)
            if dst is not None and dst != src:
                edges.append(Edge(src, dst, imp))
    return edges, dagster, units


def violations(edges: Iterable[Edge], allowed: Mapping[str, frozenset[str]]) -> list[str]:
    return sorted(str(e) for e in edges if e.src in allowed and e.dst not in allowed[e.src])


def dagster_violations(
    dagster: Iterable[tuple[str, Import]], permitted: frozenset[str]
) -> list[str]:
    return sorted(
        f"{imp.file}:{imp.line} imports {imp.module} (unit {unit})"
        for unit, imp in dagster
        if unit not in permitted
    )


def cycles(edges: Iterable[Edge]) -> list[list[str]]:
    """Strongly connected components with more than one unit (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.src, set()).add(e.dst)
        graph.setdefault(e.dst, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def explain_cycle(component: list[str], edges: Iterable[Edge]) -> list[str]:
    members = set(component)
    return sorted(str(e) for e in edges if e.src in members and e.dst in members)


# ----------------------------------------------------------------------------------------------
# the rules, on the real package
# ----------------------------------------------------------------------------------------------
@functools.cache
def _package_imports() -> tuple[list[Edge], list[tuple[str, Import]], set[str]]:
    return collect(PACKAGE_ROOT, PACKAGE)


def test_every_unit_has_a_place_in_the_layers() -> None:
    _, _, units = _package_imports()
    unplaced = sorted(units - set(ALLOWED))
    assert unplaced == [], (
        f"units not in LAYERS of test_layering.py (and DESIGN §2): {unplaced}; place each in "
        "a layer (and narrow it if it must stay more independent)"
    )


def test_domain_code_never_imports_dagster() -> None:
    _, dagster, _ = _package_imports()
    bad = dagster_violations(dagster, DAGSTER_UNITS)
    assert bad == [], "domain modules import dagster:\n  " + "\n  ".join(bad)


def test_units_import_only_what_the_layers_allow() -> None:
    edges, _, _ = _package_imports()
    bad = violations(edges, ALLOWED)
    assert bad == [], "imports against the layering (DESIGN §2):\n  " + "\n  ".join(bad)


def test_units_form_no_import_cycle() -> None:
    edges, _, _ = _package_imports()
    found = cycles(edges)
    detail = [f"{' ↔ '.join(c)}:\n    " + "\n    ".join(explain_cycle(c, edges)) for c in found]
    assert found == [], "import cycles between units:\n  " + "\n  ".join(detail)


def test_defs_package_is_where_dagster_lives() -> None:
    _, dagster, _ = _package_imports()
    assert any(unit == "defs" for unit, _ in dagster)


def test_the_allowed_map_is_acyclic_and_respects_the_named_rules() -> None:
    """The map itself encodes DESIGN §2 (guards against a careless edit of LAYERS)."""
    domain = set(ALLOWED) - DAGSTER_UNITS
    assert all("defs" not in ALLOWED[u] and "cli" not in ALLOWED[u] for u in domain)
    assert "cli" not in ALLOWED["defs"]
    assert ALLOWED["model"] == frozenset()
    assert ALLOWED["store"] <= CORE
    # every allowed dependency points strictly down, so the rules cannot form a cycle
    level = {u: i for i, layer in enumerate(LAYERS) for u in layer}
    assert all(level[d] < level[u] for u, deps in ALLOWED.items() for d in deps)
    assert sum(len(layer) for layer in LAYERS) == len(level)  # no unit in two layers


# ----------------------------------------------------------------------------------------------
# self-tests on a synthetic package
# ----------------------------------------------------------------------------------------------
def _write(root: Path, files: Mapping[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


SYNTHETIC_ALLOWED = _derive_allowed(
    (frozenset({"pkg", "grid"}), frozenset({"store"}), frozenset({"sources"}), frozenset({"defs"})),
    {"store": frozenset({"grid"})},
)


def test_checker_resolves_every_kind_of_import(tmp_path: Path) -> None:
    root = _write(
        tmp_path / "pkg",
        {
            "__init__.py": "",
            "grid.py": "",
            "store/__init__.py": "",
            "store/zone.py": (
                "from __future__ import annotations\n"
                "from typing import TYPE_CHECKING\n"
                "import os\n"
                "from .. import grid\n"  # relative → pkg.grid
                "from . import lineage\n"  # relative, same unit
                "from ..sources.manifest import Manifest\n"  # relative into another package
                "if TYPE_CHECKING:\n"
                "    from pkg.defs import x\n"
                "def lazy():\n"
                "    import pkg.sources.profiles as p\n"
                "    import importlib\n"
                "    importlib.import_module('dagster_aws.s3')\n"
                "    from pkg import __version__\n"
            ),
            "sources/__init__.py": "",
            "sources/manifest.py": "from dagster import asset\n",
        },
    )
    got = {(i.line, i.module) for i in imports_of(root, root / "store/zone.py", "pkg")}
    assert got == {
        (1, "__future__"),
        (2, "typing"),
        (3, "os"),
        (4, "pkg.grid"),
        (5, "pkg.store.lineage"),
        (6, "pkg.sources.manifest"),
        (8, "pkg.defs"),
        (10, "pkg.sources.profiles"),
        (11, "importlib"),
        (12, "dagster_aws.s3"),
        (13, "pkg.__version__"),
    }
    assert [
        unit_of_module(root, m, "pkg")
        for m in ("pkg.grid", "pkg.store.lineage", "pkg.__version__", "pkg", "os")
    ] == ["grid", "store", "pkg", "pkg", None]
    assert unit_of_file(root, root / "__init__.py", "pkg") == "pkg"
    assert unit_of_file(root, root / "grid.py", "pkg") == "grid"
    assert unit_of_file(root, root / "store" / "zone.py", "pkg") == "store"


def test_checker_detects_violations(tmp_path: Path) -> None:
    root = _write(
        tmp_path / "pkg",
        {
            "__init__.py": "",
            "grid.py": "",
            "store/__init__.py": "",
            "store/zone.py": "from pkg import grid\n\ndef f():\n    from ..sources import b\n",
            "sources/__init__.py": "",
            "sources/b.py": "import pkg.store.zone\nimport dagster\n",
            "defs/__init__.py": "import dagster\nfrom pkg.sources import b\n",
        },
    )
    edges, dagster, units = collect(root, "pkg")
    assert units == {"pkg", "grid", "store", "sources", "defs"}
    assert violations(edges, SYNTHETIC_ALLOWED) == [
        "store/zone.py:4 imports pkg.sources (store → sources)"
    ]
    assert dagster_violations(dagster, frozenset({"defs"})) == [
        "sources/b.py:2 imports dagster (unit sources)"
    ]


def test_checker_detects_a_cycle(tmp_path: Path) -> None:
    root = _write(
        tmp_path / "pkg",
        {
            "__init__.py": "",
            "store/__init__.py": "",
            "store/a.py": "def lazy():\n    from pkg.sources import b\n",
            "sources/__init__.py": "",
            "sources/b.py": "from ..defs import c\n",
            "defs/__init__.py": "",
            "defs/c.py": "from pkg.store.a import lazy\n",
            "grid.py": "import pkg.defs.c\n",  # grid → defs, but grid is not on the cycle
        },
    )
    edges, _, _ = collect(root, "pkg")
    found = cycles(edges)
    assert found == [["defs", "sources", "store"]]
    assert explain_cycle(found[0], edges) == [
        "defs/c.py:1 imports pkg.store.a (defs → store)",
        "sources/b.py:1 imports pkg.defs (sources → defs)",
        "store/a.py:2 imports pkg.sources (store → sources)",
    ]


def test_checker_finds_no_cycle_in_a_layered_package(tmp_path: Path) -> None:
    root = _write(
        tmp_path / "pkg",
        {
            "__init__.py": "",
            "grid.py": "",
            "store/__init__.py": "from pkg import grid\n",
            "sources/__init__.py": "from pkg.store import x\nfrom pkg import grid\n",
            "defs/__init__.py": "from pkg.sources import y\nfrom pkg import __version__\n",
        },
    )
    edges, _, _ = collect(root, "pkg")
    assert cycles(edges) == []
    assert violations(edges, SYNTHETIC_ALLOWED) == []
