"""Our own Storage: where outputs go, and the URLs clients (and ffmpeg) get for them.

Every output is written under a per-user prefix (`users/{uid}/...`) or a per-asset prefix
(`streams/{videoId}/...`) with a deterministic name, so a retried job overwrites its own
output instead of creating a second one. Documents also keep the object path (`*_path`
fields) so the backend never has to parse URLs it wrote itself.

URLs: `download_url` (a Firebase Storage download URL with the object's token, as the client
SDKs make), `public_base` (where `streams/` is served path-style) and `source_url` (a URL
ffmpeg reads an upload from). On the local stack each is the Storage server's equivalent.
"""

from __future__ import annotations

import os
import urllib.parse
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gapi_exceptions

from core import config
from core.clients import bucket, bucket_name

CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
CACHE_NONE = "no-cache, max-age=0"


def download_url(path: str, token: str | None = None) -> str:
    quoted = urllib.parse.quote(path, safe="")
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator:
        host = emulator.rstrip("/")
        if not host.startswith("http"):
            host = f"http://{host}"
        return f"{host}/download/storage/v1/b/{bucket_name()}/o/{quoted}?alt=media"
    url = f"https://firebasestorage.googleapis.com/v0/b/{bucket_name()}/o/{quoted}?alt=media"
    return f"{url}&token={token}" if token else url


def _new_blob(path: str, cache_control: str, metadata: dict[str, str] | None) -> tuple[Any, str]:
    """A blob with our metadata: a Firebase download token and Cache-Control."""
    blob = bucket().blob(path)
    token = str(uuid.uuid4())
    blob.metadata = {"firebaseStorageDownloadTokens": token, **(metadata or {})}
    blob.cache_control = cache_control
    return blob, token


def upload_file(
    local: Path | str,
    path: str,
    content_type: str,
    *,
    cache_control: str = CACHE_IMMUTABLE,
    metadata: dict[str, str] | None = None,
    if_generation_match: int | None = None,
) -> str:
    """Upload a local file to `path` in our bucket; returns its download URL.

    `if_generation_match=0` writes the object only if it does not exist yet (a concurrent
    writer then gets google.api_core.exceptions.PreconditionFailed).
    """
    blob, token = _new_blob(path, cache_control, metadata)
    blob.upload_from_filename(
        str(local), content_type=content_type, if_generation_match=if_generation_match
    )
    return download_url(path, token)


def upload_bytes(
    data: bytes | str,
    path: str,
    content_type: str,
    *,
    cache_control: str = CACHE_IMMUTABLE,
    metadata: dict[str, str] | None = None,
) -> str:
    blob, token = _new_blob(path, cache_control, metadata)
    blob.upload_from_string(data, content_type=content_type)
    return download_url(path, token)


def download_to(path: str, local: Path) -> Path:
    bucket().blob(path).download_to_filename(str(local))
    return local


def read_text(path: str) -> str | None:
    """The object's text, or None when it does not exist."""
    try:
        return str(bucket().blob(path).download_as_text())
    except gapi_exceptions.NotFound:
        return None


def delete_prefix(prefix: str) -> int:
    """Delete every object under `prefix`; returns how many this call deleted (objects
    deleted meanwhile by someone else are not an error)."""
    count = 0
    for blob in bucket().list_blobs(prefix=prefix):
        try:
            blob.delete()
            count += 1
        except gapi_exceptions.NotFound:
            pass
    return count


def source_url(path: str) -> str:
    """A URL ffmpeg can read an object from while it downloads (range requests work).

    Local stack / emulators: the Storage server's download URL. Production: a V4 signed URL
    (1 h), signed through IAM signBlob with the function's own service account, which needs
    roles/iam.serviceAccountTokenCreator on itself.
    """
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        return download_url(path)
    import google.auth
    import google.auth.transport.requests

    credentials, _ = google.auth.default()
    credentials.refresh(google.auth.transport.requests.Request())
    return str(
        bucket()
        .blob(path)
        .generate_signed_url(
            version="v4",
            expiration=timedelta(hours=1),
            method="GET",
            service_account_email=getattr(credentials, "service_account_email", None),
            access_token=credentials.token,
        )
    )


def public_base() -> str:
    """Where `streams/` is served path-style: STREAM_BASE_URL (a CDN), else the bucket's
    public path; on the local stack the Storage server's path-style URL (same shape)."""
    base = config.STREAM_BASE_URL.value
    if base:
        return base
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator:
        host = emulator if emulator.startswith("http") else f"http://{emulator}"
        return f"{host.rstrip('/')}/{bucket_name()}"
    return f"https://storage.googleapis.com/{bucket_name()}"
