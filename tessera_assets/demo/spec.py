"""What the demo archive covers: area, CRS, year and seed.

Everything the generator draws comes from ``seed`` through named random streams
(:func:`rng_for`), so one spec always produces the same archive, whatever the order in which
scenes are rendered or how many threads render them.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

GENERATOR_VERSION = "2"
"""Bumped whenever the generator's output changes for an unchanged spec."""

GRID_STEP_M = 20.0
"""Bounds must be multiples of this: the Sentinel-2 20 m grid is aligned to the area's edges."""


class DemoSpec(BaseModel):
    """The area and year of a synthetic archive.

    The default is a 3.84 x 2.56 km farmland area in southern England (UTM 30N), which holds the
    pipeline's demo tiles with a 640 m margin. ``start``/``end`` restrict acquisitions to part of
    the year (handy for fast tests); by default the whole calendar year is generated.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    epsg: int = 32630
    bounds: tuple[float, float, float, float] = (635_520.0, 5_761_600.0, 639_360.0, 5_764_160.0)
    year: int = 2024
    seed: int = 20240101
    start: date | None = None
    end: date | None = None

    @field_validator("epsg")
    @classmethod
    def _utm_only(cls, v: int) -> int:
        if not (32601 <= v <= 32660 or 32701 <= v <= 32760):
            raise ValueError(f"epsg must be a WGS 84 / UTM code (326NN or 327NN), got {v}")
        return v

    @field_validator("year")
    @classmethod
    def _sentinel_era(cls, v: int) -> int:
        if not 2017 <= v <= 2100:
            raise ValueError(f"year must be 2017 or later (Sentinel-2 L2A era), got {v}")
        return v

    @model_validator(mode="after")
    def _check_bounds_and_period(self) -> DemoSpec:
        x0, y0, x1, y1 = self.bounds
        if not (x1 > x0 and y1 > y0):
            raise ValueError(f"bounds must be (xmin, ymin, xmax, ymax) with min < max: {self.bounds}")
        for v in self.bounds:
            if abs(v / GRID_STEP_M - round(v / GRID_STEP_M)) > 1e-9:
                raise ValueError(f"bounds must be multiples of {GRID_STEP_M:g} m: {self.bounds}")
        if x1 - x0 < 320 or y1 - y0 < 320:
            raise ValueError("the demo area must be at least 320 m on each side")
        if x1 - x0 > 20_480 or y1 - y0 > 20_480:
            raise ValueError("the demo area is capped at 20.48 km on each side")
        first, last = self.period
        if first > last:
            raise ValueError(f"start {first} is after end {last}")
        if first.year != self.year or last.year != self.year:
            raise ValueError(f"start/end must lie in {self.year}")
        return self

    @property
    def period(self) -> tuple[date, date]:
        """First and last acquisition day (inclusive)."""
        return (self.start or date(self.year, 1, 1), self.end or date(self.year, 12, 31))

    @property
    def zone(self) -> int:
        return self.epsg % 100

    @property
    def south(self) -> bool:
        return self.epsg >= 32700

    def digest(self) -> str:
        """Stable hash of the spec and generator version (the completion marker's key)."""
        payload = json.dumps(
            {"spec": self.model_dump(mode="json"), "generator": GENERATOR_VERSION},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()


def rng_for(seed: int, *keys: str | int) -> np.random.Generator:
    """An independent random stream named by ``keys`` (e.g. ``("s2", "2024-03-01")``).

    Named streams keep the archive identical whatever the rendering order or thread count.
    """
    words = [seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF]
    for key in keys:
        digest = hashlib.blake2b(str(key).encode(), digest_size=8).digest()
        words.extend(int.from_bytes(digest[i : i + 4], "little") for i in (0, 4))
    return np.random.default_rng(np.random.SeedSequence(words))
