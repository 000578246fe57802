"""The demo landscape: field parcels, woods, a river and lake, a village and its roads.

Every pixel belongs to a *unit* (a field parcel, or one shared unit per non-field class), and
phenology is evaluated per unit, so each field follows its own crop calendar (sowing and harvest
shifted field by field) while the maps stay cheap to evaluate for every acquisition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from tessera_assets.demo.grids import Grid
from tessera_assets.demo.noise import smooth_noise
from tessera_assets.demo.spec import DemoSpec, rng_for


class LandCover(IntEnum):
    """Class codes of the land-cover raster (0 is never used: it is the GeoTIFF nodata)."""

    WINTER_CEREAL = 1
    SPRING_CEREAL = 2
    MAIZE = 3
    OILSEED_RAPE = 4
    GRASSLAND = 5
    DECIDUOUS_FOREST = 6
    EVERGREEN_FOREST = 7
    WATER = 8
    URBAN = 9
    BARE = 10


CLASSES: dict[int, str] = {c.value: c.name.lower() for c in LandCover}
CROPS = (LandCover.WINTER_CEREAL, LandCover.SPRING_CEREAL, LandCover.MAIZE, LandCover.OILSEED_RAPE)

# Share of field parcels per class (the rest of the landscape is drawn on top of the parcels).
_PARCEL_MIX = {
    LandCover.WINTER_CEREAL: 0.30,
    LandCover.SPRING_CEREAL: 0.12,
    LandCover.MAIZE: 0.10,
    LandCover.OILSEED_RAPE: 0.12,
    LandCover.GRASSLAND: 0.30,
    LandCover.BARE: 0.06,
}
_WOODLAND_SHARE = 0.12
_EVERGREEN_SHARE_OF_WOOD = 0.3


@dataclass(frozen=True)
class Landscape:
    """Per-pixel maps on the base grid and per-unit parameters.

    ``unit`` indexes the ``unit_*`` arrays. ``unit_shift`` moves a field's crop calendar (days),
    ``unit_cuts`` are grassland mowing days (NaN: grazed, never cut), ``unit_roughness`` is the
    soil roughness term of its radar backscatter (dB).
    """

    grid: Grid
    classes: np.ndarray  # uint8 (H, W)
    unit: np.ndarray  # int32 (H, W)
    texture: np.ndarray  # float32 (H, W), ~N(0, 1), static within-field variability
    unit_class: np.ndarray  # uint8 (U,)
    unit_shift: np.ndarray  # float32 (U,)
    unit_cuts: np.ndarray  # float32 (U, 2)
    unit_roughness: np.ndarray  # float32 (U,)

    def fraction(self, cls: LandCover) -> np.ndarray:
        return (self.classes == cls).astype(np.float32)


def build_landscape(spec: DemoSpec, grid: Grid) -> Landscape:
    """Draw the landscape for ``spec`` on ``grid`` (deterministic in ``spec.seed``)."""
    rng = rng_for(spec.seed, "landscape")
    xs, ys = grid.centres()
    cx, cy = xs.mean(), ys.mean()
    x = (xs - cx)[None, :].astype(np.float64)
    y = (ys - cy)[:, None].astype(np.float64)
    shape = grid.shape
    x2d = np.broadcast_to(x, shape)
    y2d = np.broadcast_to(y, shape)
    inner = _inner_extent(spec)

    units = _Units()
    parcels = _parcels(rng, x2d, y2d)
    n_parcels = int(parcels.max()) + 1
    parcel_classes = rng.choice(
        np.array(list(_PARCEL_MIX), dtype=np.uint8),
        size=n_parcels,
        p=np.array(list(_PARCEL_MIX.values())),
    )
    for cls in parcel_classes:
        units.add(rng, LandCover(int(cls)))
    unit = parcels.astype(np.int32)

    # Woods: organic blobs over the parcels, a mix of broadleaf and conifer stands.
    wood = smooth_noise(rng, shape, scale_px=45, beta=4.0)
    wood_mask = wood > np.quantile(wood, 1 - _WOODLAND_SHARE)
    conifer = smooth_noise(rng, shape, scale_px=20, beta=4.0)
    conifer_mask = wood_mask & (conifer > np.quantile(conifer[wood_mask], 1 - _EVERGREEN_SHARE_OF_WOOD))
    unit[wood_mask] = units.add(rng, LandCover.DECIDUOUS_FOREST)
    unit[conifer_mask] = units.add(rng, LandCover.EVERGREEN_FOREST)

    # A village inside the area proper: a ragged outline, denser towards the centre, with
    # gardens between the houses.
    vx, vy = (rng.uniform(-f, f) * 0.6 for f in inner)
    radius = min(260.0, 0.3 * min(inner))
    outline = smooth_noise(rng, shape, scale_px=8, beta=3.0)
    reach = np.hypot(x2d - vx, y2d - vy) / radius
    village = reach + 0.2 * outline < 1.0
    unit[village] = units.add(rng, LandCover.GRASSLAND, mown=False)
    urban = units.add(rng, LandCover.URBAN)
    blocks = smooth_noise(rng, shape, scale_px=3, beta=3.0) + 1.5 * (1 - reach)
    unit[village & (blocks > np.quantile(blocks[village], 0.4))] = urban
    # Roads through the village: straight, 10-20 m wide.
    for _ in range(2):
        angle = rng.uniform(0, math.pi)
        across = -(x2d - vx) * math.sin(angle) + (y2d - vy) * math.cos(angle)
        unit[np.abs(across) < rng.uniform(5.0, 10.0)] = urban

    water = units.add(rng, LandCover.WATER)
    # A meandering river across the whole grid...
    angle = rng.uniform(0, math.pi)
    along = x2d * math.cos(angle) + y2d * math.sin(angle)
    across = -x2d * math.sin(angle) + y2d * math.cos(angle)
    centre = rng.uniform(-0.5, 0.5) * min(inner)
    for wavelength, amplitude in ((rng.uniform(1200, 2200), rng.uniform(60, 160)),
                                  (rng.uniform(300, 600), rng.uniform(10, 35))):
        centre = centre + amplitude * np.sin(2 * math.pi * along / wavelength + rng.uniform(0, 6.3))
    unit[np.abs(across - centre) < rng.uniform(10.0, 16.0)] = water
    # ...and a lake with a ragged shore, inside the area so small specs keep open water.
    lx, ly = (rng.uniform(-f, f) * 0.5 for f in inner)
    a = rng.uniform(0.12, 0.2) * min(inner) + 60
    b = a * rng.uniform(0.5, 0.8)
    rot = rng.uniform(0, math.pi)
    du = (x2d - lx) * math.cos(rot) + (y2d - ly) * math.sin(rot)
    dv = -(x2d - lx) * math.sin(rot) + (y2d - ly) * math.cos(rot)
    shore = smooth_noise(rng, shape, scale_px=6, beta=3.0)
    unit[np.hypot(du / a, dv / b) + 0.08 * shore < 1.0] = water

    u = units.arrays()
    return Landscape(
        grid=grid,
        classes=u["cls"][unit],
        unit=unit,
        texture=smooth_noise(rng, shape, scale_px=2.5, beta=2.0),
        unit_class=u["cls"],
        unit_shift=u["shift"],
        unit_cuts=u["cuts"],
        unit_roughness=u["rough"],
    )


class _Units:
    """Accumulates per-unit parameters while the landscape is drawn."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, float, float, float, float]] = []

    def add(self, rng: np.random.Generator, cls: LandCover, *, mown: bool | None = None) -> int:
        shift = float(rng.normal(0.0, 7.0))
        cuts = (math.nan, math.nan)
        if cls == LandCover.GRASSLAND and (mown if mown is not None else rng.random() < 0.6):
            cuts = (150 + rng.normal(0, 10), 215 + rng.normal(0, 12))
        roughness = float(rng.normal(0.0, 1.0))
        self.rows.append((int(cls), shift, cuts[0], cuts[1], roughness))
        return len(self.rows) - 1

    def arrays(self) -> dict[str, np.ndarray]:
        table = np.array(self.rows, dtype=np.float64)
        return {
            "cls": table[:, 0].astype(np.uint8),
            "shift": table[:, 1].astype(np.float32),
            "cuts": table[:, 2:4].astype(np.float32),
            "rough": table[:, 4].astype(np.float32),
        }


def _inner_extent(spec: DemoSpec) -> tuple[float, float]:
    """Half-width and half-height of the area proper (features placed here stay visible)."""
    x0, y0, x1, y1 = spec.bounds
    return (x1 - x0) / 2, (y1 - y0) / 2


def _parcels(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Label rectangular field parcels of 120-450 m, on a grid rotated by a random angle."""
    theta = math.radians(rng.uniform(-25, 25))
    u = (x * math.cos(theta) + y * math.sin(theta)).ravel()
    v = (-x * math.sin(theta) + y * math.cos(theta)).ravel()
    labels = np.zeros(u.size, dtype=np.int32)
    counter = [0]

    def split(idx: np.ndarray, u0: float, u1: float, v0: float, v1: float) -> None:
        du, dv = u1 - u0, v1 - v0
        limit = rng.uniform(220, 450)
        if max(du, dv) < limit or idx.size == 0:
            labels[idx] = counter[0]
            counter[0] += 1
            return
        along_u = du >= dv
        lo, hi = (u0, u1) if along_u else (v0, v1)
        cut = lo + (hi - lo) * rng.uniform(0.35, 0.65)
        coord = u[idx] if along_u else v[idx]
        left, right = idx[coord < cut], idx[coord >= cut]
        if along_u:
            split(left, u0, cut, v0, v1)
            split(right, cut, u1, v0, v1)
        else:
            split(left, u0, u1, v0, cut)
            split(right, u0, u1, cut, v1)

    split(np.arange(u.size), u.min(), u.max() + 1e-6, v.min(), v.max() + 1e-6)
    return labels.reshape(x.shape)
