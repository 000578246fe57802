"""``tessera-assets serve``: the read API (FastAPI + uvicorn) over the configured stores."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("serve", help="read API: point/area queries, map tiles and a map page")
    s.add_argument("--config", default=None, help="settings JSON (default: $TESSERA_CONFIG)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from tessera_assets.api.app import create_app
    from tessera_assets.config import PipelineSettings

    uvicorn.run(create_app(PipelineSettings.load(args.config)), host=args.host, port=args.port)
    return 0
