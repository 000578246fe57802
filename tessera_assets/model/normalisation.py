"""Normalisation constants of each TESSERA checkpoint (reference §2.5).

Each checkpoint was trained with one set; the wrong set gives silently wrong embeddings. Values are
kept as float32, as the official code z-scores in float32: ``(x - mean) / (std + 1e-9)``.
S2 order: B04, B02, B03, B08, B8A, B05, B06, B07, B11, B12. S1 order: VV, VH.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tessera_assets.model.families import Kind

ZSCORE_EPS = 1e-9


@dataclass(frozen=True)
class NormStats:
    """Means and standard deviations for S2 and the two S1 orbits (equal for v1.0)."""

    name: str
    s2_mean: np.ndarray
    s2_std: np.ndarray
    s1a_mean: np.ndarray
    s1a_std: np.ndarray
    s1d_mean: np.ndarray
    s1d_std: np.ndarray


def _f32(values: list[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float32)
    arr.flags.writeable = False
    return arr


def _stats(name: str, s2: tuple, s1a: tuple, s1d: tuple) -> NormStats:
    return NormStats(
        name, _f32(s2[0]), _f32(s2[1]), _f32(s1a[0]), _f32(s1a[1]), _f32(s1d[0]), _f32(s1d[1])
    )


_V10_S1 = ([5484.0407, 3003.7812], [1871.2334, 1726.0670])

NORM_SETS: dict[str, NormStats] = {
    "v1.0": _stats(
        "v1.0",
        (
            [1711.0938, 1308.8511, 1546.4543, 3010.1293, 3106.5083,
             2068.3044, 2685.0845, 2931.5889, 2514.6928, 1899.4922],
            [1926.1026, 1862.9751, 1803.1792, 1741.7837, 1677.4543,
             1888.7862, 1736.3090, 1715.8104, 1514.5199, 1398.4779],
        ),
        _V10_S1,
        _V10_S1,
    ),
    "v1.1-mpc": _stats(
        "v1.1-mpc",
        (
            [2683.4553, 2223.3630, 2432.0950, 3633.1970, 3602.1755,
             3006.4324, 3400.2710, 3515.6392, 2456.9163, 1983.8783],
            [2739.5217, 2846.2993, 2690.8250, 2290.0439, 2088.8970,
             2673.1106, 2381.4521, 2229.5225, 1601.0942, 1495.3545],
        ),
        ([5588.3291, 3025.6270], [1713.4646, 1693.0471]),
        ([5552.9683, 2955.0520], [1685.5857, 1677.6414]),
    ),
    "v1.1-aws": _stats(
        "v1.1-aws",
        (
            [2793.6589, 2356.7776, 2551.0496, 3741.9229, 3713.7844,
             3120.1997, 3516.3342, 3637.0342, 2501.0283, 2038.1504],
            [2810.0093, 2933.8835, 2755.6360, 2344.5027, 2145.7986,
             2743.9019, 2438.8601, 2286.5977, 1680.7367, 1585.5529],
        ),
        ([5697.0859, 2838.6687], [1671.3737, 1789.4116]),
        ([5759.1367, 2873.2854], [1583.2858, 1747.8390]),
    ),
    "v2": _stats(
        "v2",
        (
            [1633.0042, 1341.1090, 1539.5536, 3054.8269, 3117.4658,
             2004.1648, 2694.7275, 2945.1504, 2266.6079, 1657.3094],
            [1999.4603, 2014.7549, 1929.2201, 1754.2493, 1649.9807,
             1936.8988, 1748.6041, 1708.6991, 1207.5250, 1108.6046],
        ),
        ([5909.3921, 3405.0322], [1507.1750, 1531.2615]),
        ([5816.1382, 3277.7576], [1554.6475, 1546.4733]),
    ),
}

#: Which sets a family may use: the v1.1 set depends on the preprocessing source (mpc or aws).
ALLOWED_NORMS: dict[Kind, tuple[str, ...]] = {
    "v1.0": ("v1.0",),
    "v1.1": ("v1.1-mpc", "v1.1-aws"),
    "v2": ("v2",),
}


def resolve_norm_name(kind: Kind, norm: str | None) -> str | None:
    """Canonical set name for ``norm`` (accepts 'mpc'/'aws' for v1.1); None when not given."""
    if norm is None:
        return None
    key = norm.strip().lower()
    if kind == "v1.1" and key in ("mpc", "aws"):
        key = f"v1.1-{key}"
    if key not in ALLOWED_NORMS[kind]:
        raise ValueError(
            f"normalisation set {norm!r} does not belong to a {kind} model; "
            f"allowed: {list(ALLOWED_NORMS[kind])}"
        )
    return key


def get_norm(name: str) -> NormStats:
    try:
        return NORM_SETS[name]
    except KeyError:
        raise ValueError(f"unknown normalisation set {name!r}; known: {list(NORM_SETS)}") from None


def zscore(values: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The official z-score, in float32."""
    return (values.astype(np.float32, copy=False) - mean) / (std + np.float32(ZSCORE_EPS))
