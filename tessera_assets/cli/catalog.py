"""``tessera-assets catalog export``: a catalog search (an AOI and years, each sensor from its
own catalog) written as a stac-geoparquet folder that the geoparquet backend reads offline."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("catalog", help="scene catalogs: export a search to stac-geoparquet")
    csub = c.add_subparsers(dest="catalog_cmd", required=True)
    ex = csub.add_parser("export", help="write the items over an AOI and years as stac-geoparquet")
    ex.add_argument(
        "--aoi", required=True, help="a registered AOI name, or a GeoJSON/WKT/'minx,miny,maxx,maxy'"
    )
    ex.add_argument("--years", default=None, help="e.g. 2019-2024 (default: the settings')")
    ex.add_argument("--out", required=True, help="folder to write {collection}.parquet into")
    ex.add_argument("--sensors", default=None, help="e.g. s2,s1 (default: every configured one)")
    ex.add_argument("--preset", default=None, help="catalog preset or recipe (default: settings')")
    ex.add_argument("--crs", default=None, help="CRS of a bbox/WKT (default EPSG:4326)")
    ex.add_argument("--config", default=None, help="settings JSON (default: $TESSERA_CONFIG)")


def cmd_catalog(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from tessera_assets.catalog.export import export_search
    from tessera_assets.catalog.settings import CatalogSettings
    from tessera_assets.cli.common import console
    from tessera_assets.cli.stac import _aoi_geometry
    from tessera_assets.config import PipelineSettings, parse_years

    settings = PipelineSettings.load(args.config)
    catalog = settings.catalog
    if args.preset:
        catalog = CatalogSettings.model_validate({**_explicit(catalog), "preset": args.preset})
    geom = _aoi_geometry(settings, args.aoi, args.crs)
    years = parse_years(args.years) if args.years else list(settings.years)
    sensors = [s.strip() for s in args.sensors.split(",")] if args.sensors else None
    result = export_search(catalog, geom.bounds, years, args.out, sensors=sensors)
    for coll, n in result.counts.items():
        where = escape(str(result.files.get(coll, "no file: nothing found")))
        console.print(f"{escape(coll)}: {n} item(s) from {escape(result.sources[coll])} -> {where}")
    console.print(f"stac-geoparquet folder: {escape(str(result.folder))}")
    return 0


HOW = (
    "on_unreadable",
    "search_timeout_s",
    "search_retries",
    "requests_per_second",
    "read_retries",
    "read_retry_delay_s",
    "read_timeout_s",
    "day_retries",
    "check_assets",
    "max_s2_cloud_cover",
)
"""Settings that say how to search and read, kept when ``--preset`` names other catalogs."""


def _explicit(catalog) -> dict:
    """The settings' search and read options, so that another preset supplies the catalogs."""
    return catalog.model_dump(include=set(HOW))
