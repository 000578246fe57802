"""Seeded random TESSERA weights in the official container formats, clearly labelled as such.

Demo checkpoints let the pipeline run end to end without the real weights (CI, laptops). They
carry a top-level ``tessera_assets_demo`` entry that ``load_model`` turns into
``model.is_demo = True``, so their embeddings can never be mistaken for real TESSERA output.
Weights are drawn from a seeded ``torch.Generator``: the same seed gives identical tensors. As in
the golden generator, biases and LayerNorm parameters are non-trivial (not 0 / 1) and cloned
Transformer layers differ, so tests exercise every parameter.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from tessera_assets.model.architecture import TesseraModel
from tessera_assets.model.checkpoint import DEMO_MARKER, write_checkpoint
from tessera_assets.model.families import RELEASED, ModelConfig, canonical_family
from tessera_assets.model.normalisation import resolve_norm_name

DEMO_NOTE = "seeded random weights, not a trained TESSERA model"


def _config_for(family: str | ModelConfig) -> ModelConfig:
    if isinstance(family, ModelConfig):
        return family
    name = canonical_family(family)
    if name not in RELEASED:
        raise ValueError(f"no released size for {family!r}; pass a ModelConfig instead")
    return RELEASED[name]


@torch.no_grad()
def randomise_(model: nn.Module, seed: int) -> nn.Module:
    """Overwrite every parameter deterministically from ``seed``.

    Matrices: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's Linear default scale); LayerNorm
    weights 1 + 0.1·N(0,1) and biases 0.1·N(0,1); every other vector 0.1·N(0,1).
    """
    gen = torch.Generator().manual_seed(seed)
    ln_weights = {
        f"{name}.weight"
        for name, mod in model.named_modules()
        if isinstance(mod, nn.LayerNorm) and mod.elementwise_affine
    }
    for name, param in model.named_parameters():
        shape = param.shape
        if param.ndim >= 2:
            bound = 1.0 / math.sqrt(shape[1])
            value = (torch.rand(shape, generator=gen) * 2 - 1) * bound
        else:
            value = torch.randn(shape, generator=gen) * 0.1
            if name in ln_weights:
                value += 1.0
        param.copy_(value)
    return model


def random_model(
    family: str | ModelConfig = "v2-nano", *, seed: int = 0, norm: str | None = None
) -> TesseraModel:
    """A TesseraModel of a released (or custom) size with seeded random weights.

    ``norm`` picks the v1.1 normalisation set recorded in a written checkpoint ('mpc'/'aws').
    """
    config = _config_for(family)
    model = TesseraModel(config, norm=resolve_norm_name(config.kind, norm))
    return randomise_(model, seed).eval()


def write_demo_checkpoint(
    path: str | Path,
    *,
    family: str | ModelConfig = "v2-nano",
    seed: int = 0,
    norm: str | None = None,
) -> Path:
    """Write seeded random weights as an official-format checkpoint marked as demo weights."""
    model = random_model(family, seed=seed, norm=norm)
    marker = {"seed": int(seed), "family": model.family, "note": DEMO_NOTE}
    return write_checkpoint(model, path, extra={DEMO_MARKER: marker})
