"""The inference engine: batching invariance, no-data rows, progress, bf16 path, demo weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tessera_assets.model import (
    PixelSeries,
    embed,
    embed_representation,
    iter_embeddings,
    load_model,
    random_model,
    write_demo_checkpoint,
)
from tessera_assets_tests.model.helpers import random_series
from tessera_assets_tests.model.test_checkpoint import tiny


@pytest.fixture(scope="module", params=["v1.0", "v1.1", "v2"])
def model(request):
    return random_model(tiny(request.param, latent=8, layers=2, ffn=32), seed=2)


def test_output_contract(model):
    series = random_series(60, seed=1)
    codes, scales = embed(model, series, seed=0)
    assert codes.shape == (60, model.embedding_dim) and codes.dtype == np.int8
    assert scales.shape == (60,) and scales.dtype == np.float32
    embedded = ~np.isnan(scales)
    assert not embedded[0]  # all-zero S2: never embedded
    assert np.all(codes[~embedded] == 0)
    assert np.all(scales[embedded] > 0)
    assert embedded[2:].all()
    if model.kind != "v2":
        assert embedded[1]  # cloudy-only S2 with non-zero values is embedded by v1.x
    else:
        assert not embedded[1]  # v2: no clear S2 and no S1


def test_batch_size_does_not_change_results(model):
    series = random_series(80, seed=2)
    _, s_a, rep_a = embed_representation(model, series, batch_size=1024, seed=3)
    _, s_b, rep_b = embed_representation(model, series, batch_size=5, seed=3)
    np.testing.assert_array_equal(np.isnan(s_a), np.isnan(s_b))
    ok = ~np.isnan(s_a)
    np.testing.assert_allclose(rep_a[ok], rep_b[ok], rtol=0, atol=2e-6)


def test_token_budget_split_does_not_change_results(model):
    series = random_series(60, seed=10)
    _, s_a, rep_a = embed_representation(model, series, seed=3, max_tokens_per_forward=None)
    _, s_b, rep_b = embed_representation(model, series, seed=3, max_tokens_per_forward=50)
    ok = ~np.isnan(s_a)
    np.testing.assert_array_equal(ok, ~np.isnan(s_b))
    np.testing.assert_allclose(rep_a[ok], rep_b[ok], rtol=0, atol=2e-6)


def test_forward_split_chunks(model):
    from tessera_assets.model import build_groups_for, forward_split

    group = max(build_groups_for(model, random_series(40, seed=11), batch_size=None), key=len)
    whole = forward_split(model, group.s2, group.s1, max_tokens=None)
    tokens = group.s2.shape[1] + group.s1.shape[1]
    split = forward_split(model, group.s2, group.s1, max_tokens=2 * tokens)
    torch.testing.assert_close(split, whole, rtol=0, atol=2e-6)
    tiny_budget = forward_split(model, group.s2, group.s1, max_tokens=1)  # still 1 pixel/call
    torch.testing.assert_close(tiny_budget, whole, rtol=0, atol=2e-6)


def test_progress_reports_embedded_pixels(model):
    series = random_series(50, seed=4)
    calls = []
    _, scales = embed(
        model, series, batch_size=8, seed=0, progress=lambda d, t: calls.append((d, t))
    )
    total = int((~np.isnan(scales)).sum())
    assert total == (48 if model.kind == "v2" else 49)
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert len(calls) > 3


def test_iter_embeddings_is_lazy_and_bounded(model):
    series = random_series(40, seed=5)
    batches = list(iter_embeddings(model, series, batch_size=4, seed=0))
    assert all(len(b.pixel_index) <= 4 for b in batches)
    seen = np.concatenate([b.pixel_index for b in batches])
    assert len(seen) == len(np.unique(seen))


def test_all_nodata_tile(model):
    series = PixelSeries.empty(5, t2=4, ta=3, td=3)
    codes, scales = embed(model, series)
    assert np.all(codes == 0) and np.all(np.isnan(scales))


def test_bf16_autocast_path_stays_close(model):
    series = random_series(30, seed=6)
    _, s32, r32 = embed_representation(model, series, seed=1, precision="fp32")
    _, s16, r16 = embed_representation(model, series, seed=1, precision="bf16")
    ok = ~np.isnan(s32)
    np.testing.assert_array_equal(ok, ~np.isnan(s16))
    a, b = r32[ok], r16[ok]
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99
    assert not np.array_equal(a, b)  # the bf16 path really ran
    with pytest.raises(ValueError, match="precision"):
        embed(model, series, precision="fp16")


def test_v1_seed_reproducibility(model):
    series = random_series(20, seed=7)
    a = embed(model, series, seed=5)
    b = embed(model, series, seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    if model.kind == "v1.0":
        c = embed(model, series, seed=6)
        assert not np.array_equal(a[0], c[0])


def test_demo_checkpoint_is_deterministic_and_labelled(tmp_path):
    a = write_demo_checkpoint(tmp_path / "a.pt", family="v2-nano", seed=0)
    b = write_demo_checkpoint(tmp_path / "b.pt", family="v2-nano", seed=0)
    c = write_demo_checkpoint(tmp_path / "c.pt", family="v2-nano", seed=1)
    assert a.read_bytes() == b.read_bytes()
    ma, mb, mc = load_model(a), load_model(b), load_model(c)
    assert ma.is_demo and ma.demo_info["seed"] == 0 and "not a trained" in ma.demo_info["note"]
    assert ma.family == "v2-nano" and ma.sha256 == mb.sha256 != mc.sha256
    for k, v in ma.state_dict().items():
        assert torch.equal(v, mb.state_dict()[k])
    assert any(not torch.equal(v, mc.state_dict()[k]) for k, v in ma.state_dict().items())
    # biases and LayerNorm parameters are non-trivial
    sd = ma.state_dict()
    ln_w = sd["s2_backbone.transformer_encoder.layers.0.norm1.weight"]
    assert not torch.allclose(ln_w, torch.ones_like(ln_w))
    assert sd["dim_reducer.0.bias"].abs().sum() > 0
    assert not torch.equal(
        sd["s2_backbone.transformer_encoder.layers.0.linear1.weight"],
        sd["s2_backbone.transformer_encoder.layers.1.linear1.weight"],
    )
    assert "DEMO" in repr(ma)
    codes, scales = embed(ma, random_series(10, seed=8))
    assert (~np.isnan(scales)).sum() == 8


def test_demo_checkpoint_v11_records_norm(tmp_path):
    path = write_demo_checkpoint(
        tmp_path / "v11.pt", family=tiny("v1.1"), seed=3, norm="aws"
    )
    model = load_model(path)
    assert model.is_demo and model.norm == "v1.1-aws"


def test_prefetch_preserves_order_errors_and_early_exit():
    import threading

    from tessera_assets.model.embed import prefetch

    assert list(prefetch(iter(range(50)), 3)) == list(range(50))
    assert list(prefetch(iter(range(5)), 0)) == list(range(5))

    def failing():
        yield 1
        raise RuntimeError("boom")

    it = prefetch(failing(), 2)
    assert next(it) == 1
    with pytest.raises(RuntimeError, match="boom"):
        next(it)

    gen = prefetch(iter(range(10_000)), 2)
    assert next(gen) == 0
    gen.close()  # the producer thread must stop instead of blocking forever
    assert not any(t.name == "tessera-prefetch" and t.is_alive() for t in threading.enumerate())


def test_prefetched_embedding_matches_plain(model):
    series = random_series(30, seed=9)
    a = list(iter_embeddings(model, series, batch_size=4, seed=0, prefetch_batches=0))
    b = list(iter_embeddings(model, series, batch_size=4, seed=0, prefetch_batches=2))
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.pixel_index, y.pixel_index)
        np.testing.assert_array_equal(x.int8, y.int8)
