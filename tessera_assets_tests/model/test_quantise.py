"""Quantiser rules of both families (clamp, scale floor, half-to-even)."""

from __future__ import annotations

import numpy as np
import torch

from tessera_assets.model import quantise
from tessera_assets.products.embeddings import dequantise


def test_v1_and_v2_formulas():
    x = np.array([[1.0, -2.0, 0.5], [0.0, 0.0, 0.0]], np.float32)
    q1, s1 = quantise(x, "v1.1")
    q2, s2 = quantise(x, "v2-medium")
    np.testing.assert_array_equal(s1, np.array([2 / 127, 1e-8], np.float32))
    np.testing.assert_array_equal(s2, np.array([2 / 127, np.float32(1e-12) / 127], np.float32))
    np.testing.assert_array_equal(q1[0], [64, -127, 32])  # 63.5 -> 64, 31.75 -> 32
    np.testing.assert_array_equal(q1[1], [0, 0, 0])
    assert q1.dtype == q2.dtype == np.int8


def test_half_to_even_and_clamps():
    # scale 1/127 * 127 ... build rows so x/scale hits exact .5 values
    row = np.array([[127.0, 0.5, 1.5, 2.5, -0.5, -1.5]], np.float32)
    q, s = quantise(row, "v1.0")
    assert s[0] == 1.0
    np.testing.assert_array_equal(q[0], [127, 0, 2, 2, 0, -2])
    # v1 allows -128 only through the clamp path; v2 clips at -127
    t = torch.tensor([[-1.0, 0.2]])
    assert quantise(t, "v2")[0].min().item() == -127
    assert quantise(t, "v1.0")[0].min().item() == -127


def test_tensor_in_tensor_out_and_dequantise():
    x = torch.randn(4, 128)
    q, s = quantise(x, "v2-nano")
    assert isinstance(q, torch.Tensor) and q.dtype == torch.int8
    back = dequantise(q.numpy(), s.numpy())
    assert np.abs(back - x.numpy()).max() <= s.max().item() / 2 + 1e-7
    nan_rows = dequantise(np.zeros((2, 3), np.int8), np.array([np.nan, 1.0], np.float32))
    assert np.isnan(nan_rows[0]).all() and (nan_rows[1] == 0).all()
