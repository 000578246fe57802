"""``tessera-assets``: the terminal front end (demo, AOIs, planning, materialisation, status).

It drives the same Dagster definitions and instance that ``dagster dev`` shows, so every run
started here appears in the UI with its logs and metadata.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

COMMANDS = {
    "demo": "tessera_assets.cli.demo:cmd_demo",
    "aoi": "tessera_assets.cli.aoi:cmd_aoi",
    "plan": "tessera_assets.cli.plan:cmd_plan",
    "status": "tessera_assets.cli.status:cmd_status",
    "materialize": "tessera_assets.cli.materialize:cmd_materialize",
    "ray": "tessera_assets.cli.ray_cluster:cmd_ray",
    "ledger": "tessera_assets.cli.ledger:cmd_ledger",
    "serve": "tessera_assets.cli.serve:cmd_serve",
    "stac": "tessera_assets.cli.stac:cmd_stac",
    "reproduce": "tessera_assets.cli.reproduce:cmd_reproduce",
    "catalog": "tessera_assets.cli.catalog:cmd_catalog",
}
"""Each command's module is imported only when it runs: parsing (and ``--help``) never
imports Dagster or builds the asset graph."""


class _Parser(argparse.ArgumentParser):
    """Takes ``-1.2,51.9,-1.0,52.0`` (a western bbox) as a value, not as an unknown option."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\d+(\.\d*)?([,\s]+-?\d+(\.\d*)?)*$")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tessera-assets", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="generate the demo archive and materialise every asset")
    d.add_argument("--home", default=".demo", help="folder for data, settings and DAGSTER_HOME")
    d.add_argument("--tile-size", type=int, default=160)

    a = sub.add_parser("aoi", help="register areas of interest (adds tile partitions)")
    asub = a.add_subparsers(dest="aoi_cmd", required=True)
    add = asub.add_parser("add")
    add.add_argument("spec", help="GeoJSON file/string, WKT or 'minx,miny,maxx,maxy'")
    add.add_argument("--years", required=True, help="e.g. 2019-2024 or 2021,2023")
    add.add_argument("--name", default=None,
                     help="default: the GeoJSON's properties.name, the file name, or aoi-<hash>")
    add.add_argument("--crs", default=None, help="CRS of a bbox/WKT (default EPSG:4326)")
    asub.add_parser("list")
    rm = asub.add_parser("remove", help="forget an AOI (its data is kept unless --delete-data)")
    rm.add_argument("name")
    rm.add_argument("--delete-data", action="store_true",
                    help="also drop tile partitions and delete regions no other AOI uses")
    asub.add_parser("requests", help="process the AOI request folder once (as the sensor does)")

    pl = sub.add_parser("plan", help="tiles, scenes, bytes, hours and cost before a backfill")
    pl.add_argument("aoi", help="a registered AOI name, or a GeoJSON/WKT/bbox to plan")
    pl.add_argument("--years", default=None, help="e.g. 2019-2024 (default: the AOI's years)")
    pl.add_argument("--crs", default=None, help="CRS of a bbox/WKT (default EPSG:4326)")
    pl.add_argument("--per-tile", action="store_true", help="also list every tile-year")
    pl.add_argument("--json", action="store_true", help="print the totals as JSON")

    st = sub.add_parser("status", help="progress per tile-year, from the Dagster instance")
    st.add_argument("aoi", nargs="?", default=None)
    st.add_argument("--all", action="store_true", help="list every tile-year of large AOIs")

    m = sub.add_parser("materialize", help="run every asset for an AOI or one tile-year "
                                           "(refused above planner.budget_usd)")
    m.add_argument("--aoi")
    m.add_argument("--tile")
    m.add_argument("--year")
    from tessera_assets.cli.ray_cluster import add_parser

    add_parser(sub)
    from tessera_assets.cli.ledger import add_parser as add_ledger_parser

    add_ledger_parser(sub)
    from tessera_assets.cli.serve import add_parser as add_serve_parser
    add_serve_parser(sub)
    from tessera_assets.cli.stac import add_parser as add_stac_parser
    add_stac_parser(sub)
    from tessera_assets.cli.reproduce import add_parser as add_reproduce_parser
    add_reproduce_parser(sub)
    from tessera_assets.cli.catalog import add_parser as add_catalog_parser
    add_catalog_parser(sub)
    return p


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    """Option strings, in every subcommand, that take no value (``--delete-data``)."""
    found = set()
    for action in parser._actions:
        if action.option_strings and action.nargs == 0:
            found.update(action.option_strings)
        for sub in (getattr(action, "choices", None) or {}).values():
            if isinstance(sub, argparse.ArgumentParser):
                found |= _flags(sub)
    return found


def options_before_separator(argv: list[str], flags: set[str]) -> list[str]:
    """``aoi add -- -1.2,51.9,-1.0,52.0 --years 2024``: options written after ``--`` (which
    protects a western bbox from being read as an option) are moved in front of it, so
    ``--`` only marks the bbox as a value. Numbers never start with ``--``."""
    if "--" not in argv:
        return argv
    cut = argv.index("--")
    head, tail, rest = argv[:cut], argv[cut + 1:], []
    i = 0
    while i < len(tail):
        token = tail[i]
        if token.startswith("--") and len(token) > 2:
            takes_value = "=" not in token and token not in flags and i + 1 < len(tail)
            head += tail[i:i + 2] if takes_value else [token]
            i += 2 if takes_value else 1
        else:
            rest.append(token)
            i += 1
    return [*head, "--", *rest]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(options_before_separator(argv, _flags(parser)))
    from tessera_assets.cli.common import print_error

    try:
        module, func = COMMANDS[args.cmd].split(":")
        command = getattr(importlib.import_module(module), func)
    except ValueError as exc:  # e.g. settings read while a command's module is imported
        print_error(exc)
        return 2
    from tessera_assets.aoi import AoiError
    from tessera_assets.catalog.base import CatalogError
    from tessera_assets.ops.partition_lease import PartitionBusyError
    from tessera_assets.ops.planner import PlannerError

    try:
        return command(args)
    except (AoiError, KeyError, FileNotFoundError, ValueError, PlannerError,
            CatalogError, PartitionBusyError) as exc:
        print_error(exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
