"""Bucketed, batched inference: raw PixelSeries -> int8 embeddings + per-pixel scales.

The engine runs the family's own sequence building (which already buckets pixels by observation
count, so every batch is a dense (B, T, C) tensor with no padding), splits buckets into batches of
``batch_size`` so memory is bounded by the batch and not by N, runs the forward pass under
``torch.inference_mode`` and quantises on the model's device. On CUDA the forward runs under bf16
autocast (DOY and its positional encoding stay float32); on CPU it is float32 by default, which is
what the golden tests pin.

Store contract: pixels the family does not embed get int8 zeros and scale NaN; nothing is ever
read from uninitialised memory.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
import torch

from tessera_assets.model.architecture import TesseraModel
from tessera_assets.model.families import DEFAULT_NORM, Kind, kind_of
from tessera_assets.model.normalisation import get_norm, resolve_norm_name
from tessera_assets.model.quantise import quantise_torch
from tessera_assets.model.sequences import (
    SeedLike,
    SequenceGroup,
    build_groups,
    embedded_pixels,
)
from tessera_assets.model.series import PixelSeries

Precision = Literal["auto", "fp32", "bf16"]
Progress = Callable[[int, int], None]
T = TypeVar("T")

#: On CPU a forward call is split so that it holds at most this many tokens (pixels x (T2 + T1)).
#: Activations then stay cache-sized: on the 2-core Zen 5 build machine v2-nano runs ~1.9x faster
#: at 64 pixels x 168 tokens than at 1024 pixels (docs/performance.md). Results do not depend on
#: the split beyond float summation order (< 2e-6).
CPU_TOKENS_PER_FORWARD = 64 * 168


@dataclass
class EmbeddedBatch:
    """Results for one batch of pixels."""

    pixel_index: np.ndarray  # (B,) int64
    int8: np.ndarray  # (B, embedding_dim) int8
    scales: np.ndarray  # (B,) float32
    representation: np.ndarray | None  # (B, representation_dim) float32 when requested


def _kind_and_norm(model_or_family: TesseraModel | str, norm: str | None) -> tuple[Kind, str]:
    if isinstance(model_or_family, TesseraModel):
        kind = model_or_family.config.kind
        return kind, resolve_norm_name(kind, norm) or model_or_family.norm
    kind = kind_of(model_or_family)
    return kind, resolve_norm_name(kind, norm) or DEFAULT_NORM[kind]


def build_groups_for(
    model_or_family: TesseraModel | str,
    series: PixelSeries,
    *,
    batch_size: int | None = 1024,
    seed: SeedLike = None,
    norm: str | None = None,
    official: bool = False,
) -> Iterator[SequenceGroup]:
    """Input groups (with time indices) for a model or family name; see ``build_groups``."""
    kind, norm_name = _kind_and_norm(model_or_family, norm)
    return build_groups(
        kind, series, get_norm(norm_name), batch_size=batch_size, seed=seed, official=official
    )


def build_batches(
    model_or_family: TesseraModel | str,
    series: PixelSeries,
    *,
    batch_size: int | None = 1024,
    seed: SeedLike = None,
    norm: str | None = None,
    official: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(pixel_index, s2, s1)`` numpy batches in the family's official grouping.

    ``s2`` is (B, T2, 11) and ``s1`` (B, T1, 3) float32, ready for ``TesseraModel.forward``.
    """
    for g in build_groups_for(
        model_or_family, series, batch_size=batch_size, seed=seed, norm=norm, official=official
    ):
        yield g.pixel_index, g.s2, g.s1


def _use_bf16(device: torch.device, precision: Precision) -> bool:
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def _to_device(arr: np.ndarray, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(arr)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def forward_batch(
    model: TesseraModel,
    s2: np.ndarray | torch.Tensor,
    s1: np.ndarray | torch.Tensor,
    *,
    precision: Precision = "auto",
) -> torch.Tensor:
    """Forward one batch on the model's device; returns the float32 representation there."""
    device = model.device
    s2_t = s2 if isinstance(s2, torch.Tensor) else _to_device(s2, device)
    s1_t = s1 if isinstance(s1, torch.Tensor) else _to_device(s1, device)
    with (
        torch.inference_mode(),
        torch.autocast(device.type, dtype=torch.bfloat16, enabled=_use_bf16(device, precision)),
    ):
        out = model(s2_t.float(), s1_t.float())
    return out.float()


def forward_split(
    model: TesseraModel,
    s2: np.ndarray,
    s1: np.ndarray,
    *,
    precision: Precision = "auto",
    max_tokens: int | Literal["auto"] | None = "auto",
) -> torch.Tensor:
    """:func:`forward_batch` in chunks of at most ``max_tokens`` tokens (see
    :data:`CPU_TOKENS_PER_FORWARD`; 'auto' splits on CPU only)."""
    if max_tokens == "auto":
        max_tokens = CPU_TOKENS_PER_FORWARD if model.device.type == "cpu" else None
    rows = len(s2)
    step = rows
    if max_tokens and rows:
        step = max(1, min(rows, max_tokens // (s2.shape[1] + s1.shape[1])))
    parts = [
        forward_batch(model, s2[i : i + step], s1[i : i + step], precision=precision)
        for i in range(0, rows, step)
    ]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(items: Iterator[T], depth: int) -> Iterator[T]:
    """Produce ``items`` in a background thread, ``depth`` ahead of the consumer.

    Used on GPUs so the next batch's sequences are built (numpy, GIL mostly released) while the
    device computes. Stops the producer if the consumer goes away early.
    """
    if depth <= 0:
        yield from items
        return
    buf: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buf.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:
            put(_Failure(exc))
        finally:
            put(done)

    worker = threading.Thread(target=produce, name="tessera-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = buf.get()
            if item is done:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


def iter_embeddings(
    model: TesseraModel,
    series: PixelSeries,
    *,
    batch_size: int = 1024,
    seed: SeedLike = None,
    precision: Precision = "auto",
    keep_representation: bool = False,
    official: bool = False,
    prefetch_batches: int | None = None,
    max_tokens_per_forward: int | Literal["auto"] | None = "auto",
) -> Iterator[EmbeddedBatch]:
    """Embed ``series`` batch by batch (bounded memory); quantisation happens on the device.

    ``prefetch_batches`` builds that many batches ahead in a thread (default: 2 on CUDA, 0 on
    CPU, where both cores are already busy with the forward pass). ``max_tokens_per_forward``
    splits each batch into forward calls of at most that many tokens ('auto': the cache-friendly
    :data:`CPU_TOKENS_PER_FORWARD` on CPU, no split on GPUs, which want large batches).
    """
    spec = model.config.quant
    width = model.embedding_dim
    model.eval()
    if prefetch_batches is None:
        prefetch_batches = 2 if model.device.type == "cuda" else 0
    groups = build_groups_for(model, series, batch_size=batch_size, seed=seed, official=official)
    for group in prefetch(groups, prefetch_batches):
        rep = forward_split(
            model, group.s2, group.s1, precision=precision, max_tokens=max_tokens_per_forward
        )
        with torch.inference_mode():
            q, scale = quantise_torch(rep[:, :width], spec)
        yield EmbeddedBatch(
            group.pixel_index,
            q.cpu().numpy(),
            scale.cpu().numpy(),
            rep.cpu().numpy() if keep_representation else None,
        )


def embed(
    model: TesseraModel,
    series: PixelSeries,
    *,
    batch_size: int = 1024,
    seed: SeedLike = None,
    progress: Progress | None = None,
    precision: Precision = "auto",
    max_tokens_per_forward: int | Literal["auto"] | None = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Embed every pixel of ``series`` with the family's exact preprocessing and quantisation.

    Returns ``(int8 (N, embedding_dim), float32 scales (N,))``; dequantise as ``q * scale``.
    Pixels the family does not embed (v1.0: S2 all zero; v2: no clear S2 and no valid S1; v1.1:
    S2 all zero, stricter than upstream so no nodata embedding reaches a store) are int8 zeros
    with scale NaN. ``seed`` makes v1.0's random step sampling reproducible (it replays the
    official RandomState protocol); other families are deterministic. ``progress(done, total)``
    is called after each batch with counts of embedded pixels. ``precision`` ('auto': bf16
    autocast on CUDA, float32 elsewhere) and ``max_tokens_per_forward`` are speed knobs, see
    :func:`iter_embeddings`.
    """
    codes, scales, _ = _collect(
        model, series, batch_size, seed, progress, precision, max_tokens_per_forward, False
    )
    return codes, scales


def embed_representation(
    model: TesseraModel,
    series: PixelSeries,
    *,
    batch_size: int = 1024,
    seed: SeedLike = None,
    precision: Precision = "auto",
    max_tokens_per_forward: int | Literal["auto"] | None = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`embed` but also returns the float32 representation (N, D), NaN rows where
    not embedded: ``(int8, scales, representation)``."""
    return _collect(model, series, batch_size, seed, None, precision, max_tokens_per_forward, True)


def _collect(
    model: TesseraModel,
    series: PixelSeries,
    batch_size: int,
    seed: SeedLike,
    progress: Progress | None,
    precision: Precision,
    max_tokens: int | Literal["auto"] | None,
    keep: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    n = series.n_pixels
    codes = np.zeros((n, model.embedding_dim), np.int8)
    scales = np.full(n, np.nan, np.float32)
    rep = np.full((n, model.representation_dim), np.nan, np.float32) if keep else None
    total = int(embedded_pixels(model.config.kind, series).sum()) if progress else 0
    done = 0
    if progress:
        progress(0, total)
    for batch in iter_embeddings(
        model, series, batch_size=batch_size, seed=seed, precision=precision,
        keep_representation=keep, max_tokens_per_forward=max_tokens,
    ):
        codes[batch.pixel_index] = batch.int8
        scales[batch.pixel_index] = batch.scales
        if rep is not None:
            rep[batch.pixel_index] = batch.representation
        done += len(batch.pixel_index)
        if progress:
            progress(done, total)
    return codes, scales, rep
