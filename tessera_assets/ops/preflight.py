"""Checks at run start, before anything is read or written: a run that cannot finish must
fail in its first second with the fix, not after six cube stores were rewritten (a missing
model) or at its first write (a store root whose scheme no filesystem knows)."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

import fsspec

from tessera_assets.config import PipelineSettings
from tessera_assets.sources.bands import SENSORS, Sensor


class PreflightError(ValueError):
    """The run cannot work with these settings; one line with the setting and the fix."""


def _protocol(url: str) -> str | None:
    return url.split("://", 1)[0].lower() if "://" in url else None


def check_root(settings: PipelineSettings) -> None:
    """The store root's scheme is one fsspec can open (its package installed)."""
    proto = _protocol(settings.root)
    if proto in (None, "file"):
        return
    try:
        fsspec.get_filesystem_class(proto)
    except ValueError:
        raise PreflightError(
            f"root {settings.root!r}: unknown scheme {proto + '://'!r}; use a local path, "
            "s3://, gs://, az:// or another fsspec URL"
        ) from None
    except ImportError as err:
        raise PreflightError(
            f"root {settings.root!r} needs a package that is not installed ({err}); "
            f"install the fsspec implementation of {proto}://"
        ) from None


def check_model(settings: PipelineSettings) -> None:
    """``inference.model_source`` names a checkpoint that exists (local files are checked;
    a remote URL's scheme must be known; ``hf://`` must be well formed)."""
    source = settings.inference.model_source
    fix = (
        "set inference.model_source (TESSERA_MODEL) to a checkpoint file, an hf:// or an fsspec URL"
    )
    if source.startswith("hf://"):
        from tessera_assets.model.sources import parse_hf_url

        try:
            parse_hf_url(source)
        except ValueError as err:
            raise PreflightError(f"inference.model_source: {err}; {fix}") from None
        return
    proto = _protocol(source)
    if proto not in (None, "file"):
        try:
            fsspec.get_filesystem_class(proto)
        except (ValueError, ImportError):
            raise PreflightError(
                f"inference.model_source {source!r}: unknown scheme {proto + '://'!r}; {fix}"
            ) from None
        return
    path = Path(os.path.expanduser(source.removeprefix("file://")))
    if not path.is_file():
        raise PreflightError(f"inference.model_source: no checkpoint at {path}; {fix}")
    check_local_checkpoint(settings, path, fix)


def check_local_checkpoint(settings: PipelineSettings, path: Path, fix: str) -> None:
    """The file is what the inference actors will load: its pinned sha256 matches and torch
    can open it as a TESSERA checkpoint (else the run failed at ``embeddings``, after every
    cube was written). Remote sources are checked where they are downloaded, by the actors."""
    from tessera_assets.model.loading import check_checkpoint
    from tessera_assets.model.sources import ChecksumMismatchError

    inference = settings.inference
    try:
        check_checkpoint(path, family=inference.family, sha256=inference.model_sha256,
                         norm=inference.norm)
    except ChecksumMismatchError as err:
        raise PreflightError(
            f"inference.model_sha256: {err}; pin the file's checksum (TESSERA_MODEL_SHA256) "
            "or point inference.model_source at the pinned checkpoint"
        ) from None
    except (ValueError, OSError) as err:  # CheckpointError is a ValueError
        raise PreflightError(f"inference.model_source: {' '.join(str(err).split())}; {fix}"
                             ) from None


OPTIONAL_SENSORS = frozenset({"landsat"})
"""Sensors no model consumes: their catalog problems never fail a run that also builds the
embeddings path (they are returned as warnings; their own cube then fails)."""


def sensors_of(assets: Collection[str] | None) -> set[Sensor]:
    """The sensors whose scenes a run searches or reads: ``scene_manifest`` searches them
    all, a cube reads its sensor's, and None (the whole job) means all."""
    if assets is None or "scene_manifest" in assets:
        return set(SENSORS)
    return {s for s in SENSORS if f"{s}_cube" in assets}


def check_catalogs(settings: PipelineSettings, assets: Collection[str] | None = None
                   ) -> list[str]:
    """Each needed sensor's collection exists and its credentials are set. Problems of an
    optional sensor (Landsat) come back as warnings unless only optional sensors are needed."""
    from tessera_assets.catalog.base import CatalogError
    from tessera_assets.catalog.checks import check_sensor_catalog

    needed = sensors_of(assets)
    strict = needed <= OPTIONAL_SENSORS
    warnings = []
    for sensor in sorted(needed):
        try:
            check_sensor_catalog(settings.catalog, sensor)
        except CatalogError as err:
            if sensor in OPTIONAL_SENSORS and not strict:
                warnings.append(f"{err} (Landsat feeds no model: the embeddings path goes on)")
            else:
                raise PreflightError(str(err)) from None
    return warnings


def preflight(settings: PipelineSettings, *, needs_model: bool) -> None:
    """Every check a run needs; ``needs_model`` when it materialises embeddings (the
    catalogs are checked by :func:`check_catalogs` once the run holds its partition)."""
    check_root(settings)
    if needs_model:
        check_model(settings)
