"""The granule reader's exact shortcuts (issue 14): a COG already on the tile's grid is a plain
window read, a nearest-neighbour band on a coarser aligned grid a repeated window read; both
give the same bytes as the general path (odc-stac's region computation and GDAL warp), and
the whole reader gives what ``odc.stac.load`` gave, for aligned and non-aligned COGs.

Small synthetic COGs written with the demo's COG writer, on a 64 px tile: milliseconds each.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import odc.stac
import pystac
import pytest
import rasterio
from shapely.geometry import mapping

from tessera_assets.demo.cog import write_cog
from tessera_assets.demo.grids import Grid
from tessera_assets.grid import Tile
from tessera_assets.ingest import granule_read
from tessera_assets.ingest.cubes import first_valid
from tessera_assets.ingest.granule_read import read_assets, read_band
from tessera_assets.ingest.upsample import bilinear_x2, source_window
from tessera_assets.sources.load_plan import BandPlan

pytestmark = [
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

TILE = Tile(zone=30, col=100, row=300, size=64)
X0, Y1 = TILE.geobox.transform.c, TILE.geobox.transform.f
EPSG = TILE.epsg


def _values(shape: tuple[int, int], seed: int, dtype: str = "uint16") -> np.ndarray:
    """Reflectance-like DNs with a nodata (0) corner and scattered nodata pixels."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(1, 12_000, shape).astype(dtype)
    arr[: shape[0] // 4, : shape[1] // 3] = 0
    arr[rng.random(shape) < 0.03] = 0
    return arr


def _cog(
    tmp_path: Path,
    name: str,
    grid: Grid,
    epsg: int = EPSG,
    *,
    nodata: float | None = 0,
    categorical: bool = False,
    seed: int = 0,
    holes: bool = True,
) -> str:
    path = tmp_path / f"{name}.tif"
    values = _values(grid.shape, seed)
    if not holes:  # data everywhere: only the raster's own edges are special
        values[values == 0] = 1
    if categorical:
        values = (values % 12).astype("uint16")
    write_cog(path, values, grid, epsg, nodata=nodata, categorical=categorical)
    return str(path)


def _plan(href: str, resampling: str, nodata: float | None = 0) -> BandPlan:
    return BandPlan(
        band="b",
        asset="b",
        href=href,
        data_type="uint16",
        nodata=nodata,
        scale=1.0,
        offset=0.0,
        resampling=resampling,
        source="test",
    )


def _general(href: str, plan: BandPlan) -> np.ndarray:
    """The general path alone: odc-stac's region computation, paste or warp."""
    out = np.empty(TILE.geobox.shape, np.uint16)
    with rasterio.open(href) as src:
        out[:] = plan.nodata or 0
        granule_read._general(src, href, plan, TILE.geobox, out)
    return out


def _odc(href: str, plan: BandPlan) -> np.ndarray:
    """What the cube read before: a one-item ``odc.stac.load`` of the asset."""
    footprint = TILE.footprint_lonlat().buffer(0.01)  # odc-stac loads items that meet the tile
    item = pystac.Item(
        "x",
        mapping(footprint),
        list(footprint.bounds),
        datetime(2024, 6, 1, tzinfo=UTC),
        {},
        collection="c",
    )
    item.add_asset("b", pystac.Asset(href, media_type=pystac.MediaType.COG))
    ds = odc.stac.load(
        [item],
        bands=["b"],
        geobox=TILE.geobox,
        groupby="id",
        resampling={"b": plan.resampling},
        fail_on_error=True,
        stac_cfg={"c": {"assets": {"b": {"data_type": plan.data_type, "nodata": plan.nodata}}}},
    )
    return ds["b"].values[0]


@pytest.fixture()
def general_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = granule_read._general

    def spy(src, href, *args):
        calls.append(href)
        return real(src, href, *args)

    monkeypatch.setattr(granule_read, "_general", spy)
    return calls


def _read(href: str, plan: BandPlan) -> np.ndarray:
    with rasterio.open(href) as src:
        return read_band(src, href, plan, TILE.geobox)


# Grids: the tile is 640 m square at (X0, Y1); files start whole pixels off the tile's corner
# and reach past one edge, so the tile is only partly covered (nodata fill where it is not).
ALIGNED_10 = Grid(X0 - 200.0, Y1 - 150.0, 10.0, 50, 90)
ALIGNED_20 = Grid(X0 - 100.0, Y1 + 60.0, 20.0, 30, 40)
HALF_PIXEL_10 = Grid(X0 - 195.0, Y1 - 145.0, 10.0, 90, 90)


@pytest.mark.parametrize(
    ("grid", "resampling", "categorical"),
    [
        (ALIGNED_10, "bilinear", False),
        (ALIGNED_10, "nearest", True),
        (ALIGNED_20, "nearest", True),
    ],
    ids=["10m-paste", "10m-nearest-paste", "20m-nearest-repeat"],
)
def test_aligned_fast_path_equals_general_path_and_odc(
    tmp_path: Path, general_calls: list[str], grid: Grid, resampling: str, categorical: bool
) -> None:
    href = _cog(tmp_path, "aligned", grid, categorical=categorical)
    plan = _plan(href, resampling)
    fast = _read(href, plan)
    assert general_calls == []  # the shortcut was taken
    general = _general(href, plan)
    assert fast.dtype == general.dtype == np.uint16
    assert np.array_equal(fast, general)
    assert np.array_equal(fast, _odc(href, plan))
    assert (fast == 0).any() and (fast != 0).any()  # partly covered, partly nodata


@pytest.mark.parametrize(
    ("grid", "epsg", "resampling"),
    [
        (HALF_PIXEL_10, EPSG, "bilinear"),
        (HALF_PIXEL_10, EPSG, "nearest"),
        (Grid(X0 - 300.0, Y1 + 300.0, 10.0, 130, 130), EPSG + 1, "bilinear"),
    ],
    ids=["half-pixel-offset", "half-pixel-offset-nearest", "other-crs"],
)
def test_non_aligned_cogs_take_the_general_path_and_equal_odc(
    tmp_path: Path, general_calls: list[str], grid: Grid, epsg: int, resampling: str
) -> None:
    if epsg != EPSG:  # the same place in the next zone's coordinates
        from pyproj import Transformer

        x, y = Transformer.from_crs(EPSG, epsg, always_xy=True).transform(grid.x0, grid.y0)
        grid = Grid(round(x), round(y), grid.res, grid.width, grid.height)
    href = _cog(tmp_path, "other", grid, epsg)
    plan = _plan(href, resampling)
    out = _read(href, plan)
    assert general_calls == [href]
    assert np.array_equal(out, _odc(href, plan))
    assert (out != 0).any()


def test_file_nodata_other_than_the_plans_is_remapped_like_odc(tmp_path: Path) -> None:
    href = _cog(tmp_path, "no-nodata", ALIGNED_10, nodata=None)
    for nodata in (0, 65535, None):
        plan = _plan(href, "bilinear", nodata=nodata)
        assert np.array_equal(_read(href, plan), _odc(href, plan)), nodata


def test_a_granule_is_one_array_in_band_order(tmp_path: Path) -> None:
    hrefs = [
        _cog(tmp_path, "b10", ALIGNED_10, seed=1),
        _cog(tmp_path, "b20", ALIGNED_20, seed=2),
        _cog(tmp_path, "scl", ALIGNED_20, categorical=True, seed=3),
    ]
    plans = [_plan(hrefs[0], "bilinear"), _plan(hrefs[1], "bilinear"), _plan(hrefs[2], "nearest")]
    out = read_assets(hrefs, plans, TILE.geobox, np.uint16)
    assert out.shape == (3, *TILE.geobox.shape)
    for i, (href, plan) in enumerate(zip(hrefs, plans, strict=True)):
        assert np.array_equal(out[i], _odc(href, plan)), plan


# --------------------------------------------------------------------------- bilinear x2

ODD_20 = Grid(X0 - 30.0, Y1 + 10.0, 20.0, 20, 25)  # an odd tile-pixel offset, inside the tile


@pytest.mark.parametrize("grid", [ALIGNED_20, ODD_20], ids=["even-offset", "odd-offset"])
@pytest.mark.parametrize(("seed", "holes"), [(0, True), (1, True), (2, False)])
def test_bilinear_x2_gives_gdals_warp(tmp_path: Path, grid: Grid, seed: int, holes: bool) -> None:
    """Raster edges inside the tile, nodata blocks and scattered nodata pixels (every case GDAL
    renormalises) or none, random DNs (so many x.5 ties): the numpy upsampling equals GDAL's
    warp."""
    href = _cog(tmp_path, "b20", grid, seed=seed, holes=holes)
    plan = _plan(href, "bilinear")
    with rasterio.open(href) as src:
        lattice = granule_read._on_lattice(src, TILE.geobox, np.dtype("uint16"))
        assert lattice is not None and lattice[0] == 2
        window = source_window(src.shape, TILE.geobox.shape, lattice[1], lattice[2])
        region, pix = bilinear_x2(
            src.read(1, window=window),
            window,
            src.shape,
            0,
            TILE.geobox.shape,
            lattice[1],
            lattice[2],
        )
    numpy = np.zeros(TILE.geobox.shape, np.uint16)
    numpy[region] = pix
    gdal = _general(href, plan)
    assert np.array_equal(numpy, gdal)
    assert np.array_equal(gdal, _odc(href, plan))
    assert (gdal != 0).sum() > 100


def test_bilinear_x2_is_checked_against_gdal_once_per_grid(
    tmp_path: Path, general_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(granule_read, "_agrees", {})
    first, second = (_cog(tmp_path, f"b{i}", ALIGNED_20, seed=i) for i in (1, 2))
    expected = [_odc(h, _plan(h, "bilinear")) for h in (first, second)]
    assert np.array_equal(_read(first, _plan(first, "bilinear")), expected[0])
    assert general_calls == [first]  # compared once for this grid ...
    assert np.array_equal(_read(second, _plan(second, "bilinear")), expected[1])
    assert general_calls == [first]  # ... then trusted
    assert list(granule_read._agrees.values()) == [True]


def test_a_grid_where_numpy_and_gdal_differ_keeps_gdals_warp(
    tmp_path: Path, general_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(granule_read, "_agrees", {})
    real = granule_read.bilinear_x2

    def off_by_one(*args):
        region, pix = real(*args)
        return region, pix + 1

    monkeypatch.setattr(granule_read, "bilinear_x2", off_by_one)
    href = _cog(tmp_path, "b20", ALIGNED_20)
    plan = _plan(href, "bilinear")
    expected = _odc(href, plan)
    for _ in range(2):
        assert np.array_equal(_read(href, plan), expected)
    assert list(granule_read._agrees.values()) == [False]
    assert len(general_calls) == 2  # GDAL's warp each time


# --------------------------------------------------------------------------- same-day mosaic


def _first_valid_gather(stack: np.ndarray, valid: np.ndarray, has_data: np.ndarray) -> np.ndarray:
    """The mosaic rule as a gather (how it was computed before the one-hot sum)."""
    pick = np.where(valid.any(axis=0), valid.argmax(axis=0), has_data.argmax(axis=0))
    out = np.take_along_axis(stack, pick[None, None], axis=0)[0]
    return np.where(has_data.any(axis=0)[None], out, 0).astype(stack.dtype)


@pytest.mark.parametrize("granules", [1, 2, 3])
@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_first_valid_picks_like_a_gather(granules: int, dtype: str) -> None:
    rng = np.random.default_rng(granules)
    stack = rng.integers(0, 4, (granules, 3, 50, 50)).astype(dtype)
    if dtype == "float32":
        stack[stack == 0] = np.nan
    # Independent masks: also pixels "valid" in a granule without data anywhere.
    valid, has_data = rng.random((2, granules, 50, 50)) < [[[[0.3]]], [[[0.5]]]]
    out = first_valid(stack, valid, has_data)
    assert out.dtype == stack.dtype
    assert np.array_equal(out, _first_valid_gather(stack, valid, has_data), equal_nan=True)
