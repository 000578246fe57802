"""Partitions without Sentinel-2 (issue 10.2, 13.7): S1-only, Landsat-only and zero-scene
tile-years embed what their family's rule allows, write NaN scales for the rest, and never crash.

The family rules (reference/tessera-model.md §2.5): v2 embeds a pixel with valid S1 and no
clear S2 (the S2 stream is one zero token); v1.0 keeps only pixels with some non-zero S2 band,
and this project applies the same rule to v1.1 (no embedding of pure nodata reaches a store).
The end-to-end test runs real OPERA (S1-only) and USGS Landsat (no model input) fixture items
through Dagster to the embeddings store.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from tessera_assets.inference.strips import observation_counts, strip_series
from tessera_assets.model import PixelSeries, embed
from tessera_assets.model.demo_weights import random_model
from tessera_assets_tests.model.test_checkpoint import tiny

H = W = 6
S1_DAYS = (12, 40, 77)


def _cubes(n_s2_days: int, n_s1_days: int) -> tuple[xr.Dataset, xr.Dataset, dict]:
    """Masked cubes as the stores return them: S2 with ``n_s2_days`` slices (all clear, DN 1500
    in the left half), S1 ascending codes on ``n_s1_days`` days in the top half."""
    rng = np.random.default_rng(0)
    s2_doy = np.arange(1, n_s2_days + 1, dtype=np.int16) * 10
    bands = np.zeros((n_s2_days, 10, H, W), np.uint16)
    bands[..., : W // 2] = 1500 + rng.integers(0, 100, (n_s2_days, 10, H, W // 2))
    valid = (bands[:, 0] > 0).astype(np.uint8)
    s2 = xr.Dataset(
        {"bands": (("doy", "band", "y", "x"), bands), "valid": (("doy", "y", "x"), valid)},
        coords={"doy": s2_doy},
    )
    doys = np.array(S1_DAYS[:n_s1_days], dtype=np.int16)
    codes = np.zeros((n_s1_days, 4, H, W), np.int16)
    codes[:, :2, : H // 2] = 6000 + rng.integers(0, 500, (n_s1_days, 2, H // 2, W))
    s1 = xr.Dataset({"codes": (("doy", "band", "y", "x"), codes)}, coords={"doy": doys})
    return s2, s1, {"ascending": [int(d) for d in doys], "descending": []}


@pytest.mark.parametrize(
    ("n_s2", "n_s1"), [(0, 3), (0, 0), (2, 0)], ids=["s1-only", "no-scenes", "s2-only"]
)
def test_strip_series_of_a_sensor_without_scenes(n_s2: int, n_s1: int) -> None:
    """Before the fix a tile-year without S2 failed with ``cannot reshape array of size 0``."""
    s2, s1, days = _cubes(n_s2, n_s1)
    series = strip_series(s2, s1, days, 2, 5)
    assert series.n_pixels == 3 * W
    assert series.s2_bands.shape == (n_s2, 3 * W, 10) and series.s2_mask.shape == (n_s2, 3 * W)
    assert series.s1_asc.shape == (n_s1, 3 * W, 2) and series.s1_desc.shape == (0, 3 * W, 2)
    n2, n1 = observation_counts(s2, s1)
    assert n2.shape == n1.shape == (H, W)
    assert int(n2.max()) == n_s2 and int(n1.max()) == n_s1


@pytest.mark.parametrize("kind", ["v1.0", "v1.1", "v2"])
@pytest.mark.parametrize(
    ("n_s2", "n_s1"), [(0, 3), (0, 0), (2, 3)], ids=["s1-only", "no-scenes", "both"]
)
def test_each_family_embeds_what_its_rule_allows(kind: str, n_s2: int, n_s1: int) -> None:
    s2, s1, days = _cubes(n_s2, n_s1)
    series = strip_series(s2, s1, days, 0, H)
    model = random_model(tiny(kind), seed=1)
    codes, scales = embed(model, series, seed=0)
    assert codes.shape == (H * W, model.embedding_dim) and scales.shape == (H * W,)
    has_s2 = np.zeros((H, W), bool)
    if n_s2:
        has_s2[:, : W // 2] = True
    has_s1 = np.zeros((H, W), bool)
    if n_s1:
        has_s1[: H // 2] = True
    want = (has_s2 | has_s1) if kind == "v2" else has_s2
    got = np.isfinite(scales).reshape(H, W)
    assert np.array_equal(got, want)
    assert not codes.reshape(H, W, -1)[~want].any()  # not embedded: int8 zeros, scale NaN
    assert np.all(scales[np.isfinite(scales)] > 0)


def test_pixel_series_without_any_step_embeds_nothing() -> None:
    series = PixelSeries.empty(n_pixels=5)
    for kind in ("v1.0", "v1.1", "v2"):
        codes, scales = embed(random_model(tiny(kind), seed=1), series, seed=0)
        assert np.isnan(scales).all() and not codes.any()


# --------------------------------------------------------------------------- through Dagster


def _run_partition(
    tmp_path, archive, catalog: str, loc: str, year: int, s1: str | None, landsat: str | None
):
    """Materialise every asset of one partition from the fixture items of ``catalog``."""
    from dagster import DagsterInstance

    from tessera_assets.config import CatalogSettings, InferenceSettings, PipelineSettings
    from tessera_assets.defs import PIPELINE_JOB, build_definitions
    from tessera_assets.defs.partitions import TILES, partition_key
    from tessera_assets.model.demo_weights import write_demo_checkpoint
    from tessera_assets_tests.stacapi.archive import LOCATIONS

    tile = next(x for x in LOCATIONS if x.name == loc).tile
    model = tmp_path / "demo-v2-nano.pt"
    if not model.exists():
        write_demo_checkpoint(model, family="v2-nano", seed=0)
    settings = PipelineSettings(
        root=str(tmp_path / f"data-{loc}"),
        tile_size=tile.size,
        years=[2023, 2024],
        coarse_resolution=160.0,
        catalog=CatalogSettings(
            kind="geoparquet",
            url=str(archive.parquet[catalog]),
            s2_collection=None,
            s1_collection=s1,
            landsat_collection=landsat,
        ),
        inference=InferenceSettings(
            model_source=str(model), family="v2-nano", batch_size=512, strip_rows=32
        ),
    )
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(TILES.name, [tile.id])
    result = (
        build_definitions(settings)
        .resolve_job_def(PIPELINE_JOB)
        .execute_in_process(
            partition_key=partition_key(tile, year), instance=instance, raise_on_error=False
        )
    )
    return settings, tile, result


@pytest.fixture(scope="module")
def fixture_archive(tmp_path_factory: pytest.TempPathFactory):
    from tessera_assets_tests.stacapi.archive import build_archive

    root = tmp_path_factory.mktemp("cogs")
    return build_archive(root, root.as_uri(), locations=["iowa", "coral-sea"])


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_s1_only_and_landsat_only_partitions_through_dagster(fixture_archive, tmp_path) -> None:
    from tessera_assets.products.registry import open_store

    # OPERA RTC-S1 only (a nasa-cmr-opera run): v2 embeds exactly the pixels with valid S1.
    settings, tile, result = _run_partition(
        tmp_path, fixture_archive, "asf", "iowa", 2024, "OPERA_L2_RTC-S1_V1_1", None
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    emb = open_store("embeddings", settings).read_tile(tile, 2024).compute()
    scales, n_s1 = emb["scales"].values, emb["s1_obs_count"].values
    assert int(emb["s2_obs_count"].values.max()) == 0 and (n_s1 > 0).mean() > 0.2
    assert np.array_equal(np.isfinite(scales), n_s1 > 0)
    meta = result.asset_materializations_for_node("embeddings")[0].metadata
    assert meta["pixels_embedded"].value == int((n_s1 > 0).sum())
    assert "embedded from Sentinel-1 only (v2-nano rule)" in meta["embedding_note"].value

    # Landsat only: nothing feeds the model. The run succeeds, every scale is NaN, and the
    # metadata says why.
    settings, tile, result = _run_partition(
        tmp_path, fixture_archive, "usgs", "coral-sea", 2023, None, "landsat-c2l2-sr"
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    emb = open_store("embeddings", settings).read_tile(tile, 2023).compute()
    assert np.isnan(emb["scales"].values).all() and not emb["embeddings"].values.any()
    meta = result.asset_materializations_for_node("embeddings")[0].metadata
    assert meta["pixels_embedded"].value == 0
    assert "no Sentinel-2 or Sentinel-1 observation" in meta["embedding_note"].value
    record = open_store("embeddings", settings).read_lineage(tile, 2023)
    assert record.model_extra["embedding_note"] == meta["embedding_note"].value
