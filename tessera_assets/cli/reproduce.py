"""``tessera-assets reproduce TILE YEAR``: re-run a committed embeddings partition from its
recorded manifest, model and configuration into a scratch root, and say whether the result is
bit-identical or where it first differs (:mod:`tessera_assets.ops.reproduce`)."""

from __future__ import annotations

import argparse
import json
import tempfile


def add_parser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("reproduce", help="re-run a committed partition as recorded and compare")
    r.add_argument("tile", help="tile id, e.g. 32630_2048_31_177")
    r.add_argument("year", type=int)
    r.add_argument(
        "--config",
        default=None,
        help="the settings the partition was built with (default: $TESSERA_CONFIG)",
    )
    r.add_argument(
        "--scratch",
        default=None,
        help="root for the re-run (default: a temporary folder, removed after)",
    )
    r.add_argument("--json", action="store_true", help="print the report as JSON")


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Exit status 0 when bit-identical, 1 when the re-run differs."""
    from tessera_assets.cli.common import console
    from tessera_assets.config import PipelineSettings
    from tessera_assets.grid import Tile
    from tessera_assets.ops.reproduce import reproduce

    settings = PipelineSettings.load(args.config)
    tile = Tile.parse(args.tile)
    with tempfile.TemporaryDirectory(prefix="tessera-reproduce-") as tmp:
        report = reproduce(settings, tile, args.year, args.scratch or tmp)
    if args.json:
        d = report.difference
        print(
            json.dumps(
                {
                    "tile": report.tile,
                    "year": report.year,
                    "identical": report.identical,
                    "compared": report.compared,
                    "not_compared": report.not_compared,
                    "difference": None
                    if d is None
                    else {
                        "product": d.product,
                        "variable": d.variable,
                        "index": list(d.index),
                        "live": d.live,
                        "reproduced": d.reproduced,
                        "count": d.count,
                    },
                },
                default=str,
            )
        )
    else:
        console.print(report.summary())
        if report.not_compared:
            console.print(f"not committed in the live root: {', '.join(report.not_compared)}")
    return 0 if report.identical else 1
