"""Reading and writing official TESSERA checkpoint containers.

Containers (reference §1): v1.0 QAT ``{'model_state_dict' | 'model_state': sd}`` with the training
projector inside; v1.1 the same plus ``'config'``; v2 students ``{'model': sd, 'args': {...}}``.
The family is detected from the container and cross-checked against the key pattern (custom GRU
or not, reducer layout); hyperparameters come from args/config and tensor shapes, so reduced-size
checkpoints in the official format load too. v1.x head counts are not recoverable from shapes and
default to 4, as in every released v1.x model.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tessera_assets.model.families import (
    OBS_CHECKPOINTS,
    S1_BANDS,
    S2_BANDS,
    BackboneConfig,
    Kind,
    ModelConfig,
    canonical_family,
    kind_of,
)

DEMO_MARKER = "tessera_assets_demo"
IGNORED_PREFIXES = ("projector.", "segmented_matryoshka_projector.")
V1_DEFAULT_HEADS = 4
_LAYER_RE = re.compile(r"transformer_encoder\.layers\.(\d+)\.")


class CheckpointError(ValueError):
    """The file is not a checkpoint of a supported TESSERA family, or contradicts its arguments."""


class CheckpointKeyError(CheckpointError):
    """State-dict keys do not match the model: lists the missing and unexpected names."""

    def __init__(self, missing: list[str], unexpected: list[str], family: str) -> None:
        self.missing, self.unexpected = missing, unexpected
        super().__init__(
            f"checkpoint does not match the {family} model: "
            f"{len(missing)} missing key(s) {missing}; {len(unexpected)} unexpected key(s) "
            f"{unexpected}"
        )


@dataclass
class ParsedCheckpoint:
    """A container reduced to what the loader needs."""

    kind: Kind
    state: dict[str, torch.Tensor]
    config: ModelConfig
    meta: dict[str, Any] = field(default_factory=dict)  # 'args' / 'config' / demo marker
    ignored_keys: list[str] = field(default_factory=list)

    @property
    def family(self) -> str:
        return self.config.family_name()


def read_container(path: str | Path, *, allow_pickle: bool = False) -> dict[str, Any]:
    """``torch.load`` on CPU (memory-mapped when the format allows); only tensors and plain
    containers unless ``allow_pickle`` (which runs arbitrary pickled code: trusted files only)."""
    safe = not allow_pickle
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=safe, mmap=True)
        except RuntimeError:  # legacy (non-zip) serialisation cannot be memory-mapped
            obj = torch.load(path, map_location="cpu", weights_only=safe)
    except Exception as exc:
        damage = _damage(path, exc)
        if damage:
            raise CheckpointError(damage) from exc
        if allow_pickle:
            raise
        raise CheckpointError(
            f"{path} could not be read with torch.load(weights_only=True): {exc}. "
            "If you trust the file, pass allow_pickle=True."
        ) from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict")
    return obj


_ZIP, _PICKLE = b"PK\x03\x04", b"\x80"


def _damage(path: str | Path, exc: Exception) -> str | None:
    """One line for a file torch cannot open at all (random bytes, a truncated download), or
    None. Said apart from a refused pickle because torch's own message then suggests
    ``weights_only=False``, which cannot help and would unpickle untrusted bytes."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith((_ZIP, _PICKLE)):
        return (f"{path} is not a PyTorch checkpoint (it starts with {head!r}, neither a "
                "torch.save archive nor a pickle): a corrupt or wrong file")
    if head == _ZIP and not zipfile.is_zipfile(path):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"{path} is a damaged torch.save archive (truncated or corrupt): {first}"
    return None


def normalise_keys(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Strip ``_orig_mod.`` (torch.compile) and drop training-only projector keys."""
    kept: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for key, value in state.items():
        key = key.replace("_orig_mod.", "")
        if key.startswith(IGNORED_PREFIXES):
            ignored.append(key)
        else:
            kept[key] = value
    return kept, ignored


def _split_container(obj: dict[str, Any]) -> tuple[dict[str, Any], Kind | None, dict[str, Any]]:
    """(raw state dict, family implied by the container or None, metadata)."""
    meta = {k: obj[k] for k in ("args", "config", DEMO_MARKER) if k in obj}
    if "encoder_state_dict" in obj and "arch" in obj:
        raise CheckpointError(
            "this is the v2 2B teacher checkpoint; it is not a deployment model and is not "
            "supported (use a v2 student: nano/small/medium/large)"
        )
    if "model" in obj and "args" in obj:
        return obj["model"], "v2", meta
    for key in ("model_state_dict", "model_state"):
        if key in obj:
            return obj[key], ("v1.1" if "config" in obj else None), meta
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, None, meta
    raise CheckpointError(
        f"unrecognised checkpoint container with top-level keys {sorted(obj)[:12]}; expected "
        "'model'+'args' (v2), 'model_state_dict'+'config' (v1.1) or 'model_state_dict' (v1.0)"
    )


def kind_from_keys(state: dict[str, torch.Tensor]) -> Kind:
    """Family implied by the key pattern alone."""
    keys = state.keys()
    if any(".attn_pool.temporal_context.weight_ih_l0" in k for k in keys):
        raise CheckpointError(
            "checkpoint uses a standard nn.GRU pooling (v1.0 early fp32 model); only the v1.0 "
            "QAT, v1.1 and v2 families are supported"
        )
    custom_gru = any(".attn_pool.temporal_context.gru_cell." in k for k in keys)
    reducer = {int(k.split(".")[1]) for k in keys if k.startswith("dim_reducer.")}
    if custom_gru and reducer == {0}:
        return "v1.0"
    if reducer == {0, 1, 4}:
        return "v1.1" if custom_gru else "v2"
    raise CheckpointError(
        "cannot tell the TESSERA family from the state dict: "
        f"custom GRU pooling={custom_gru}, dim_reducer layers={sorted(reducer)}"
    )


def _backbone_config(
    state: dict[str, torch.Tensor], prefix: str, band_num: int, nhead: int
) -> BackboneConfig:
    try:
        emb = state[f"{prefix}.embedding.0.weight"]
        ffn = state[f"{prefix}.transformer_encoder.layers.0.linear1.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(f"checkpoint lacks {exc.args[0]}; cannot infer sizes") from None
    d_model, bands = emb.shape
    if bands != band_num or d_model % 4:
        raise CheckpointError(f"{prefix}.embedding.0.weight has unexpected shape {tuple(emb.shape)}")
    layers = {int(m.group(1)) for k in state if k.startswith(prefix) and (m := _LAYER_RE.search(k))}
    if d_model % nhead:
        raise CheckpointError(f"{prefix}: d_model {d_model} is not divisible by nhead {nhead}")
    return BackboneConfig(band_num, d_model // 4, len(layers), nhead, int(ffn))


def _check_declared(declared: dict[str, Any], inferred: dict[str, int], source: str) -> None:
    for name, value in inferred.items():
        if name in declared and declared[name] is not None and int(declared[name]) != value:
            raise CheckpointError(
                f"checkpoint {source}[{name!r}] = {declared[name]} contradicts the tensor "
                f"shapes ({value})"
            )


def infer_config(kind: Kind, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> ModelConfig:
    """Hyperparameters from args/config (heads) and tensor shapes (everything else)."""
    args = meta.get("args") or {}
    cfg = meta.get("config") or {}
    if kind == "v2":
        if args.get("enable_qk_norm"):
            raise CheckpointError("v2 checkpoints with enable_qk_norm=True are not supported")
        heads = {"s2": int(args.get("nhead", 4)), "s1": int(args.get("nhead", 4))}
    elif kind == "v1.1":
        if cfg.get("split_s1_modalities"):
            raise CheckpointError("v1.1 with split_s1_modalities=True is not supported")
        heads = {m: int(cfg.get(f"{m}_num_heads", V1_DEFAULT_HEADS)) for m in ("s2", "s1")}
    else:
        heads = {"s2": V1_DEFAULT_HEADS, "s1": V1_DEFAULT_HEADS}
    s2 = _backbone_config(state, "s2_backbone", S2_BANDS, heads["s2"])
    s1 = _backbone_config(state, "s1_backbone", S1_BANDS, heads["s1"])
    last = "dim_reducer.0.weight" if kind == "v1.0" else "dim_reducer.4.weight"
    if last not in state:
        raise CheckpointError(f"checkpoint lacks {last}")
    representation = int(state[last].shape[0])
    hidden = None if kind == "v1.0" else int(state["dim_reducer.0.weight"].shape[0])
    if kind == "v2":
        _check_declared(
            args,
            {
                "latent_dim": s2.latent_dim,
                "num_layers": s2.num_layers,
                "dim_feedforward": s2.dim_feedforward,
                "repr_dim": representation,
            },
            "args",
        )
        embedding = representation
    elif kind == "v1.1":
        inferred = {"latent_dim": s2.latent_dim, "representation_dim": representation}
        for m, bb in (("s2", s2), ("s1", s1)):
            inferred[f"{m}_num_layers"] = bb.num_layers
            inferred[f"{m}_dim_feedforward"] = bb.dim_feedforward
        _check_declared(cfg, inferred, "config")
        ckpts = cfg.get("num_obs_checkpoints")
        if ckpts is not None and tuple(ckpts) != OBS_CHECKPOINTS:
            raise CheckpointError(f"unsupported num_obs_checkpoints {ckpts}")
        embedding = min(int(cfg.get("save_embedding_dim", 128)), representation)
    else:
        embedding = representation
    return ModelConfig(kind, s2, s1, representation, embedding, hidden)


def parse_checkpoint(obj: dict[str, Any], *, family: str | None = None) -> ParsedCheckpoint:
    """Detect the family (checking ``family`` if given) and infer the model configuration."""
    raw, container_kind, meta = _split_container(obj)
    state, ignored = normalise_keys(raw)
    key_kind = kind_from_keys(state)
    if container_kind is not None and container_kind != key_kind:
        raise CheckpointError(
            f"ambiguous checkpoint: the container says {container_kind} but the weights look "
            f"like {key_kind}"
        )
    kind = key_kind
    config = infer_config(kind, state, meta)
    if family is not None:
        wanted = canonical_family(family)
        detected = config.family_name()
        if kind_of(wanted) != kind or (
            wanted not in ("v2", "v1.0", "v1.1") and wanted != detected
        ):
            raise CheckpointError(
                f"family={family!r} contradicts the checkpoint, which is {detected}"
            )
    return ParsedCheckpoint(kind, state, config, meta, ignored)


# --------------------------------------------------------------------------- writing


def official_metadata(config: ModelConfig, norm: str | None = None) -> dict[str, Any]:
    """The 'args' (v2) or 'config' (v1.1) entry the official loaders read; {} for v1.0."""
    if config.kind == "v2":
        return {
            "args": {
                "repr_dim": config.representation_dim,
                "latent_dim": config.s2.latent_dim,
                "num_layers": config.s2.num_layers,
                "nhead": config.s2.nhead,
                "dim_feedforward": config.s2.dim_feedforward,
                "max_seq_len": 256,
                "matryoshka_dims": "16,32,64,128",
                "enable_qk_norm": False,
            }
        }
    if config.kind == "v1.1":
        cfg: dict[str, Any] = {
            "latent_dim": config.s2.latent_dim,
            "representation_dim": config.representation_dim,
            "save_embedding_dim": config.embedding_dim,
            "fusion_method": "concat",
        }
        for m, bb in (("s2", config.s2), ("s1", config.s1)):
            cfg[f"{m}_num_heads"] = bb.nhead
            cfg[f"{m}_num_layers"] = bb.num_layers
            cfg[f"{m}_dim_feedforward"] = bb.dim_feedforward
        cfg["split_s1_modalities"] = False
        cfg["num_obs_checkpoints"] = list(OBS_CHECKPOINTS)
        cfg["qat_representation_bits"] = 8
        if norm:
            cfg["data_source"] = norm.removeprefix("v1.1-")
        return {"config": cfg}
    return {}


def write_checkpoint(
    model: torch.nn.Module,
    path: str | Path,
    *,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save ``model`` (a :class:`TesseraModel`) in its family's official container format.

    ``extra`` adds top-level entries (e.g. the demo-weights marker). The tensors are cloned to
    contiguous CPU storage so the file does not depend on how the model was built; equal
    models give byte-identical files whatever the path.
    """
    config: ModelConfig = model.config
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    key = "model" if config.kind == "v2" else "model_state_dict"
    container: dict[str, Any] = {key: state}
    container.update(official_metadata(config, getattr(model, "norm", None)))
    if extra:
        container.update(extra)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Serialise through a buffer: torch names the zip records after the file name, so saving
    # straight to ``path`` would make equal checkpoints differ byte-wise by their names.
    buf = io.BytesIO()
    torch.save(container, buf)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(buf.getbuffer())
    tmp.replace(path)
    return path
