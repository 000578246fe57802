"""Building blocks of the TESSERA per-modality encoders.

Module and parameter names mirror the official checkpoints exactly (``embedding.0``,
``transformer_encoder.layers.{i}``, ``attn_pool.temporal_context.gru_cell.W_ir`` ...), so
``state_dict()`` round-trips into the official loaders.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from tessera_assets.model.families import BackboneConfig


def positional_encoding(doy: torch.Tensor, d_model: int) -> torch.Tensor:
    """Sinusoidal encoding with the day of year as position, in float32 like the official code.

    Evaluating it in float64 moves v2 outputs by >1e-5 (golden README), so the arithmetic is
    pinned: ``div = exp(arange(0, d, 2) * (-ln 10000 / d))`` then ``doy * div`` then sin/cos, all
    float32, interleaved as pe[2k] = sin, pe[2k+1] = cos. Autocast is disabled here so bf16
    inference never rounds DOY (bf16 cannot hold integers above 256).
    """
    with torch.autocast(device_type=doy.device.type, enabled=False):
        doy = doy.float()
        div = torch.exp(
            torch.arange(0, d_model, 2, dtype=torch.float32, device=doy.device)
            * (-math.log(10000.0) / d_model)
        )
        angles = doy.unsqueeze(-1) * div
        return torch.stack((torch.sin(angles), torch.cos(angles)), dim=-1).flatten(-2)


class CustomGRUCell(nn.Module):
    """The hand-written GRU cell TESSERA v1.x was trained with.

    Unlike ``nn.GRU`` the reset gate multiplies h *before* W_hh:
    ``n = tanh(W_ih x + W_hh (r * h) + b_h)``. Substituting ``nn.GRU`` costs ~0.3 % cosine.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        for name in ("W_ir", "W_iz", "W_ih", "W_hr", "W_hz", "W_hh"):
            setattr(self, name, nn.Linear(dim, dim, bias=False))
        self.b_r = nn.Parameter(torch.zeros(dim))
        self.b_z = nn.Parameter(torch.zeros(dim))
        self.b_h = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One step, written exactly as the reference formula (used to test the fast loop)."""
        r = torch.sigmoid(self.W_ir(x) + self.W_hr(h) + self.b_r)
        z = torch.sigmoid(self.W_iz(x) + self.W_hz(h) + self.b_z)
        n = torch.tanh(self.W_ih(x) + self.W_hh(r * h) + self.b_h)
        return (1 - z) * h + z * n


class CustomGRU(nn.Module):
    """Runs :class:`CustomGRUCell` over time from h0 = 0, returning every hidden state."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gru_cell = CustomGRUCell(dim)
        self.fused = True  # False: step the reference cell (for tests and benchmarks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_fused(x) if self.fused else self.forward_reference(x)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """The official structure: six separate matmuls per step."""
        h = x.new_zeros(x.shape[0], x.shape[2])
        out = x.new_empty(x.shape)
        for step in range(x.shape[1]):
            h = self.gru_cell(x[:, step], h)
            out[:, step] = h
        return out

    def forward_fused(self, x: torch.Tensor) -> torch.Tensor:
        """Same arithmetic as stepping the cell, restructured for speed.

        The input projections of all time steps are one matmul; per step the r and z hidden
        projections are one fused matmul, so only two small matmuls remain in the (inherently
        sequential) loop. Results differ from the step-by-step cell only by float summation order.
        """
        cell = self.gru_cell
        b, t, d = x.shape
        w_in = torch.cat((cell.W_ir.weight, cell.W_iz.weight, cell.W_ih.weight), dim=0)
        b_in = torch.cat((cell.b_r, cell.b_z, cell.b_h))
        gates_x = F.linear(x, w_in, b_in)  # (B, T, 3d): W_i* x + b_*
        w_rz = torch.cat((cell.W_hr.weight, cell.W_hz.weight), dim=0).t()
        w_hh = cell.W_hh.weight.t()
        out = x.new_empty(b, t, d)
        h = x.new_zeros(b, d)
        for step in range(t):
            gx = gates_x[:, step]
            rz = torch.sigmoid(torch.addmm(gx[:, : 2 * d], h, w_rz))
            r, z = rz[:, :d], rz[:, d:]
            n = torch.tanh(torch.addmm(gx[:, 2 * d :], r * h, w_hh))
            h = torch.lerp(h, n.to(h.dtype), z.to(h.dtype))  # (1 - z) * h + z * n
            out[:, step] = h
        return out


class CustomTemporalAwarePooling(nn.Module):
    """v1.x pooling: GRU context -> LayerNorm -> query softmax over T, applied to x itself."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(dim, 1)
        self.temporal_context = CustomGRU(dim)
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 0:
            return x.new_zeros(x.shape[0], x.shape[2])
        if x.shape[1] == 1:
            return x[:, 0]
        context = self.layer_norm(self.temporal_context(x))
        weights = torch.softmax(self.query(context), dim=1)
        return (weights * x).sum(dim=1)


class AttentionPooling(nn.Module):
    """v2 pooling: a single learned query, softmax over T, weighted sum of x."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 0:
            return x.new_zeros(x.shape[0], x.shape[2])
        if x.shape[1] == 1:
            return x[:, 0]
        weights = torch.softmax(self.query(x), dim=1)
        return (weights * x).sum(dim=1)


class TemporalEncoder(nn.Module):
    """Per-modality encoder: band MLP + DOY encoding -> post-LN Transformer -> temporal pooling.

    Input ``(B, T, band_num + 1)``: z-scored bands, then the raw day of year (kept float32).
    """

    def __init__(self, cfg: BackboneConfig, pooling: str) -> None:
        super().__init__()
        d = cfg.d_model
        self.d_model = d
        self.embedding = nn.Sequential(nn.Linear(cfg.band_num, d), nn.ReLU(), nn.Linear(d, d))
        layer = nn.TransformerEncoderLayer(
            d_model=d,
            nhead=cfg.nhead,
            dim_feedforward=cfg.dim_feedforward,
            dropout=0.1,
            activation="relu",
            batch_first=True,
            norm_first=False,
        )
        self.transformer_encoder = nn.TransformerEncoder(
            layer, num_layers=cfg.num_layers, enable_nested_tensor=False
        )
        if pooling == "gru":
            self.attn_pool: nn.Module = CustomTemporalAwarePooling(d)
        else:
            self.attn_pool = AttentionPooling(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bands, doy = x[..., :-1], x[..., -1]
        h = self.embedding(bands) + positional_encoding(doy, self.d_model)
        h = self.transformer_encoder(h)
        return self.attn_pool(h)
