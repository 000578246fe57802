"""``tessera-assets stac``: the STAC index of the embeddings (which tile-years are done for an
AOI and model; rebuild the index from the committed lineage records)."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("stac", help="STAC Items of the committed embeddings partitions")
    ssub = s.add_subparsers(dest="stac_cmd", required=True)
    done = ssub.add_parser("done", help="which tile-years are done for an AOI and model")
    done.add_argument(
        "--aoi", required=True, help="a registered AOI name, or a GeoJSON/WKT/'minx,miny,maxx,maxy'"
    )
    done.add_argument(
        "--model",
        default=None,
        help="model family (v2-nano), geoemb:model name or sha256 (default: any)",
    )
    done.add_argument("--years", default=None, help="e.g. 2019-2024 (default: the settings')")
    done.add_argument("--crs", default=None, help="CRS of a bbox/WKT (default EPSG:4326)")
    done.add_argument("--config", default=None, help="settings JSON (default: $TESSERA_CONFIG)")
    done.add_argument("--json", action="store_true", help="print done/missing as JSON")
    rb = ssub.add_parser("rebuild", help="make the index list exactly the committed partitions")
    rb.add_argument("--config", default=None, help="settings JSON (default: $TESSERA_CONFIG)")


def _aoi_geometry(settings, spec: str, crs: str | None):
    """A registered AOI's geometry, else the AOI ``spec`` itself (EPSG:4326)."""
    from tessera_assets.aoi import load_aoi
    from tessera_assets.ops.aoi_registry import _NAME, AoiRegistry

    registry = AoiRegistry(settings.root, settings.storage_options)
    if _NAME.match(spec) and registry.exists(spec):
        return registry.geometry(spec)
    return load_aoi(spec, crs)


def cmd_stac(args: argparse.Namespace) -> int:
    from tessera_assets.cli.common import console
    from tessera_assets.config import PipelineSettings
    from tessera_assets.products import stac_out

    settings = PipelineSettings.load(args.config)
    if args.stac_cmd == "rebuild":
        published, dropped = stac_out.rebuild_index(settings)
        console.print(
            f"STAC index: {published} committed partition(s) published, "
            f"{dropped} stale Item(s) dropped ({stac_out.stac_url(settings.root)})"
        )
        return 0
    from tessera_assets.aoi import tiles_for_aoi
    from tessera_assets.config import parse_years

    geom = _aoi_geometry(settings, args.aoi, args.crs)
    years = parse_years(args.years) if args.years else list(settings.years)
    done = stac_out.done_partitions(
        settings.root, geom, args.model, years=years, storage_options=settings.storage_options
    )
    expected = [(t.id, y) for t in tiles_for_aoi(geom, settings.tile_size) for y in years]
    missing = sorted(set(expected) - set(done))
    if args.json:
        print(
            json.dumps(
                {
                    "model": args.model,
                    "done": [list(p) for p in done],
                    "missing": [list(p) for p in missing],
                }
            )
        )
        return 0
    for tile_id, year in done:
        console.print(f"done     {tile_id} {year}")
    for tile_id, year in missing:
        console.print(f"missing  {tile_id} {year}")
    console.print(
        f"{len(done)} of {len(expected)} tile-years done"
        + (f" for model {args.model}" if args.model else "")
    )
    return 0
