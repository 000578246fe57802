"""Read one of our embeddings stores with geotessera 0.11's public reader and dump the answers.

Run with an interpreter that has geotessera 0.11 (Python ≥ 3.12), not the project venv:

    $GEOTESSERA_PYTHON tessera_assets_tests/geotessera_reader.py STORE REQUEST.json OUT.npz

REQUEST.json: {"year": 2024, "points": [[lon, lat], ...], "bbox": [w, s, e, n], "zone": 30}.
OUT.npz holds what geotessera returned (probe/sample_at/sample_points vectors and statuses,
the read_region mosaic with its transform and CRS, store metadata as JSON); the calling test
compares it with the values it wrote. This script asserts nothing itself.
"""

from __future__ import annotations

import json
import sys

import geotessera
import numpy as np
from geotessera.store import GeoTesseraZarr


def main(store: str, request_path: str, out_path: str) -> None:
    with open(request_path) as f:
        req = json.load(f)
    year, points = int(req["year"]), [tuple(p) for p in req["points"]]
    gt = GeoTesseraZarr(store)
    n = gt.n_bands

    probe_vecs = np.full((len(points), n), np.nan, np.float32)
    statuses = []
    for i, (lon, lat) in enumerate(points):
        vec, status = gt.probe(lon, lat, year)
        statuses.append(status)
        if vec is not None:
            probe_vecs[i] = vec
    sample_at = np.stack([gt.sample_at(lon, lat, year) for lon, lat in points])
    sample_points = gt.sample_points(points, year)
    mosaic, transform, crs = gt.read_region(tuple(req["bbox"]), year)
    acc = gt.open_zone(zone=int(req["zone"])).tessera

    meta = {
        "geotessera_version": geotessera.__version__,
        "years": gt.years,
        "model_version": gt.model_version,
        "build_version": gt.build_version,
        "n_bands": n,
        "depths": {str(k): v for k, v in gt.depths.items()},
        "statuses": statuses,
        "region_crs": str(crs),
        "zone_crs": acc.crs,
        "zone_pixel_size": acc.pixel_size,
        "zone_years": acc.years,
    }
    np.savez(
        out_path,
        probe=probe_vecs,
        sample_at=sample_at,
        sample_points=sample_points,
        mosaic=mosaic,
        transform=np.array(tuple(transform)[:6], dtype=np.float64),
        meta=np.array(json.dumps(meta)),
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
