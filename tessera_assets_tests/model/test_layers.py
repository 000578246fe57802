"""Arithmetic of the building blocks: the custom GRU, pooling shortcuts, positional encoding."""

from __future__ import annotations

import math

import torch

from tessera_assets.model.layers import (
    AttentionPooling,
    CustomGRU,
    CustomTemporalAwarePooling,
    positional_encoding,
)


def _stepwise(gru: CustomGRU, x: torch.Tensor) -> torch.Tensor:
    h = x.new_zeros(x.shape[0], x.shape[2])
    outs = []
    for t in range(x.shape[1]):
        h = gru.gru_cell(x[:, t], h)
        outs.append(h)
    return torch.stack(outs, dim=1)


def _randomised_gru(dim: int, seed: int = 0) -> CustomGRU:
    torch.manual_seed(seed)
    gru = CustomGRU(dim)
    with torch.no_grad():
        for p in gru.parameters():
            p.normal_(0, 0.3)
    return gru


def test_fused_gru_loop_equals_reference_cell():
    gru = _randomised_gru(16)
    x = torch.randn(5, 23, 16)
    with torch.inference_mode():
        ref = _stepwise(gru, x)
        torch.testing.assert_close(gru(x), ref, rtol=0, atol=2e-6)
        gru.fused = False
        torch.testing.assert_close(gru(x), ref, rtol=0, atol=0)


def test_reset_gate_is_applied_before_w_hh():
    """The trained GRU is not nn.GRU: with the same weights, nn.GRU gives different outputs."""
    gru = _randomised_gru(8, seed=1)
    c = gru.gru_cell
    ref = torch.nn.GRU(8, 8, batch_first=True)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(torch.cat([c.W_ir.weight, c.W_iz.weight, c.W_ih.weight]))
        ref.weight_hh_l0.copy_(torch.cat([c.W_hr.weight, c.W_hz.weight, c.W_hh.weight]))
        ref.bias_ih_l0.copy_(torch.cat([c.b_r, c.b_z, c.b_h]))
        ref.bias_hh_l0.zero_()
    x = torch.randn(3, 10, 8)
    with torch.inference_mode():
        ours, theirs = gru(x), ref(x)[0]
    assert (ours - theirs).abs().max() > 1e-3
    # one explicit step of the documented formula
    h = torch.randn(3, 8)
    with torch.inference_mode():
        r = torch.sigmoid(c.W_ir(x[:, 0]) + c.W_hr(h) + c.b_r)
        z = torch.sigmoid(c.W_iz(x[:, 0]) + c.W_hz(h) + c.b_z)
        n = torch.tanh(c.W_ih(x[:, 0]) + c.W_hh(r * h) + c.b_h)
        torch.testing.assert_close(c(x[:, 0], h), (1 - z) * h + z * n)


def test_pooling_shortcuts():
    for pool in (CustomTemporalAwarePooling(6), AttentionPooling(6)):
        with torch.inference_mode():
            assert torch.equal(pool(torch.randn(4, 0, 6)), torch.zeros(4, 6))
            x = torch.randn(4, 1, 6)
            assert torch.equal(pool(x), x[:, 0])
            y = pool(torch.randn(4, 5, 6))
            assert y.shape == (4, 6)


def test_pooling_weights_apply_to_inputs_not_context():
    pool = AttentionPooling(3)
    with torch.no_grad():
        pool.query.weight.zero_()
        pool.query.bias.zero_()
    x = torch.randn(2, 4, 3)
    with torch.inference_mode():
        torch.testing.assert_close(pool(x), x.mean(dim=1))


def test_positional_encoding_is_float32_official_formula():
    doy = torch.tensor([[1.0, 180.0, 366.0]])
    d = 144
    pe = positional_encoding(doy, d)
    assert pe.dtype == torch.float32 and pe.shape == (1, 3, d)
    div = torch.exp(torch.arange(0, d, 2).float() * (-math.log(10000.0) / d))
    ang = doy.unsqueeze(-1) * div
    assert torch.equal(pe[..., 0::2], torch.sin(ang))
    assert torch.equal(pe[..., 1::2], torch.cos(ang))


def test_positional_encoding_ignores_bf16_autocast():
    doy = torch.tensor([[257.0, 301.0, 365.0]])
    ref = positional_encoding(doy, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pe = positional_encoding(doy, 64)
    assert pe.dtype == torch.float32
    assert torch.equal(pe, ref)
