"""The pipeline's sensors and bands, and the fixed facts of their products (DESIGN §1).

Band orders here are the ones the TESSERA families were trained on; every catalog's asset keys
are mapped onto them by :mod:`tessera_assets.sources.profiles`. The constants are defined
once, here, so that the profiles, the per-scene decisions and the validity masks agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

Sensor = Literal["s2", "s1", "landsat"]
SENSORS: tuple[Sensor, ...] = ("s2", "s1", "landsat")

S2_BANDS: tuple[str, ...] = ("B04", "B02", "B03", "B08", "B8A", "B05", "B06", "B07", "B11", "B12")
"""Sentinel-2 band order of every TESSERA family (not wavelength order)."""
S2_COMMON_NAMES = {
    "B04": "red", "B02": "blue", "B03": "green", "B08": "nir", "B8A": "nir08",
    "B05": "rededge1", "B06": "rededge2", "B07": "rededge3", "B11": "swir16", "B12": "swir22",
}
S2_NATIVE_RESOLUTION = {b: 10 if b in ("B02", "B03", "B04", "B08") else 20 for b in S2_BANDS}
S1_POLARISATIONS: tuple[str, ...] = ("vv", "vh")
S1_ORBITS: tuple[str, ...] = ("ascending", "descending")
LANDSAT_BANDS: tuple[str, ...] = ("coastal", "blue", "green", "red", "nir08", "swir16", "swir22")

BOA_OFFSET = 1000
"""DN offset added by the Sentinel-2 processing baseline 04.00 (from 2022-01-25)."""
BASELINE_WITH_OFFSET = (4, 0)
BOA_OFFSET_DATE = datetime(2022, 1, 25, tzinfo=UTC)

LANDSAT_C2_SCALE, LANDSAT_C2_OFFSET = 2.75e-5, -0.2
"""Collection 2 Level-2 surface reflectance: reflectance = DN x 2.75e-5 - 0.2 (USGS Landsat
C2 L2 Science Product Guide); USGS's own STAC items do not carry it."""
LANDSAT_QA_BITS: dict[str, int] = {
    "fill": 0, "dilated_cloud": 1, "cirrus": 2, "cloud": 3, "cloud_shadow": 4,
}
"""Collection 2 QA_PIXEL bit offsets the validity mask tests (every one of them set means the
pixel is not clear; ``fill`` also means no data); names as in the ``classification:bitfields``
of the Earth Search / Planetary Computer items."""
