"""TESSERA model families: the facts that differ between them, in one place.

TESSERA is four incompatible model families. Mixing any of their details (pooling head, reducer,
sequence rule, normalisation set, quantisation clamp) gives plausible but wrong embeddings without
any error, so every family-specific constant lives here and everything else looks it up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["v1.0", "v1.1", "v2"]

S2_BANDS = 10
S1_BANDS = 2
#: v1.1 and v2 bucket observation counts up to these lengths (v2 maps 0 to 0, v1.1 to 8).
OBS_CHECKPOINTS: tuple[int, ...] = tuple(range(8, 257, 8))
#: v1.0 draws this many S2 and S1 steps per pixel.
V10_SAMPLE_SIZE = 40
#: v1.0 draws its random steps per DataLoader batch of this many kept pixels (S2 for the whole
#: batch, then S1); replaying the RNG exactly needs the official batch size, not ours.
V10_SAMPLING_BATCH = 1024


@dataclass(frozen=True)
class BackboneConfig:
    """One per-modality temporal Transformer encoder."""

    band_num: int
    latent_dim: int
    num_layers: int
    nhead: int
    dim_feedforward: int

    @property
    def d_model(self) -> int:
        return 4 * self.latent_dim


@dataclass(frozen=True)
class QuantSpec:
    """Per-pixel symmetric int8 quantisation; v1 and v2 differ in scale floor and clamp."""

    scale_floor_before_division: bool  # v1: max(max|x|/127, eps); v2: max(max|x|, eps)/127
    eps: float
    qmin: int
    qmax: int


V1_QUANT = QuantSpec(scale_floor_before_division=True, eps=1e-8, qmin=-128, qmax=127)
V2_QUANT = QuantSpec(scale_floor_before_division=False, eps=1e-12, qmin=-127, qmax=127)
QUANT: dict[Kind, QuantSpec] = {"v1.0": V1_QUANT, "v1.1": V1_QUANT, "v2": V2_QUANT}
V1_CLAMP = (V1_QUANT.qmin, V1_QUANT.qmax)
V2_CLAMP = (V2_QUANT.qmin, V2_QUANT.qmax)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a TESSERA inference model of one family and size."""

    kind: Kind
    s2: BackboneConfig
    s1: BackboneConfig
    representation_dim: int  # width of the forward output
    embedding_dim: int  # width that is quantised and stored (v1.1: first 128 of 192)
    reducer_hidden: int | None  # None: v1.0 single Linear reducer

    @property
    def pooling(self) -> Literal["gru", "attention"]:
        return "attention" if self.kind == "v2" else "gru"

    @property
    def final_layernorm(self) -> bool:
        """v2 ends with a non-affine LayerNorm(128): every embedding has mean 0 and std 1."""
        return self.kind == "v2"

    @property
    def quant(self) -> QuantSpec:
        return QUANT[self.kind]

    @property
    def fused_dim(self) -> int:
        return self.s2.d_model + self.s1.d_model

    def family_name(self) -> str:
        """Public family name; v2 checkpoints whose sizes match no release are 'v2-custom'."""
        if self.kind != "v2":
            return self.kind
        for name, cfg in RELEASED.items():
            if name.startswith("v2-") and cfg == self:
                return name
        return "v2-custom"

    def is_released_size(self) -> bool:
        return any(cfg == self for cfg in RELEASED.values())


def _symmetric(
    kind: Kind,
    latent: int,
    layers: int,
    heads: int,
    ffn: int,
    repr_dim: int,
    emb_dim: int,
    hidden: int | None,
) -> ModelConfig:
    return ModelConfig(
        kind=kind,
        s2=BackboneConfig(S2_BANDS, latent, layers, heads, ffn),
        s1=BackboneConfig(S1_BANDS, latent, layers, heads, ffn),
        representation_dim=repr_dim,
        embedding_dim=emb_dim,
        reducer_hidden=hidden,
    )


#: Released sizes (reference §1.3-§1.5). The reducer hidden width is 4·d_model for v1.1 and v2.
RELEASED: dict[str, ModelConfig] = {
    "v1.0": _symmetric("v1.0", 128, 4, 4, 4096, 128, 128, None),
    "v1.1": _symmetric("v1.1", 192, 4, 4, 2048, 192, 128, 4 * 768),
    "v2-nano": _symmetric("v2", 36, 2, 4, 384, 128, 128, 4 * 144),
    "v2-small": _symmetric("v2", 64, 4, 4, 1024, 128, 128, 4 * 256),
    "v2-medium": _symmetric("v2", 110, 4, 4, 1792, 128, 128, 4 * 440),
    "v2-large": _symmetric("v2", 160, 4, 4, 2560, 128, 128, 4 * 640),
}

FAMILY_NAMES: tuple[str, ...] = (*RELEASED, "v2-custom")

#: Default normalisation set per kind (v1.1 has two; the weights cannot tell which).
DEFAULT_NORM: dict[Kind, str] = {"v1.0": "v1.0", "v1.1": "v1.1-mpc", "v2": "v2"}

_ALIASES = {
    "v1": "v1.0",
    "v1.0-qat": "v1.0",
    "v1_0_qat": "v1.0",
    "v1_0": "v1.0",
    "v1_1": "v1.1",
    "v1.1-qat": "v1.1",
    "nano": "v2-nano",
    "small": "v2-small",
    "medium": "v2-medium",
    "large": "v2-large",
    "v2_nano": "v2-nano",
    "v2_small": "v2-small",
    "v2_medium": "v2-medium",
    "v2_large": "v2-large",
}


def canonical_family(name: str) -> str:
    """Map user spellings ('v1_0_qat', 'nano', 'V2-Medium', 'v2', '2') to a canonical family name.

    The one parser of family strings: everything else calls this (or :func:`kind_of`).
    """
    key = str(name).strip().lower()
    if key[:1].isdigit():
        key = f"v{key}"
    key = _ALIASES.get(key, key)
    if key not in (*FAMILY_NAMES, "v2"):
        raise ValueError(
            f"unknown TESSERA family {name!r} (unknown model family; expected one of "
            f"{[*FAMILY_NAMES, 'v2']})"
        )
    return key


def kind_of(family: str) -> Kind:
    """The behaviour class ('v1.0', 'v1.1' or 'v2') of a family name."""
    fam = canonical_family(family)
    if fam.startswith("v2"):
        return "v2"
    return "v1.0" if fam == "v1.0" else "v1.1"


def is_v2(family: str) -> bool:
    """Whether a family is a v2 one (LayerNormed output, ±127 clamp)."""
    return kind_of(family) == "v2"


def quant_spec(family: str | QuantSpec) -> QuantSpec:
    """The quantiser of a family (a :class:`QuantSpec` passes through)."""
    return family if isinstance(family, QuantSpec) else QUANT[kind_of(family)]


def clamp_for_family(family: str) -> tuple[int, int]:
    """int8 range of a family's quantiser: v1.x [−128, 127], v2 [−127, 127]."""
    spec = quant_spec(family)
    return spec.qmin, spec.qmax
