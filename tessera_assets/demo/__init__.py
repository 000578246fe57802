"""Deterministic synthetic archive for the embedded demo (DESIGN §7).

Sentinel-2 L2A, Sentinel-1 RTC and Landsat C2 L2 COGs over a small farmland area, with STAC
items shaped like Earth Search's and Planetary Computer's, served as stac-geoparquet. All of it
is synthetic: nothing here is a real observation.
"""

from tessera_assets.demo.archive import (
    COLLECTIONS,
    DemoArchive,
    DemoArchiveError,
    generate_demo_archive,
)
from tessera_assets.demo.landcover import CLASSES, LandCover
from tessera_assets.demo.spec import DemoSpec

__all__ = [
    "CLASSES",
    "COLLECTIONS",
    "DemoArchive",
    "DemoArchiveError",
    "DemoSpec",
    "LandCover",
    "generate_demo_archive",
]
