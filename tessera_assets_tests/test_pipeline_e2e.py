"""End to end through Dagster: the whole asset graph for one demo partition, then the stores.

Runs the real thing on a small demo: archive generation, rustac search, odc-stac loads, Zarr
region writes, a local Ray actor pool with the demo v2-nano weights, and coarsening.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
from dagster import AssetKey, DagsterInstance
from rasterio.warp import Resampling, reproject

from tessera_assets.aoi import load_aoi
from tessera_assets.cli.aoi import register_aoi
from tessera_assets.defs import PIPELINE_JOB, build_definitions
from tessera_assets.defs.partitions import partition_key
from tessera_assets.demo import DemoSpec, generate_demo_archive
from tessera_assets.demo.area import DEMO_EPSG, DemoPaths, demo_bounds, demo_settings
from tessera_assets.grid import Tile, tiles_for_geometry
from tessera_assets.model.demo_weights import write_demo_checkpoint
from tessera_assets.sources.manifest import SceneManifest
from tessera_assets.store.lineage import lineage_key

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("ray_cluster")]

TILE_SIZE = 64
# Two 640 m tiles side by side inside the demo area.
AOI_UTM = (636_900.0, 5_762_300.0, 638_000.0, 5_762_800.0)
ASSETS = ["scene_manifest", "s2_cube", "s1_cube", "landsat_cube", "s2_masked",
          "s1_calibrated", "landsat_masked", "embeddings", "embeddings_coarse"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("e2e")
    paths = DemoPaths(home)
    settings = demo_settings(paths, tile_size=TILE_SIZE)
    tiles = tiles_for_geometry(load_aoi(list(AOI_UTM), crs=f"EPSG:{DEMO_EPSG}"), TILE_SIZE)
    assert len(tiles) == 2
    spec = DemoSpec(epsg=DEMO_EPSG, bounds=demo_bounds([t.bounds for t in tiles]),
                    year=settings.years[0])
    archive = generate_demo_archive(spec, paths.archive)
    write_demo_checkpoint(paths.model, family="v2-nano", seed=0)
    instance = DagsterInstance.ephemeral()
    register_aoi(instance, settings, "e2e", list(AOI_UTM), settings.years, crs=f"EPSG:{DEMO_EPSG}")
    defs = build_definitions(settings)
    tile, year = tiles[0], settings.years[0]
    result = defs.resolve_job_def(PIPELINE_JOB).execute_in_process(
        partition_key=partition_key(tile, year), instance=instance)
    return settings, archive, instance, tile, year, result, tiles


def test_every_asset_materialised_through_dagster(run) -> None:
    settings, _, instance, tile, year, result, tiles = run
    assert result.success
    mats = {e.asset_key.to_user_string(): e for e in result.get_asset_materialization_events()}
    assert sorted(mats) == sorted(ASSETS)
    emb_meta = result.asset_materializations_for_node("embeddings")[0].metadata
    assert emb_meta["model_is_demo"].value is True
    assert "DEMO" in emb_meta["model"].value
    # The tiles of the registered AOI are dynamic partitions of the instance.
    assert set(instance.get_dynamic_partitions("tiles")) == {t.id for t in tiles}


def test_manifest_is_the_lineage_root(run) -> None:
    settings, _, _, tile, year, _, _ = run
    manifest = SceneManifest.load(f"{settings.root}/scene_manifest/{tile.id}/{year}")
    counts = manifest.counts()
    assert counts["s2"] >= 40 and counts["s1"] >= 20 and counts["landsat"] >= 10
    record_path = Path(settings.root) / "embeddings.zarr" / lineage_key("utm30", tile.id, year)
    record = json.loads(record_path.read_text())
    assert record["manifest_digest"] == manifest.digest()
    assert len(record["model_sha256"]) == 64


def test_cube_stores(run) -> None:
    settings, _, _, tile, _, _, _ = run
    ys, xs = tile.pixel_window()
    s2 = xr.open_zarr(f"{settings.root}/s2_cube.zarr", group="utm30", consolidated=True, chunks=None)
    assert s2["bands"].dtype == np.uint16
    assert list(s2["band"].values[-1:]) == ["SCL"]
    window = s2["bands"].isel(year=0, y=ys, x=xs)
    first_band = window.isel(band=0).values  # (366, H, W): unwritten days read as 0
    written = [int(d) for d in np.flatnonzero(first_band.reshape(366, -1).max(axis=1) > 0)]
    assert len(written) >= 40
    scl = window.isel(doy=written, band=-1).values
    assert {3, 4, 8}.issubset(set(np.unique(scl)))  # shadow, vegetation, cloud
    masked = xr.open_zarr(f"{settings.root}/s2_masked.zarr", group="utm30", consolidated=True, chunks=None)
    valid = masked["valid"].isel(year=0, y=ys, x=xs, doy=written).values
    assert 0.2 < valid.mean() < 0.95
    s1 = xr.open_zarr(f"{settings.root}/s1_calibrated.zarr", group="utm30", consolidated=True, chunks=None)
    codes = s1["codes"].isel(year=0, y=ys, x=xs)
    assert codes.dtype == np.int16 and int(codes.max()) > 0


def test_embeddings_store_has_crs_coords_and_values(run) -> None:
    settings, _, _, tile, year, _, tiles = run
    ds = xr.open_zarr(f"{settings.root}/embeddings.zarr", group="utm30", consolidated=True, chunks=None)
    assert ds["embeddings"].dtype == np.int8 and ds["scales"].dtype == np.float32
    assert ds["embeddings"].dims == ("time", "band", "y", "x")
    assert ds.attrs["proj:code"] == "EPSG:32630"
    sub = ds.sel(time=year).isel(y=tile.pixel_window()[0], x=tile.pixel_window()[1])
    assert sub.odc.geobox == tile.geobox
    scales = sub["scales"].values
    finite = np.isfinite(scales)
    assert finite.mean() > 0.9
    assert (scales[finite] > 0).all() and (scales[finite] <= 1.0).all()  # v2: LayerNormed
    emb = sub["embeddings"].values.astype(np.float32) * np.where(finite, scales, np.nan)
    assert np.nanstd(emb) > 0.5
    # The other tile was not materialised: its region reads as +inf (not yet filled).
    other = next(t for t in tiles if t != tile)
    other_scales = ds["scales"].sel(time=year).isel(
        y=other.pixel_window()[0], x=other.pixel_window()[1]).values
    assert np.isposinf(other_scales).all()
    coarse = xr.open_zarr(f"{settings.root}/embeddings_coarse.zarr", group="utm30",
                          consolidated=True, chunks=None)
    ys, xs = tile.pixel_window(settings.coarse_resolution)
    c = coarse["scales"].sel(time=year).isel(y=ys, x=xs)
    assert c.shape == (TILE_SIZE // settings.coarse_factor,) * 2
    assert np.isfinite(c.values).all()


def test_land_cover_classes_separate_in_embedding_space(run) -> None:
    settings, archive, _, tile, year, _, _ = run
    ds = xr.open_zarr(f"{settings.root}/embeddings.zarr", group="utm30", consolidated=True, chunks=None)
    ys, xs = tile.pixel_window()
    sub = ds.sel(time=year).isel(y=ys, x=xs)
    scales = sub["scales"].values
    emb = (sub["embeddings"].values.astype(np.float32) * scales).reshape(128, -1).T
    classes = _landcover_on(tile, archive.landcover_path).ravel()
    ok = np.isfinite(scales.ravel())
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    groups = {c: unit[(classes == c) & ok] for c in np.unique(classes[ok])}
    groups = {c: g for c, g in groups.items() if len(g) >= 20}
    assert len(groups) >= 2, f"need two classes in the tile, got {list(groups)}"
    within = np.mean([1 - (g @ g.T).mean() for g in groups.values()])
    keys = list(groups)
    between = np.mean([1 - (groups[a] @ groups[b].T).mean()
                       for i, a in enumerate(keys) for b in keys[i + 1:]])
    assert between > within, (between, within)


def _landcover_on(tile: Tile, path: Path) -> np.ndarray:
    """The demo's true land-cover classes resampled (nearest) onto the tile grid."""
    out = np.zeros(tile.geobox.shape, np.uint8)
    with rasterio.open(path) as src:
        reproject(rasterio.band(src, 1), out, dst_transform=tile.geobox.affine,
                  dst_crs=tile.crs, resampling=Resampling.nearest)
    return out


def test_rerun_is_idempotent(run) -> None:
    settings, _, instance, tile, year, _, _ = run
    path = Path(settings.root) / "embeddings.zarr"
    before = {p.relative_to(path): p.read_bytes() for p in path.rglob("*")
              if p.is_file() and "_lineage" not in p.parts and p.name != "zarr.json"}
    defs = build_definitions(settings)
    again = defs.resolve_job_def(PIPELINE_JOB).execute_in_process(
        partition_key=partition_key(tile, year), instance=instance,
        asset_selection=[AssetKey("embeddings")])
    assert again.success
    after = {p.relative_to(path): p.read_bytes() for p in path.rglob("*")
             if p.is_file() and "_lineage" not in p.parts and p.name != "zarr.json"}
    assert before.keys() == after.keys()
    assert all(before[k] == after[k] for k in before)


def test_tile_ids_are_the_partition_keys(run) -> None:
    _, _, instance, tile, year, _, _ = run
    assert Tile.parse(tile.id) == tile
    assert str(partition_key(tile, year)) == f"{tile.id}|{year}"


def test_geotessera_reads_the_demo_region(run, tmp_path: Path) -> None:
    """geotessera 0.11's GeoTesseraZarr reads our demo output unchanged."""
    from pyproj import Transformer

    from tessera_assets_tests.test_geotessera_compat import READER, _geotessera_python

    python = _geotessera_python()
    settings, _, _, tile, year, _, _ = run
    ds = xr.open_zarr(f"{settings.root}/embeddings.zarr", group="utm30", consolidated=True,
                      chunks=None)
    ys, xs = tile.pixel_window()
    sub = ds.sel(time=year).isel(y=ys, x=xs)
    ours = sub["embeddings"].values.astype(np.float32) * sub["scales"].values  # (128, H, W)
    to_ll = Transformer.from_crs(tile.crs, 4326, always_xy=True)
    west, south, east, north = tile.bounds
    pixels = [(3, 5), (20, 40), (33, 33), (60, 2), (47, 58)]
    points = [list(to_ll.transform(west + (c + 0.5) * 10, north - (r + 0.5) * 10))
              for r, c in pixels]
    w, s = to_ll.transform(west + 100, south + 100)
    e, n = to_ll.transform(east - 100, north - 100)
    request = {"year": year, "zone": 30, "bbox": [w, s, e, n], "points": points}
    req, out = tmp_path / "request.json", tmp_path / "out.npz"
    req.write_text(json.dumps(request))
    proc = subprocess.run([python, str(READER), f"{settings.root}/embeddings.zarr", str(req),
                           str(out)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = dict(np.load(out))
    for i, (r, c) in enumerate(pixels):
        expected = ours[:, r, c]
        if np.isfinite(expected).all():
            assert np.array_equal(got["sample_points"][i], expected), (r, c)
        else:
            assert np.isnan(got["sample_points"][i]).all()
    assert np.isfinite(got["sample_points"]).all(axis=1).sum() >= 3
    mosaic = got["mosaic"]  # (h, w, 128) window inside the tile
    tr = got["transform"]
    r0 = round((north - tr[5]) / 10)
    c0 = round((tr[2] - west) / 10)
    h, w_px = mosaic.shape[:2]
    np.testing.assert_array_equal(
        mosaic, ours[:, r0:r0 + h, c0:c0 + w_px].transpose(1, 2, 0))
