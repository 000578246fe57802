"""A partition run's inference, as a separate process: attach to the shared service, embed
``--strips`` synthetic strips, print what happened as JSON. Used by test_service.py."""

from __future__ import annotations

import argparse
import json
import time

from tessera_assets.config import InferenceSettings
from tessera_assets.inference.service import InferenceService
from tessera_assets.inference.tasks import StripTask
from tessera_assets_tests.model.helpers import random_series


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--settings", required=True)
    ap.add_argument("--strips", type=int, default=6)
    ap.add_argument("--pixels", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    service = InferenceService(InferenceSettings.model_validate_json(args.settings)).connect()
    tasks = (StripTask(i, i, i + 1, random_series(args.pixels, seed=args.seed * 1000 + i))
             for i in range(args.strips))
    done = []
    for r in service.embed(tasks):
        done.append({"key": r.key, "worker": r.worker, "at": time.time(),
                     "finite": int((r.scales == r.scales).sum())})
    info = service.info
    service.detach()
    print(json.dumps({"results": done, "family": info.family if info else None}))


if __name__ == "__main__":
    main()
