"""``tessera-assets status``: how far each AOI's tile-years have got, from the Dagster instance.

The instance is the source of truth (DESIGN §4: a partition counts as written only when Dagster
recorded its materialisation), so this reads partition statuses — materialised, failed, in
progress — per asset. Provisional embeddings (year not complete yet) are flagged from their
latest materialisation's metadata. The stores' commit and intent records are overlaid (one
listing per store): a region whose write started and never committed — killed, or failed while
swapping shards in — shows as *uncommitted* whatever the instance says; it must be re-run
(:func:`store_states`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field

from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, MultiPartitionsDefinition
from rich.console import Console, Group
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table

from tessera_assets.cli.common import console, dagster_instance
from tessera_assets.config import PipelineSettings
from tessera_assets.defs.partitions import partition_key, tile_year_partitions
from tessera_assets.grid import Tile
from tessera_assets.ops.aoi_registry import AoiRecord, AoiRegistry
from tessera_assets.products.registry import MANIFEST, PRODUCTS, open_store

ASSET_ORDER = (MANIFEST, *PRODUCTS)
"""Every asset, in graph order."""
SHORT = {"scene_manifest": "manifest", "s2_cube": "s2", "s1_cube": "s1",
         "landsat_cube": "ls", "s2_masked": "s2m", "s1_calibrated": "s1c",
         "landsat_masked": "lsm", "embeddings": "emb", "embeddings_coarse": "coarse"}
DONE, FAILED, RUNNING, MISSING = "done", "failed", "running", "missing"
UNCOMMITTED = "uncommitted"
"""A write started and left no commit record (killed, or died while swapping shards in): the
region is not readable until a re-run commits it."""
COMMITTED, INTERRUPTED = "committed", "interrupted"


@dataclass
class PartitionRow:
    tile: str
    year: int
    states: dict[str, str]
    provisional: bool = False
    skipped: int = 0
    """Scenes skipped as unreadable in the partition's cubes (lineage records)."""

    @property
    def complete(self) -> bool:
        return all(v == DONE for v in self.states.values())

    @property
    def failed(self) -> bool:
        return any(v in (FAILED, UNCOMMITTED) for v in self.states.values())


@dataclass
class AoiStatus:
    name: str
    rows: list[PartitionRow] = field(default_factory=list)

    def done(self, asset: str) -> int:
        return sum(r.states.get(asset) == DONE for r in self.rows)

    @property
    def complete(self) -> int:
        return sum(r.complete for r in self.rows)


def _states(instance: DagsterInstance, asset: str, keys: Sequence[str],
            partitions_def: MultiPartitionsDefinition | None) -> dict[str, str]:
    """Per partition key: done / failed / running / missing."""
    key = AssetKey(asset)
    statuses = None
    if partitions_def is not None:
        try:
            statuses = instance.get_status_by_partition(key, list(keys), partitions_def)
        except Exception:  # status cache unavailable (e.g. partitions changed): fall back
            statuses = None
    if statuses is None:
        done = instance.get_materialized_partitions(key)
        return {k: DONE if k in done else MISSING for k in keys}
    names = {"MATERIALIZED": DONE, "FAILED": FAILED, "IN_PROGRESS": RUNNING}
    return {k: names.get(getattr(v, "value", str(v)), MISSING) if v else MISSING
            for k, v in statuses.items()}


def _provisional(instance: DagsterInstance, keys: Sequence[str]) -> set[str]:
    """Partitions whose latest embeddings materialisation says ``provisional: True``."""
    if not keys:
        return set()
    out: set[str] = set()
    latest: dict[str, int] = {}
    result = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("embeddings"), asset_partitions=list(keys)),
        limit=max(100, 4 * len(keys)))
    for record in result.records:
        mat = record.asset_materialization
        if mat is None or mat.partition is None:
            continue
        if record.storage_id < latest.get(mat.partition, -1):
            continue
        latest[mat.partition] = record.storage_id
        flag = mat.metadata.get("provisional")
        if getattr(flag, "value", flag) is True:
            out.add(mat.partition)
        else:
            out.discard(mat.partition)
    return out


def store_states(settings: PipelineSettings, products: Sequence[str] = PRODUCTS
                 ) -> dict[str, dict[tuple[str, int], str]]:
    """Per zone-store product, (tile id, year) → ``committed`` or ``interrupted`` (a write
    started and never committed); absent pairs have neither record."""
    out: dict[str, dict[tuple[str, int], str]] = {}
    for product in products:
        store = open_store(product, settings)
        states = dict.fromkeys(store.list_partitions(in_progress=True), INTERRUPTED)
        states.update(dict.fromkeys(store.list_partitions(), COMMITTED))
        out[product] = states
    return out


def _overlay(state: str, stored: str | None) -> str:
    """The instance's state, unless the store shows a write that started and never committed
    (while no run is in progress): then the region is uncommitted, whatever the instance says."""
    if stored == INTERRUPTED and state != RUNNING:
        return UNCOMMITTED
    return state


def skipped_scenes(settings: PipelineSettings, pairs: Sequence[tuple[str, int]]
                   ) -> dict[tuple[str, int], int]:
    """Per (tile id, year): scenes the cubes skipped as unreadable (``on_unreadable='skip'``),
    from their lineage records, so a skip never hides behind a ✓ (issue 10.5)."""
    out: dict[tuple[str, int], int] = {}
    for product in ("s2_cube", "s1_cube", "landsat_cube"):
        store = open_store(product, settings)
        for tile, year in pairs:
            record = store.read_lineage(Tile.parse(tile), year)
            n = len((record.model_extra or {}).get("skipped_scenes") or []) if record else 0
            if n:
                out[(tile, year)] = out.get((tile, year), 0) + n
    return out


def collect_status(instance: DagsterInstance, records: Sequence[AoiRecord],
                   partitions_def: MultiPartitionsDefinition | None = None,
                   settings: PipelineSettings | None = None) -> list[AoiStatus]:
    """Status of every tile-year of ``records`` (AOIs), read from ``instance``; with
    ``settings``, overlaid with the stores' commit records."""
    keys = sorted({str(partition_key(t, y)) for r in records for t in r.tiles for y in r.years})
    states = {a: _states(instance, a, keys, partitions_def) for a in ASSET_ORDER}
    if settings is not None:
        stored = store_states(settings)
        for r in records:
            for t in r.tiles:
                for y in r.years:
                    key = str(partition_key(t, y))
                    for a, by_pair in stored.items():
                        states[a][key] = _overlay(states[a][key], by_pair.get((str(t), int(y))))
    provisional = _provisional(instance, keys)
    pairs = [(str(t), int(y)) for r in records for t in r.tiles for y in r.years]
    skipped = skipped_scenes(settings, pairs) if settings is not None else {}
    out = []
    for r in records:
        rows = []
        for t in r.tiles:
            for y in r.years:
                key = str(partition_key(t, y))
                rows.append(PartitionRow(t, y, {a: states[a][key] for a in ASSET_ORDER},
                                         key in provisional, skipped.get((str(t), int(y)), 0)))
        out.append(AoiStatus(r.name, rows))
    return out


_MARK = {DONE: "[green]✓[/]", FAILED: "[red]✗[/]", RUNNING: "[yellow]…[/]", MISSING: "[dim]·[/]",
         UNCOMMITTED: "[red]![/]"}


def render_status(statuses: Sequence[AoiStatus], console: Console, *,
                  max_rows: int = 50) -> None:
    """A summary per AOI (progress bar per asset) and, up to ``max_rows``, a row per
    tile-year with a mark per asset."""
    for st in statuses:
        total = len(st.rows)
        summary = Table(title=f"AOI {st.name}: {st.complete}/{total} tile-years complete",
                        title_justify="left", show_edge=False)
        summary.add_column("asset")
        summary.add_column("progress", width=32)
        summary.add_column("done", justify="right")
        summary.add_column("failed", justify="right")
        for asset in ASSET_ORDER:
            done = st.done(asset)
            failed = sum(r.states[asset] in (FAILED, UNCOMMITTED) for r in st.rows)
            summary.add_row(asset, ProgressBar(total=max(total, 1), completed=done, width=30),
                            f"{done}/{total}", str(failed) if failed else "")
        parts: list = [summary]
        if st.rows and len(st.rows) <= max_rows:
            detail = Table(show_edge=False)
            detail.add_column("tile", no_wrap=True)
            detail.add_column("year", no_wrap=True)
            for asset in ASSET_ORDER:
                detail.add_column(SHORT[asset], justify="center")
            detail.add_column("note")
            for r in st.rows:
                note = "provisional" if r.provisional else ""
                if UNCOMMITTED in r.states.values():
                    note = "uncommitted (write interrupted): re-run"
                if r.skipped:
                    note = f"{note}; {r.skipped} scene(s) skipped".lstrip("; ")
                detail.add_row(r.tile, str(r.year), *[_MARK[r.states[a]] for a in ASSET_ORDER],
                               note)
            parts.append(detail)
        elif st.rows:
            incomplete = [r for r in st.rows if not r.complete]
            parts.append(f"{len(st.rows)} tile-years ({len(incomplete)} incomplete, "
                         f"{sum(r.failed for r in st.rows)} with failures): --all lists them")
        n_skip = sum(r.skipped > 0 for r in st.rows)
        if n_skip:
            parts.append(f"[yellow]{n_skip} tile-year(s) with skipped scenes[/] (unreadable; "
                         "see the cubes' coverage checks)")
        n_prov = sum(r.provisional for r in st.rows)
        if n_prov:
            parts.append(f"[yellow]{n_prov} tile-year(s) provisional[/] (year not complete yet)")
        console.print(Group(*parts))
        console.print()


def cmd_status(args: argparse.Namespace) -> int:
    settings = PipelineSettings.load()
    registry = AoiRegistry(settings.root, settings.storage_options)
    records = [registry.get(args.aoi)] if args.aoi else registry.list()
    if not records:
        console.print("no AOIs registered (tessera-assets aoi add ...)")
        return 0
    instance = dagster_instance()
    from tessera_assets.cli.run_health import reap_dead_runs

    for dead in reap_dead_runs(instance):  # before the states: its partitions show as failed
        console.print(f"[red]killed:[/] {escape(dead.line())}", soft_wrap=True)
    statuses = collect_status(instance, records, tile_year_partitions(settings.years),
                              settings)
    render_status(statuses, console, max_rows=10**9 if args.all else 50)
    return 0
