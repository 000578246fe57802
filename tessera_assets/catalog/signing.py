"""Credentials and URL signing (DESIGN §6): what a preset's searches and reads need to
authenticate. Secrets come from the environment when a catalog or a read is set up, and
Planetary Computer hrefs are signed at read time, so neither ever reaches a manifest or a
lineage record (:func:`redact` masks them in logs)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlparse

import pystac

from tessera_assets.catalog.presets import (
    CDSE_KEY_ENV,
    CDSE_S3_ENDPOINT,
    CDSE_SECRET_ENV,
    EARTHDATA_TOKEN_ENV,
    CatalogPreset,
    PresetError,
)

PC_BLOB_SUFFIX = ".blob.core.windows.net"
EARTHDATA_HOSTS = ("datapool.asf.alaska.edu", "cumulus.asf.alaska.edu",
                   ".earthdatacloud.nasa.gov", ".earthdata.nasa.gov")
SECRET_KEY_PARTS = ("SECRET", "TOKEN", "HEADERS", "PASSWORD", "ACCESS_KEY")


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _bearer(environ: Mapping[str, str] | None) -> str | None:
    token = _env(environ).get(EARTHDATA_TOKEN_ENV)
    return f"Bearer {token}" if token else None


# --------------------------------------------------------------------------- searches


def search_headers(preset: CatalogPreset | None,
                   environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """HTTP headers for catalog requests (the Earthdata bearer token for CMR)."""
    bearer = _bearer(environ)
    if preset is not None and preset.auth == "earthdata-token" and bearer:
        return {"Authorization": bearer}
    return {}


def check_credentials(preset: CatalogPreset, environ: Mapping[str, str] | None = None) -> None:
    """Fail before any work when a preset's read credentials are missing."""
    env = _env(environ)
    if preset.auth == "planetary-computer":
        planetary_computer_signer()
    missing = [k for k in preset.env_needed() if not env.get(k)]
    if missing:
        raise PresetError(
            f"catalog preset {preset.name!r} reads its assets with credentials from "
            f"{', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not set"
        )


# --------------------------------------------------------------------------- reads


def read_gdal_options(preset: CatalogPreset | None,
                      environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """GDAL config options a preset's asset reads need (secrets included: for the reading
    process only, never recorded)."""
    if preset is None:
        return {}
    bearer = _bearer(environ)
    if preset.auth == "earthdata-token" and bearer:
        return {"GDAL_HTTP_HEADERS": f"Authorization: {bearer}"}
    if preset.auth == "cdse-s3":
        return {"AWS_S3_ENDPOINT": CDSE_S3_ENDPOINT, "AWS_VIRTUAL_HOSTING": "FALSE",
                "AWS_HTTPS": "YES"}
    return {}


def read_aws_session(preset: CatalogPreset | None,
                     environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """rasterio ``AWSSession`` keyword arguments for a preset's ``s3://`` hrefs."""
    env = _env(environ)
    if preset is None or preset.aws is None:
        return None
    session = dict(preset.aws)
    if preset.auth == "cdse-s3":
        session.update(aws_access_key_id=env.get(CDSE_KEY_ENV),
                       aws_secret_access_key=env.get(CDSE_SECRET_ENV))
    return session


def is_earthdata(href: str) -> bool:
    """Whether an href is served behind Earthdata Login (ASF / NASA hosts)."""
    host = urlparse(href).hostname or ""
    return any(host == h or (h.startswith(".") and host.endswith(h)) for h in EARTHDATA_HOSTS)


def href_options(hrefs: Iterable[str], environ: Mapping[str, str] | None = None
                 ) -> dict[str, str]:
    """GDAL options that particular hrefs need: the Earthdata bearer token for ASF/NASA hosts
    (when ``EARTHDATA_TOKEN`` is set)."""
    bearer = _bearer(environ)
    if bearer and any(is_earthdata(h) for h in hrefs):
        return {"GDAL_HTTP_HEADERS": f"Authorization: {bearer}"}
    return {}


def is_secret_key(key: str) -> bool:
    """Whether an option name holds a credential (tokens, secret keys, auth headers)."""
    upper = key.upper()
    return any(part in upper for part in SECRET_KEY_PARTS)


def redact(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with the values of secret keys masked, for logs and lineage."""
    return {k: ("***" if is_secret_key(k) else v) for k, v in options.items()}


# --------------------------------------------------------------------------- Planetary Computer


def planetary_computer_signer() -> Callable[[str], str]:
    """``planetary_computer.sign`` (imported lazily: the ``pc`` extra is optional)."""
    try:
        import planetary_computer
    except ImportError as err:
        raise PresetError(
            "Planetary Computer asset URLs must be signed with the 'planetary-computer' "
            "package, which is not installed: pip install 'tessera_assets[pc]'"
        ) from err
    return planetary_computer.sign


def needs_signing(href: str) -> bool:
    """Planetary Computer blob storage hrefs need a SAS token before they can be read."""
    host = urlparse(href).hostname or ""
    return host.endswith(PC_BLOB_SUFFIX) and "sig=" not in href


def signed(items: Iterable[pystac.Item], keys: Iterable[str] | None = None
           ) -> list[pystac.Item]:
    """Items whose Planetary Computer blob hrefs (of ``keys``, default all assets) carry a
    fresh SAS token: copies, other items unchanged. Signing happens at read time, so tokens
    never reach the manifest and never expire between search and read."""
    wanted = None if keys is None else set(keys)
    out = []
    for item in items:
        todo = [k for k, a in item.assets.items()
                if (wanted is None or k in wanted) and needs_signing(a.href)]
        if not todo:
            out.append(item)
            continue
        sign = planetary_computer_signer()
        copy = item.clone()
        for key in todo:
            copy.assets[key].href = sign(copy.assets[key].href)
        out.append(copy)
    return out
