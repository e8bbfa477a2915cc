"""Which URLs the backend may fetch from: the one policy every download goes through.

A URL is accepted only when it is:

- an ``https://`` URL whose host is in ``allowed_hosts`` (exact match or a subdomain
  of an entry; an entry may carry a port, ``host:8443``, which is then the only
  non-default port accepted for it), and whose every DNS address is public;
- a URL of our own bucket (``own_bucket``): ``gs://<bucket>/<object>``,
  ``https://storage.googleapis.com/<bucket>/<object>`` (and the JSON-API
  ``/download/storage/v1/b/<bucket>/o/<object>`` form),
  ``https://firebasestorage.googleapis.com/v0/b/<bucket>/o/<object>``, read through
  the Cloud Storage client (with our credentials), never over plain HTTP;
- local mode only: with ``STORAGE_EMULATOR_HOST`` set, our bucket's URLs on the
  emulator's exact ``host:port``; and ``http://`` URLs on a ``host:port`` listed in
  ``LOCAL_PROVIDER_HOSTS`` (only the local stack and the tests set it).

Everything else raises `core.errors.UnsafeUrl` saying why (other schemes, userinfo,
plain http, non-default ports, hosts off the list, hosts that resolve to loopback,
private, link-local, reserved or metadata addresses). core/safe_fetch.py reads what
this accepts.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

from core.errors import UnsafeUrl

LOCAL_PROVIDER_HOSTS_ENV = "LOCAL_PROVIDER_HOSTS"
STORAGE_EMULATOR_HOST_ENV = "STORAGE_EMULATOR_HOST"

_METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.google.internal.", "metadata", "169.254.169.254"}
)
_GCS_HOST = "storage.googleapis.com"
_FIREBASE_HOST = "firebasestorage.googleapis.com"


@dataclass(frozen=True)
class Target:
    """Where a checked URL will be read from."""

    kind: Literal["http", "bucket"]
    url: str
    bucket: str = ""
    object_name: str = ""
    local: bool = False  # an http URL on a LOCAL_PROVIDER_HOSTS entry (loopback allowed)


def check_url(url: str, allowed_hosts: Sequence[str], own_bucket: str | None) -> None:
    """Raise UnsafeUrl unless `fetch_to_file` would be allowed to read `url`."""
    classify(url, allowed_hosts, own_bucket)


def local_provider_hosts() -> list[str]:
    """``host:port`` entries of LOCAL_PROVIDER_HOSTS (local stack and tests only)."""
    raw = os.environ.get(LOCAL_PROVIDER_HOSTS_ENV, "")
    return [h.strip().lower() for h in raw.split(",") if h.strip()]


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


# --- classification --------------------------------------------------------------------


def classify(url: str, allowed_hosts: Sequence[str], own_bucket: str | None) -> Target:
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
            return Target("bucket", url, bucket=own_bucket, object_name=parts.path[1:])
        raise UnsafeUrl("gs:// URLs are only accepted for this project's own bucket.")

    if host in _METADATA_HOSTS:
        raise UnsafeUrl("The metadata server cannot be fetched.")

    if own_bucket:
        name = _own_bucket_object(host, port, scheme, parts.path, own_bucket)
        if name is not None:
            return Target("bucket", url, bucket=own_bucket, object_name=name)

    netloc = f"{host}:{port}" if port is not None else host
    if scheme == "http":
        if netloc in local_provider_hosts():
            return Target("http", url, local=True)
        raise UnsafeUrl(f"Plain http URLs are not accepted ({host}); use https.")

    entries = [e for e in (_parse_entry(a) for a in allowed_hosts) if e is not None]
    if port is not None and port != 443:
        if (host, port) not in entries:
            raise UnsafeUrl(f"Port {port} is not allowed for {host}.")
    elif not any(p in (None, 443) and _host_matches(host, h) for h, p in entries):
        raise UnsafeUrl(f"Host {host} is not on the list of hosts media may be fetched from.")
    _check_resolves_public(host, port or 443)
    return Target("http", url)


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
        check_public_ip(addr, host)


def check_public_ip(addr: str, host: str) -> None:
    try:
        ip = ipaddress.ip_address(addr.split("%", 1)[0])
    except ValueError as exc:
        raise UnsafeUrl(f"Host {host} resolved to an unreadable address {addr!r}.") from exc
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            check_public_ip(str(embedded), host)
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
