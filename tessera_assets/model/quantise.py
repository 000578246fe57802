"""Per-pixel symmetric int8 quantisation, exactly as each family's official code does it.

v1.x: ``scale = max(max|x| / 127, 1e-8)``, ``q = clamp(round(x / scale), -128, 127)``.
v2:   ``scale = max(max|x|, 1e-12) / 127``, ``q = clip(round(x / scale), -127, 127)``.
Rounding is half-to-even in both (torch.round / np.round). All arithmetic is float32, and the
division is a true division (not a multiply by 1/scale), so results match bit for bit; it runs
on whatever device the tensor is on, so a GPU ships only 132 bytes per pixel back to the host.
v1.1 quantises only the first 128 of its 192 dims: pass ``x[:, :model.embedding_dim]``.
The inverse belongs to the stored layout (NaN/+inf scales): ``products.embeddings.dequantise``.
"""

from __future__ import annotations

import numpy as np
import torch

from tessera_assets.model.families import QuantSpec, quant_spec


def quantise_torch(x: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, D) float -> (int8 (B, D), float32 scale (B,)), on x's device."""
    x = x.float()
    peak = x.abs().amax(dim=1)
    if spec.scale_floor_before_division:
        scale = torch.clamp(peak / 127.0, min=spec.eps)
    else:
        scale = torch.clamp(peak, min=spec.eps) / 127.0
    q = torch.clamp(torch.round(x / scale[:, None]), spec.qmin, spec.qmax).to(torch.int8)
    return q, scale


def quantise(
    x: np.ndarray | torch.Tensor, family: str | QuantSpec
) -> tuple[np.ndarray, np.ndarray] | tuple[torch.Tensor, torch.Tensor]:
    """Quantise rows of ``x`` with the family's rule; numpy in -> numpy out, tensor in -> tensor.

    ``family`` is a family name ('v1.0', 'v1.1', 'v2-nano', ...) or a :class:`QuantSpec`.
    """
    spec = quant_spec(family)
    if isinstance(x, torch.Tensor):
        return quantise_torch(x, spec)
    arr = np.asarray(x, dtype=np.float32)
    q, scale = quantise_torch(torch.from_numpy(np.ascontiguousarray(arr)), spec)
    return q.numpy(), scale.numpy()
