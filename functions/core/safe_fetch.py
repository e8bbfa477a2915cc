"""Downloading media from a URL without letting the URL choose where we connect.

Every URL the backend fetches (a provider's output, a user-supplied source) goes through
`fetch_to_file`, which reads only what core/url_policy.py accepts. Redirects are followed
by hand (at most 5), each hop checked again, and the address actually connected to is
checked once more before the body is read.

Bodies are streamed to a temporary file next to ``dest`` and renamed into place;
beyond ``max_bytes`` the download stops with ``InvalidInput(code="too-large")``.
HTTP failures: 404/410/403 -> ``ProviderError(code="output-expired")`` (an output
that the provider no longer serves; ``InvalidInput(code="source-unavailable")`` for
``source="user"``), 429/5xx/timeouts/connection errors -> ``TransientProviderError``.
"""

from __future__ import annotations

import email.utils
import math
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx

from core.errors import InvalidInput, ProviderError, TransientProviderError, UnsafeUrl
from core.url_policy import Target, check_public_ip, classify, configured_hosts

MAX_REDIRECTS = 5
TOTAL_TIME_FACTOR = 5  # a whole download may take this many times `timeout_s`
_CHUNK = 1024 * 1024

Source = Literal["provider", "user"]

try:  # the openai / google-genai SDKs use httpx2, a fork of httpx under another name
    import httpx2 as _httpx2

    NETWORK_ERRORS: tuple[type[BaseException], ...] = (
        httpx.TransportError,
        _httpx2.TransportError,
        TimeoutError,
        ConnectionError,
    )
except ImportError:  # pragma: no cover - depends on installed SDKs
    NETWORK_ERRORS = (httpx.TransportError, TimeoutError, ConnectionError)


def fetch_to_file(
    url: str,
    dest: Path,
    *,
    allowed_hosts: Sequence[str],
    own_bucket: str | None,
    max_bytes: int,
    timeout_s: float = 60,
    source: Source = "provider",
) -> Path:
    """Download `url` to `dest` (created or replaced) and return `dest`.

    `timeout_s` bounds each network wait (connect, each read); the whole download is
    bounded by ``TOTAL_TIME_FACTOR * timeout_s``.

    `source` only changes how a missing object is reported: "provider" (an output URL
    we were given by a provider) -> ProviderError(code="output-expired"); "user" (a
    URL from a job document) -> InvalidInput(code="source-unavailable").
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        target = classify(url, allowed_hosts, own_bucket)
        if target.kind == "bucket":
            _read_bucket(target, tmp, max_bytes=max_bytes, timeout_s=timeout_s, source=source)
        else:
            _read_http(
                target,
                tmp,
                allowed_hosts=allowed_hosts,
                own_bucket=own_bucket,
                max_bytes=max_bytes,
                timeout_s=timeout_s,
                source=source,
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


# --- reading ---------------------------------------------------------------------------


def _read_http(
    target: Target,
    tmp: Path,
    *,
    allowed_hosts: Sequence[str],
    own_bucket: str | None,
    max_bytes: int,
    timeout_s: float,
    source: Source,
) -> None:
    url = target.url
    deadline = time.monotonic() + timeout_s * TOTAL_TIME_FACTOR
    timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
    with httpx.Client(follow_redirects=False, timeout=timeout, trust_env=False) as client:
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                with client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as resp:
                    if not target.local:
                        _check_peer(resp, url)
                    if resp.is_redirect:
                        location = resp.headers.get("location")
                        if not location:
                            raise ProviderError(f"Redirect without a Location from {_host(url)}.")
                        url = urljoin(url, location)
                        target = classify(url, allowed_hosts, own_bucket)
                        if target.kind == "bucket":
                            _read_bucket(
                                target, tmp, max_bytes=max_bytes, timeout_s=timeout_s, source=source
                            )
                            return
                        continue
                    _raise_for_status(resp, url, source)
                    _stream_body(resp, tmp, max_bytes=max_bytes, deadline=deadline)
                    return
            except NETWORK_ERRORS as exc:
                raise TransientProviderError(
                    f"Downloading from {_host(url)} failed: {type(exc).__name__}: {exc}"
                ) from exc
    raise UnsafeUrl(f"Too many redirects (more than {MAX_REDIRECTS}).")


def _check_peer(resp: httpx.Response, url: str) -> None:
    """Check the address the connection actually went to (closes the DNS-rebinding gap)."""
    stream = resp.extensions.get("network_stream")
    if stream is None:
        return
    try:
        peer: Any = stream.get_extra_info("server_addr")
    except Exception:  # a transport without this extra
        return
    if isinstance(peer, tuple) and peer:
        check_public_ip(str(peer[0]), _host(url))


def _raise_for_status(resp: httpx.Response, url: str, source: Source) -> None:
    status = resp.status_code
    if 200 <= status < 300:
        return
    host = _host(url)
    if status in (403, 404, 410):
        if source == "user":
            raise InvalidInput(
                f"The file at {host} is not available (HTTP {status}).", code="source-unavailable"
            )
        raise ProviderError(
            f"The provider's output at {host} is no longer available (HTTP {status}).",
            code="output-expired",
        )
    if status == 429 or status >= 500:
        raise TransientProviderError(
            f"{host} answered HTTP {status}; try again later.",
            retry_after_s=parse_retry_after(resp.headers.get("retry-after")),
        )
    if source == "user":
        raise InvalidInput(
            f"Fetching the file from {host} failed (HTTP {status}).", code="source-unavailable"
        )
    raise ProviderError(f"Downloading the output from {host} failed (HTTP {status}).")


def _stream_body(resp: httpx.Response, tmp: Path, *, max_bytes: int, deadline: float) -> None:
    declared = resp.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    total = 0
    with tmp.open("wb") as fh:
        for chunk in resp.iter_raw(_CHUNK):
            total += len(chunk)
            if total > max_bytes:
                raise _too_large(max_bytes)
            fh.write(chunk)
            if time.monotonic() > deadline:
                raise TransientProviderError(
                    f"Downloading from {_host(str(resp.url))} took too long."
                )
    if total == 0:
        raise ProviderError(f"{_host(str(resp.url))} returned an empty file.", code="empty-output")


def _too_large(max_bytes: int) -> InvalidInput:
    return InvalidInput(
        f"The file is larger than the {max_bytes / 1_048_576:.0f} MiB limit.", code="too-large"
    )


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or "the server"
    except ValueError:
        return "the server"


def _storage_bucket(name: str) -> Any:
    """A google.cloud.storage Bucket (the client honours STORAGE_EMULATOR_HOST)."""
    from core.clients import storage_client

    return storage_client().bucket(name)


def _read_bucket(
    target: Target, tmp: Path, *, max_bytes: int, timeout_s: float, source: Source
) -> None:
    import requests
    from google.api_core import exceptions as gexc

    where = f"gs://{target.bucket}/{target.object_name}"
    try:
        blob = _storage_bucket(target.bucket).blob(target.object_name)
        with tmp.open("wb") as fh:
            # Read one byte past the limit: if it arrives, the object is too large.
            blob.download_to_file(fh, start=0, end=max_bytes, timeout=timeout_s)
    except (gexc.NotFound, gexc.Forbidden) as exc:
        if source == "user":
            raise InvalidInput(f"{where} does not exist.", code="source-unavailable") from exc
        raise ProviderError(f"{where} does not exist.", code="output-expired") from exc
    except gexc.RequestRangeNotSatisfiable as exc:  # a zero-byte object
        raise ProviderError(f"{where} is empty.", code="empty-output") from exc
    except (gexc.TooManyRequests, gexc.ServerError, gexc.RetryError) as exc:
        raise TransientProviderError(f"Reading {where} failed: {exc}") from exc
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientProviderError(f"Reading {where} failed: {exc}") from exc
    except NETWORK_ERRORS as exc:
        raise TransientProviderError(f"Reading {where} failed: {exc}") from exc
    size = tmp.stat().st_size
    if size > max_bytes:
        raise _too_large(max_bytes)
    if size == 0:
        raise ProviderError(f"{where} is empty.", code="empty-output")


def fetch_url(
    url: str,
    dest: Path,
    *,
    source: Source = "user",
    timeout_s: float = 60,
    max_bytes: int | None = None,
) -> Path:
    """`fetch_to_file` with the configured allow-list, our bucket and size bound.

    The entry point handlers use for URLs that come from job documents. `max_bytes`
    tightens the bound for one kind of input (e.g. a seed image); it never raises it above
    MAX_FETCH_BYTES.
    """
    from core import config
    from core.clients import bucket_name

    limit = int(config.MAX_FETCH_BYTES.value)
    return fetch_to_file(
        url,
        dest,
        allowed_hosts=configured_hosts(),
        own_bucket=bucket_name(),
        max_bytes=min(limit, max_bytes) if max_bytes else limit,
        timeout_s=timeout_s,
        source=source,
    )
