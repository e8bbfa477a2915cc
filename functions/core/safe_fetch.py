"""Downloading media from a URL without letting the URL choose where we connect.

Every URL the backend fetches (a provider's output, a user-supplied source) goes
through `fetch_to_file`. A URL is accepted only when it is:

- an ``https://`` URL whose host is in ``allowed_hosts`` (exact match or a subdomain
  of an entry; an entry may carry a port, ``host:8443``, which is then the only
  non-default port accepted for it), and whose every DNS address is public;
- a URL of our own bucket (``own_bucket``): ``gs://<bucket>/<object>``,
  ``https://storage.googleapis.com/<bucket>/<object>`` (and the JSON-API
  ``/download/storage/v1/b/<bucket>/o/<object>`` form),
  ``https://firebasestorage.googleapis.com/v0/b/<bucket>/o/<object>``. These are read
  through the Cloud Storage client (with our credentials), never over plain HTTP;
- local mode only: when ``STORAGE_EMULATOR_HOST`` is set, our bucket's URLs on the
  emulator's exact ``host:port`` (``/download/storage/v1/b/..``, ``/storage/v1/b/..``,
  ``/v0/b/..``), read through the client too; and ``http://`` URLs on a ``host:port``
  listed in the env var ``LOCAL_PROVIDER_HOSTS`` (comma-separated). Only the local
  stack and the tests set that variable (it points provider SDKs at the fake
  provider API on 127.0.0.1); a deployed function never has it.

Everything else raises `core.errors.UnsafeUrl` with a message saying why: other
schemes (file, ftp, data, ...), userinfo (``user@host``), plain http, non-default
ports, hosts off the list, and hosts that resolve to loopback, private, link-local,
reserved or metadata addresses (169.254.169.254, metadata.google.internal). Redirects
are followed by hand (at most 5), each hop checked again, and the address actually
connected to is checked once more before the body is read.

Bodies are streamed to a temporary file next to ``dest`` and renamed into place;
beyond ``max_bytes`` the download stops with ``InvalidInput(code="too-large")``.
HTTP failures: 404/410/403 -> ``ProviderError(code="output-expired")`` (an output
that the provider no longer serves; ``InvalidInput(code="source-unavailable")`` for
``source="user"``), 429/5xx/timeouts/connection errors -> ``TransientProviderError``.
"""

from __future__ import annotations

import email.utils
import ipaddress
import math
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from core.errors import (
    InvalidInput,
    ProviderError,
    TransientProviderError,
    UnsafeUrl,
)

LOCAL_PROVIDER_HOSTS_ENV = "LOCAL_PROVIDER_HOSTS"
STORAGE_EMULATOR_HOST_ENV = "STORAGE_EMULATOR_HOST"
MAX_REDIRECTS = 5
TOTAL_TIME_FACTOR = 5  # a whole download may take this many times `timeout_s`
_CHUNK = 1024 * 1024

_METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.google.internal.", "metadata", "169.254.169.254"}
)
_GCS_HOST = "storage.googleapis.com"
_FIREBASE_HOST = "firebasestorage.googleapis.com"

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


@dataclass(frozen=True)
class _Target:
    """Where a checked URL will be read from."""

    kind: Literal["http", "bucket"]
    url: str
    bucket: str = ""
    object_name: str = ""
    local: bool = False  # an http URL on a LOCAL_PROVIDER_HOSTS entry (loopback allowed)


# --- public API ------------------------------------------------------------------------


def check_url(url: str, allowed_hosts: Sequence[str], own_bucket: str | None) -> None:
    """Raise UnsafeUrl unless `fetch_to_file` would be allowed to read `url`."""
    _classify(url, allowed_hosts, own_bucket)


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
        target = _classify(url, allowed_hosts, own_bucket)
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


def local_provider_hosts() -> list[str]:
    """``host:port`` entries of LOCAL_PROVIDER_HOSTS (local stack and tests only)."""
    raw = os.environ.get(LOCAL_PROVIDER_HOSTS_ENV, "")
    return [h.strip().lower() for h in raw.split(",") if h.strip()]


# --- classification --------------------------------------------------------------------


def _classify(url: str, allowed_hosts: Sequence[str], own_bucket: str | None) -> _Target:
    if not isinstance(url, str) or not url.strip():
        raise UnsafeUrl("The URL is empty.")
    if any(ord(c) < 0x20 or c in "\\\x7f" for c in url):
        raise UnsafeUrl("The URL contains control characters or backslashes.")
    if " " in url and not url.lower().startswith("gs://"):  # gs:// names are not URL-encoded
        raise UnsafeUrl("The URL contains spaces; they must be percent-encoded.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"The URL is malformed: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http", "gs"):
        raise UnsafeUrl(
            f"URLs with scheme {scheme or '(none)'!r} cannot be fetched; use an https URL."
        )
    if "@" in parts.netloc:
        raise UnsafeUrl("URLs with a user name or password (user@host) are not accepted.")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise UnsafeUrl("The URL has no host.")

    if scheme == "gs":
        if own_bucket and host == own_bucket.lower() and parts.path.strip("/"):
            return _Target("bucket", url, bucket=own_bucket, object_name=parts.path[1:])
        raise UnsafeUrl("gs:// URLs are only accepted for this project's own bucket.")

    if host in _METADATA_HOSTS:
        raise UnsafeUrl("The metadata server cannot be fetched.")

    if own_bucket:
        name = _own_bucket_object(host, port, scheme, parts.path, own_bucket)
        if name is not None:
            return _Target("bucket", url, bucket=own_bucket, object_name=name)

    netloc = f"{host}:{port}" if port is not None else host
    if scheme == "http":
        if netloc in local_provider_hosts():
            return _Target("http", url, local=True)
        raise UnsafeUrl(f"Plain http URLs are not accepted ({host}); use https.")

    entries = [e for e in (_parse_entry(a) for a in allowed_hosts) if e is not None]
    if port is not None and port != 443:
        if (host, port) not in entries:
            raise UnsafeUrl(f"Port {port} is not allowed for {host}.")
    elif not any(p in (None, 443) and _host_matches(host, h) for h, p in entries):
        raise UnsafeUrl(f"Host {host} is not on the list of hosts media may be fetched from.")
    _check_resolves_public(host, port or 443)
    return _Target("http", url)


def _parse_entry(entry: str) -> tuple[str, int | None] | None:
    """An allow-list entry: "host", "host:port", "1.2.3.4", "::1" or "[::1]:8443"."""
    e = (entry or "").strip().lower()
    if not e:
        return None
    if e.startswith("["):
        host, _, rest = e[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    if e.count(":") == 1:
        host, port = e.split(":")
        return host.rstrip("."), int(port) if port.isdigit() else None
    return e.rstrip("."), None  # a host name or a bare IPv6 address


def _host_matches(host: str, allowed: str) -> bool:
    return host == allowed or host.endswith("." + allowed)


def _own_bucket_object(
    host: str, port: int | None, scheme: str, path: str, bucket: str
) -> str | None:
    """The object name if the URL addresses our bucket, else None."""
    if scheme == "https" and port in (None, 443):
        if host == _GCS_HOST:
            return _object_from_path(path, bucket, allow_path_style=True)
        if host == _FIREBASE_HOST:
            return _object_from_path(path, bucket, allow_path_style=False)
        return None
    emulator = _emulator_netloc()
    if scheme == "http" and emulator and port is not None and f"{host}:{port}" == emulator:
        return _object_from_path(path, bucket, allow_path_style=False)
    return None


def _object_from_path(path: str, bucket: str, *, allow_path_style: bool) -> str | None:
    for prefix in (
        f"/download/storage/v1/b/{bucket}/o/",
        f"/storage/v1/b/{bucket}/o/",
        f"/v0/b/{bucket}/o/",
    ):
        if path.startswith(prefix) and len(path) > len(prefix):
            return unquote(path[len(prefix) :])
    if allow_path_style and path.startswith(f"/{bucket}/") and len(path) > len(bucket) + 2:
        return unquote(path[len(bucket) + 2 :])
    return None


def _emulator_netloc() -> str | None:
    raw = os.environ.get(STORAGE_EMULATOR_HOST_ENV, "").strip()
    if not raw:
        return None
    if "://" not in raw:
        raw = "http://" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    return f"{(parts.hostname or '').lower()}:{port}"


def _check_resolves_public(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrl(f"Host {host} does not resolve.") from exc
    addresses = {str(info[4][0]) for info in infos}
    if not addresses:
        raise UnsafeUrl(f"Host {host} does not resolve.")
    for addr in addresses:
        _check_public_ip(addr, host)


def _check_public_ip(addr: str, host: str) -> None:
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError as exc:
        raise UnsafeUrl(f"Host {host} resolved to an unreadable address {addr!r}.") from exc
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            _check_public_ip(str(embedded), host)
    if (
        not ip.is_global
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or str(ip) == "169.254.169.254"
    ):
        raise UnsafeUrl(
            f"Host {host} resolves to a non-public address ({ip}); it cannot be fetched."
        )


# --- reading ---------------------------------------------------------------------------


def _read_http(
    target: _Target,
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
                        target = _classify(url, allowed_hosts, own_bucket)
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
        _check_public_ip(str(peer[0]), _host(url))


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
    target: _Target, tmp: Path, *, max_bytes: int, timeout_s: float, source: Source
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


def configured_hosts() -> list[str]:
    """The allow-list handlers use: ALLOWED_FETCH_HOSTS plus the local-only provider hosts."""
    from core import config

    return [*config.ALLOWED_FETCH_HOSTS.value, *local_provider_hosts()]


def check_document_urls(urls: Sequence[tuple[str, str]]) -> None:
    """Check every (field, url) of a job document before any work starts.

    Raises the first UnsafeUrl with the document field named in its message.
    """
    from core.clients import bucket_name
    from core.errors import JobError, named

    allowed, own = configured_hosts(), bucket_name()
    for field, url in urls:
        try:
            check_url(url, allowed, own)
        except JobError as err:
            raise named(err, field) from None
