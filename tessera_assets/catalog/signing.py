"""Credentials and URL signing (DESIGN §6): what a preset's searches and reads need to
authenticate. Secrets come from the environment when a catalog or a read is set up, and
Planetary Computer hrefs are signed at read time, so neither ever reaches a manifest or a
lineage record (:func:`redact` masks them in logs).

Planetary Computer SAS tokens are fetched here rather than by the ``planetary-computer``
package: its token request has no timeout and its own urllib3 retries (10, backoff 0.8 s),
so an unreachable token endpoint stalled a run for 7 min 23 s whatever our settings said.
Ours takes the read timeout and the project's :class:`~tessera_assets.retry.RetryPolicy`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping
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
from tessera_assets.retry import RetryPolicy, describe

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

PC_SAS_URL = "https://planetarycomputer.microsoft.com/api/sas/v1/token"
PC_SAS_URL_ENV = "PC_SDK_SAS_URL"
"""Where SAS tokens are requested (the ``planetary-computer`` package's variable; a test
points it at a loopback server)."""
PC_KEY_ENV = "PC_SDK_SUBSCRIPTION_KEY"
SIGN_TIMEOUT_S = 30.0
TOKEN_MARGIN_S = 300.0
"""A cached token is renewed this long before it expires."""
FAILURE_TTL_S = 30.0
"""After a token request failed (every attempt of its policy), other requests for the same
container fail at once for this long: a partition of many scenes then waits for one bounded
failure, not one per asset."""


class SigningError(RuntimeError):
    """An href could not be signed (the token service failed or did not answer in time)."""


_tokens: dict[tuple[str, str], tuple[str, float]] = {}
_failures: dict[tuple[str, str], tuple[str, float]] = {}
_tokens_lock = threading.Lock()


def needs_signing(href: str) -> bool:
    """Planetary Computer blob storage hrefs need a SAS token before they can be read."""
    host = urlparse(href).hostname or ""
    return host.endswith(PC_BLOB_SUFFIX) and "sig=" not in href


def sas_token(account: str, container: str, *, timeout_s: float = SIGN_TIMEOUT_S,
              policy: RetryPolicy | None = None,
              environ: Mapping[str, str] | None = None) -> str:
    """A SAS token for one storage container, cached until shortly before it expires. Each
    request waits at most ``timeout_s`` (connect and read); ``policy`` (default: one attempt)
    retries what is transient."""
    key = (account, container)
    with _tokens_lock:
        cached, failed = _tokens.get(key), _failures.get(key)
    if cached and cached[1] - TOKEN_MARGIN_S > time.time():
        return cached[0]
    if failed and failed[1] > time.monotonic():
        raise SigningError(failed[0])
    import requests

    env = _env(environ)
    url = f"{env.get(PC_SAS_URL_ENV, PC_SAS_URL).rstrip('/')}/{account}/{container}"
    headers = {"Ocp-Apim-Subscription-Key": env[PC_KEY_ENV]} if env.get(PC_KEY_ENV) else {}

    def fetch() -> dict[str, Any]:
        response = requests.get(url, headers=headers, timeout=(timeout_s, timeout_s))
        response.raise_for_status()
        return response.json()

    try:
        doc = (policy or RetryPolicy(attempts=1)).call(fetch, what=f"SAS token from {url}")
        token = str(doc["token"])
    except Exception as err:
        message = (f"cannot sign Planetary Computer hrefs of {account}/{container}: token "
                   f"request to {url} failed ({describe(err)})")
        with _tokens_lock:
            _failures[key] = (message, time.monotonic() + FAILURE_TTL_S)
        raise SigningError(message) from err
    expiry = _expiry(doc.get("msft:expiry"))
    with _tokens_lock:
        _tokens[key] = (token, expiry)
        _failures.pop(key, None)
    return token


def forget_tokens() -> None:
    """Drop cached tokens and failures (tests; a process that changed its token service)."""
    with _tokens_lock:
        _tokens.clear()
        _failures.clear()


def _expiry(text: Any) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time() + TOKEN_MARGIN_S + 60.0  # unknown: good for a minute


def sign_href(href: str, *, timeout_s: float = SIGN_TIMEOUT_S,
              policy: RetryPolicy | None = None,
              environ: Mapping[str, str] | None = None) -> str:
    """``href`` with a SAS token of its container as query (as ``planetary_computer.sign``
    does); other hrefs unchanged."""
    if not needs_signing(href):
        return href
    parsed = urlparse(href)
    account = (parsed.hostname or "").removesuffix(PC_BLOB_SUFFIX)
    container = parsed.path.lstrip("/").split("/", 1)[0]
    token = sas_token(account, container, timeout_s=timeout_s, policy=policy, environ=environ)
    return parsed._replace(query=token).geturl()


def signed(items: Iterable[pystac.Item], keys: Iterable[str] | None = None, *,
           timeout_s: float = SIGN_TIMEOUT_S, policy: RetryPolicy | None = None
           ) -> list[pystac.Item]:
    """Items whose Planetary Computer blob hrefs (of ``keys``, default all assets) carry a
    fresh SAS token: copies, other items unchanged. Signing happens at read time, so tokens
    never reach the manifest and never expire between search and read. Raises
    :class:`SigningError` once ``policy``'s attempts of ``timeout_s`` each are spent."""
    wanted = None if keys is None else set(keys)
    out = []
    for item in items:
        todo = [k for k, a in item.assets.items()
                if (wanted is None or k in wanted) and needs_signing(a.href)]
        if not todo:
            out.append(item)
            continue
        copy = item.clone()
        for key in todo:
            copy.assets[key].href = sign_href(copy.assets[key].href, timeout_s=timeout_s,
                                              policy=policy)
        out.append(copy)
    return out
