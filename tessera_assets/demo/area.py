"""The embedded demo: where it is, which settings it runs with, and how it is prepared.

Two 1.6 km tiles of farmland in southern England (UTM 30N), one year. Small enough to run every
asset on a 2-core laptop in a few minutes, large enough to show crops, forest, water and towns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tessera_assets.config import CatalogSettings, InferenceSettings, PipelineSettings
from tessera_assets.grid import valid_coarse_resolutions

DEMO_EPSG = 32630
DEMO_TILE_SIZE = 160
DEMO_YEAR = 2024
DEMO_AOI_UTM = (636_900.0, 5_761_700.0, 639_900.0, 5_763_100.0)
"""Demo AOI in EPSG:32630: it resolves to tiles 32630_160_398_2273 and 32630_160_399_2273."""
DEMO_MARGIN_M = 640.0
DEMO_COARSE_RESOLUTION = 100.0
DEMO_MODEL_FAMILY = "v2-nano"
DEMO_MODEL_FILE = "demo-v2-nano.pt"
DEMO_RAY_CPUS = 2
"""Torch threads of the demo's one inference actor (`tessera-assets ray up` gives the local
cluster at least this many CPUs)."""


@dataclass(frozen=True)
class DemoPaths:
    home: Path

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def archive(self) -> Path:
        return self.data / "demo"

    @property
    def model(self) -> Path:
        return self.data / "models" / DEMO_MODEL_FILE

    @property
    def settings_file(self) -> Path:
        return self.home / "tessera.json"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"


def demo_bounds(tile_bounds: list[tuple[float, float, float, float]]) -> tuple[float, ...]:
    """Archive extent: the union of the demo tiles plus a margin, so every tile edge is inside
    real data and reprojection has neighbours to interpolate from."""
    west = min(b[0] for b in tile_bounds) - DEMO_MARGIN_M
    south = min(b[1] for b in tile_bounds) - DEMO_MARGIN_M
    east = max(b[2] for b in tile_bounds) + DEMO_MARGIN_M
    north = max(b[3] for b in tile_bounds) + DEMO_MARGIN_M
    return west, south, east, north


def demo_settings(paths: DemoPaths, *, tile_size: int = DEMO_TILE_SIZE,
                  year: int = DEMO_YEAR) -> PipelineSettings:
    """The demo's settings; another ``tile_size`` falls back to 160 m coarse pixels (valid for
    every tile size) when 100 m does not divide its tiles."""
    coarse = (DEMO_COARSE_RESOLUTION
              if DEMO_COARSE_RESOLUTION in valid_coarse_resolutions(tile_size) else 160.0)
    return PipelineSettings(
        root=str(paths.data),
        tile_size=tile_size,
        years=[year],
        coarse_resolution=coarse,
        catalog=CatalogSettings(kind="geoparquet", url=str(paths.archive / "catalog")),
        inference=InferenceSettings(model_source=str(paths.model), family=DEMO_MODEL_FAMILY,
                                    batch_size=512, strip_rows=32,
                                    cpus_per_worker=float(DEMO_RAY_CPUS)),
    )
