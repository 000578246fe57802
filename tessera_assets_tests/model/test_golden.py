"""Golden tests: our loader, sequence building, forward pass, quantiser and end-to-end embed
against outputs of the official TESSERA code (see shared/fixtures/golden/README.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tessera_assets.model import (
    PixelSeries,
    build_groups_for,
    embed_representation,
    load_model,
    quantise,
)
from tessera_assets.model.checkpoint import read_container
from tessera_assets.model.families import V10_SAMPLE_SIZE
from tessera_assets_tests.model.conftest import GOLDEN_FAMILIES, load_npz

CASES = {
    "v1_0_qat": ["main", "nosar"],
    "v1_1": ["main", "aws", "nosar"],
    "v2_nano": ["main", "nosar"],
}
PARAMS = [(folder, case) for folder, cases in CASES.items() for case in cases]
FP32_ATOL = 1e-5
TIE_WINDOW = 1e-3  # in quanta: |x/scale - (k + 0.5)| below this may legitimately round either way


@pytest.fixture(scope="module")
def models(golden_dir):
    """One loaded model per (folder, norm), shared by the module."""
    cache = {}

    def get(folder: str, norm: str | None):
        key = (folder, norm)
        if key not in cache:
            path = golden_dir / folder / "checkpoint.pt"
            if not path.is_file():
                pytest.skip(f"golden family {folder} absent")
            cache[key] = load_model(path, norm=norm)
        return cache[key]

    return get


@pytest.fixture(params=PARAMS, ids=[f"{f}-{c}" for f, c in PARAMS])
def case(request, golden_dir):
    folder, name = request.param
    if not (golden_dir / folder / "meta.json").is_file():
        pytest.skip(f"golden family {folder} absent from {golden_dir}")
    from tessera_assets_tests.model.conftest import GoldenFamily

    fam = GoldenFamily(golden_dir, folder)
    found = {c["name"]: c for c in fam.cases()}
    assert name in found, f"meta.json of {folder} has no case {name!r}"
    c = dict(found[name])
    c["folder"] = folder
    c["family"] = fam.family
    return c


def test_static_case_list_covers_meta(golden):
    assert sorted(c["name"] for c in golden.cases()) == sorted(CASES[golden.folder])


# --------------------------------------------------------------------------- loader


def test_loader_uses_every_inference_tensor(golden):
    model = load_model(golden.checkpoint, norm="mpc" if golden.folder == "v1_1" else None)
    assert model.family == golden.family
    assert model.source == str(golden.checkpoint)
    assert model.sha256 == golden.meta["files"]["checkpoint.pt"]["sha256"]
    assert not model.is_demo
    container = read_container(golden.checkpoint)
    raw = container.get("model") or container.get("model_state_dict")
    used = {k: v for k, v in raw.items() if not k.startswith("projector.")}
    ours = model.state_dict()
    assert set(ours) == set(used)
    for key, value in used.items():
        assert torch.equal(ours[key], value), key
    ignored = sorted(k for k in raw if k.startswith("projector."))
    assert sorted(model.ignored_keys) == ignored
    expected_used = golden.meta["checkpoint"].get("num_tensors_used_by_loader")
    if expected_used is not None:
        assert len(ours) == expected_used
    saved = golden.meta["saved_model_hyperparameters"]
    assert model.config.s2.d_model == saved.get("d_model", 4 * saved["latent_dim"])
    assert model.config.s2.nhead == saved["nhead"]


def test_state_dict_round_trips_into_official_format(golden, tmp_path):
    from tessera_assets.model import write_checkpoint

    model = load_model(golden.checkpoint, norm="mpc" if golden.folder == "v1_1" else None)
    out = write_checkpoint(model, tmp_path / "copy.pt")
    original = read_container(golden.checkpoint)
    copy = read_container(out)
    assert set(copy) == set(original)
    key = "model" if "model" in original else "model_state_dict"
    orig_state = {k: v for k, v in original[key].items() if not k.startswith("projector.")}
    assert set(copy[key]) == set(orig_state)
    for k, v in orig_state.items():
        assert torch.equal(copy[key][k], v)
    if "args" in original:
        assert copy["args"] == original["args"]
    if "config" in original:
        for k, v in original["config"].items():
            assert copy["config"][k] == v, k


# --------------------------------------------------------------------------- forward


def test_forward_matches_official(case, models):
    model = models(case["folder"], case["norm"])
    mi = load_npz(case["model_inputs"])
    out = load_npz(case["outputs"])
    n_groups = int(mi["num_groups"])
    assert n_groups > 0
    covered = []
    with torch.inference_mode():
        for g in range(n_groups):
            rep = model(torch.from_numpy(mi[f"group{g}_s2"]), torch.from_numpy(mi[f"group{g}_s1"]))
            idx = mi[f"group{g}_pixel_index"]
            np.testing.assert_allclose(
                rep.numpy(),
                out["embedding_fp32"][idx],
                rtol=0,
                atol=FP32_ATOL,
                err_msg=f"group {g}",
            )
            covered.extend(idx.tolist())
    assert sorted(covered) == sorted(np.flatnonzero(out["computed"]).tolist())


# --------------------------------------------------------------------------- sequences


def _max_ulp(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape and a.dtype == b.dtype == np.float32
    if a.size == 0:
        return 0
    assert np.array_equal(np.signbit(a), np.signbit(b)) or np.allclose(a, b, atol=0)
    ai, bi = a.view(np.int32).astype(np.int64), b.view(np.int32).astype(np.int64)
    return int(np.abs(ai - bi).max())


def test_sequence_building_matches_official(case):
    mi = load_npz(case["model_inputs"])
    series = PixelSeries.from_npz(case["inputs"])
    seed = case["seed"]
    if case["family"] == "v1.0":
        assert seed is not None and int(mi["np_random_seed"]) == seed
    groups = list(
        build_groups_for(
            case["family"], series, batch_size=None, seed=seed, norm=case["norm"], official=True
        )
    )
    assert len(groups) == int(mi["num_groups"])
    if "group_bins" in mi:
        assert [list(g.bins) for g in groups] == mi["group_bins"].tolist()
    else:
        assert case["family"] == "v1.0"
        assert int(mi["sample_size_s2"]) == int(mi["sample_size_s1"]) == V10_SAMPLE_SIZE
    if "data_source" in mi:
        assert str(mi["data_source"]) == case["norm"]
    for g, grp in enumerate(groups):
        np.testing.assert_array_equal(grp.pixel_index, mi[f"group{g}_pixel_index"])
        np.testing.assert_array_equal(grp.s2_time_index, mi[f"group{g}_s2_time_index"])
        np.testing.assert_array_equal(grp.s1_time_index, mi[f"group{g}_s1_time_index"])
        assert _max_ulp(grp.s2, mi[f"group{g}_s2"]) <= 1, f"group {g} s2"
        assert _max_ulp(grp.s1, mi[f"group{g}_s1"]) <= 1, f"group {g} s1"


def test_group_bins_match_meta(golden):
    for case in golden.meta["cases"]:
        if "group_bins_s2_s1" not in case:
            continue
        series = PixelSeries.from_npz(golden.root / case["inputs"])
        groups = build_groups_for(
            golden.family, series, batch_size=None, norm=case.get("data_source"), official=True
        )
        assert [list(g.bins) for g in groups] == case["group_bins_s2_s1"]


# --------------------------------------------------------------------------- quantiser


def test_quantiser_reproduces_official_codes_exactly(case):
    out = load_npz(case["outputs"])
    computed = out["computed"]
    width = out["embedding_int8"].shape[1]
    q, scale = quantise(out["embedding_fp32"][computed][:, :width], case["family"])
    np.testing.assert_array_equal(q, out["embedding_int8"][computed])
    np.testing.assert_array_equal(scale, out["scales"][computed])
    assert q.dtype == np.int8 and scale.dtype == np.float32


# --------------------------------------------------------------------------- end to end


def test_embed_end_to_end(case, models):
    model = models(case["folder"], case["norm"])
    series = PixelSeries.from_npz(case["inputs"])
    out = load_npz(case["outputs"])
    codes, scales, rep = embed_representation(model, series, seed=case["seed"])
    computed = out["computed"]
    embedded = ~np.isnan(scales)

    # which pixels are embedded: the official rule, except v1.1 all-zero-S2 pixels (our store
    # contract) which must come back as no-data
    s2_has_data = np.any(series.s2_bands != 0, axis=(0, 2))
    expected = computed & (s2_has_data if case["family"] == "v1.1" else True)
    np.testing.assert_array_equal(embedded, expected)
    assert np.all(codes[~embedded] == 0)
    assert np.all(np.isnan(rep[~embedded]))

    e = embedded
    np.testing.assert_allclose(rep[e], out["embedding_fp32"][e], rtol=0, atol=FP32_ATOL)
    np.testing.assert_allclose(scales[e], out["scales"][e], rtol=1e-6, atol=0)

    ref_codes = out["embedding_int8"][e].astype(np.int16)
    diff = codes[e].astype(np.int16) - ref_codes
    if np.any(diff):
        width = ref_codes.shape[1]
        x = out["embedding_fp32"][e][:, :width] / out["scales"][e][:, None]
        near_tie = np.abs(np.abs(x - np.floor(x)) - 0.5) < TIE_WINDOW
        assert np.all(np.abs(diff) <= 1)
        assert np.all(near_tie[diff != 0]), "int8 mismatch away from a rounding tie"


def test_golden_family_names_known():
    from tessera_assets.model.families import FAMILY_NAMES

    assert set(GOLDEN_FAMILIES.values()) <= set(FAMILY_NAMES)
