"""Faithful TESSERA model families, checkpoint loading, preprocessing, quantisation and inference.

Public API (stable, see DESIGN §5)::

    from tessera_assets.model import PixelSeries, embed, load_model

    model = load_model("hf://geotessera/TESSERA-V-2.0-2B-M/ckpt/student_medium.pt")
    codes, scales = embed(model, PixelSeries.from_npz("inputs.npz"))

This package never imports dagster.
"""

from tessera_assets.model.architecture import TesseraModel
from tessera_assets.model.checkpoint import (
    CheckpointError,
    CheckpointKeyError,
    parse_checkpoint,
    read_container,
    write_checkpoint,
)
from tessera_assets.model.demo_weights import random_model, write_demo_checkpoint
from tessera_assets.model.embed import (
    EmbeddedBatch,
    build_batches,
    build_groups_for,
    embed,
    embed_representation,
    forward_batch,
    forward_split,
    iter_embeddings,
)
from tessera_assets.model.families import FAMILY_NAMES, RELEASED, ModelConfig
from tessera_assets.model.loading import load_model
from tessera_assets.model.normalisation import NORM_SETS, NormStats, get_norm
from tessera_assets.model.quantise import quantise
from tessera_assets.model.sequences import SequenceGroup, embedded_pixels
from tessera_assets.model.series import PixelSeries
from tessera_assets.model.sources import ChecksumMismatchError, sha256_file

__all__ = [
    "FAMILY_NAMES",
    "NORM_SETS",
    "RELEASED",
    "CheckpointError",
    "CheckpointKeyError",
    "ChecksumMismatchError",
    "EmbeddedBatch",
    "ModelConfig",
    "NormStats",
    "PixelSeries",
    "SequenceGroup",
    "TesseraModel",
    "build_batches",
    "build_groups_for",
    "embed",
    "embed_representation",
    "embedded_pixels",
    "forward_batch",
    "forward_split",
    "get_norm",
    "iter_embeddings",
    "load_model",
    "parse_checkpoint",
    "quantise",
    "random_model",
    "read_container",
    "sha256_file",
    "write_checkpoint",
    "write_demo_checkpoint",
]
