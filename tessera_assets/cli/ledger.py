"""``tessera-assets ledger``: every partition's estimate beside what it measured (seconds,
bytes, cost), the error of the summed estimate, and ``--calibrate`` to put the measured rates
in place of ``planner.px_per_s`` for every later estimate (docs/operations.md)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from rich.table import Table

from tessera_assets.cli.common import console
from tessera_assets.config import PipelineSettings
from tessera_assets.ops import ledger


def _pct(error: float) -> str:
    return f"{error:+.0%}"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ledger", help="estimate vs actual of every partition (and calibrate)")
    p.add_argument("--asset", default="embeddings")
    p.add_argument("--json", action="store_true", help="print the entries and totals as JSON")
    p.add_argument("--calibrate", action="store_true",
                   help="store the measured rates; later estimates use them")


def cmd_ledger(args: argparse.Namespace) -> int:
    settings = PipelineSettings.load()
    entries = ledger.read_entries(settings.root, settings.storage_options, args.asset)
    totals = ledger.totals(entries)
    rates = ledger.calibration(entries)
    if args.json:
        console.print_json(json.dumps({"entries": [asdict(e) for e in entries],
                                       "totals": totals, "measured_px_per_s": rates}))
    else:
        table = Table("tile", "year", "device", "estimate s", "actual s", "error",
                      "estimate bytes", "actual bytes", "estimate $", "actual $",
                      title=f"Estimate ledger: {args.asset} ({len(entries)} partitions)",
                      title_justify="left")
        for e in entries:
            table.add_row(e.tile, str(e.year), e.device, f"{e.estimate_seconds:,.2f}",
                          f"{e.actual_seconds:,.2f}", _pct(e.seconds_error),
                          f"{e.estimate_bytes:,}", f"{e.actual_bytes:,}",
                          f"{e.estimate_usd:,.6f}", f"{e.actual_usd:,.6f}")
        if entries:
            table.add_row("[bold]total[/]", "", "", f"{totals['estimate_seconds']:,.2f}",
                          f"{totals['actual_seconds']:,.2f}", _pct(totals["seconds_error"]),
                          f"{totals['estimate_bytes']:,}", f"{totals['actual_bytes']:,}",
                          f"{totals['estimate_usd']:,.6f}", f"{totals['actual_usd']:,.6f}")
        console.print(table)
        for fam, by_device in rates.items():
            for device, rate in by_device.items():
                console.print(f"measured {fam} on {device}: {rate:,.1f} px/s "
                              f"(planner.px_per_s: {settings.planner.px_per_s.get(fam, {}).get(device, 'unset')})")
    if args.calibrate:
        if not rates:
            raise ValueError("the ledger has no measured partition to calibrate from")
        url = ledger.save_calibration(settings.root, rates, settings.storage_options)
        console.print(f"calibrated: later estimates use the measured rates ({url})")
    return 0
