"""The full TESSERA inference model: two encoders, concat fusion, and the family's reducer."""

from __future__ import annotations

import torch
from torch import nn

from tessera_assets.model.families import DEFAULT_NORM, ModelConfig
from tessera_assets.model.layers import TemporalEncoder


def build_reducer(cfg: ModelConfig) -> nn.Sequential:
    """v1.0: Linear. v1.1: Linear-LN-ReLU-Dropout-Linear. v2: the same plus a non-affine LN.

    Indices match the official ``dim_reducer.{0,1,4}`` keys; the v2 final LayerNorm has no
    parameters, so it adds no key.
    """
    fused = cfg.fused_dim
    if cfg.reducer_hidden is None:
        return nn.Sequential(nn.Linear(fused, cfg.representation_dim))
    hidden = cfg.reducer_hidden
    layers: list[nn.Module] = [
        nn.Linear(fused, hidden),
        nn.LayerNorm(hidden),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(hidden, cfg.representation_dim),
    ]
    if cfg.final_layernorm:
        layers.append(nn.LayerNorm(cfg.representation_dim, elementwise_affine=False))
    return nn.Sequential(*layers)


class TesseraModel(nn.Module):
    """A loaded TESSERA model of any family.

    ``forward(s2, s1)`` takes ``(B, T2, 11)`` and ``(B, T1, 3)`` float32 tensors (z-scored bands,
    raw DOY last) and returns the family's full representation (v1.1: 192-d, v2: 128-d
    LayerNormed). Provenance (``family``, ``source``, ``sha256``, ``norm``, ``is_demo``) lives in
    plain attributes so ``state_dict()`` holds exactly the official keys.
    """

    def __init__(
        self,
        config: ModelConfig,
        *,
        family: str | None = None,
        norm: str | None = None,
        source: str | None = None,
        sha256: str | None = None,
        is_demo: bool = False,
    ) -> None:
        super().__init__()
        self.config = config
        self.family = family or config.family_name()
        self.norm = norm or DEFAULT_NORM[config.kind]
        self.source = source
        self.sha256 = sha256
        self.is_demo = is_demo
        self.demo_info: dict | None = None  # the demo marker entry of the checkpoint, if any
        self.ignored_keys: list[str] = []  # training-only keys skipped on load (projector)
        self.s2_backbone = TemporalEncoder(config.s2, config.pooling)
        self.s1_backbone = TemporalEncoder(config.s1, config.pooling)
        self.dim_reducer = build_reducer(config)
        self.eval()

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def embedding_dim(self) -> int:
        """Width of the stored int8 embedding (128 for every released model)."""
        return self.config.embedding_dim

    @property
    def representation_dim(self) -> int:
        return self.config.representation_dim

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, s2: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        fused = torch.cat((self.s2_backbone(s2), self.s1_backbone(s1)), dim=-1)
        return self.dim_reducer(fused)

    def extra_repr(self) -> str:
        demo = ", DEMO WEIGHTS" if self.is_demo else ""
        return f"family={self.family!r}, norm={self.norm!r}{demo}"
