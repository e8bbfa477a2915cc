"""Our own Storage: where outputs go, and the URLs clients get for them.

Every output is written under a per-user prefix (`users/{uid}/...`) or a per-asset prefix
(`streams/{videoId}/...`) with a deterministic name, so a retried job overwrites its own
output instead of creating a second one.

URLs: in production a Firebase Storage download URL (the object carries a
`firebaseStorageDownloadTokens` metadata token, as the Firebase client SDKs do); on the
local stack the Storage server's download URL. Documents also keep the object path
(`*_path` fields) so the backend never has to parse URLs it wrote itself.
"""

from __future__ import annotations

import os
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

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


def exists(path: str) -> bool:
    return bool(bucket().blob(path).exists())


def delete_prefix(prefix: str) -> int:
    """Delete every object under `prefix`; returns how many were deleted."""
    count = 0
    for blob in bucket().list_blobs(prefix=prefix):
        blob.delete()
        count += 1
    return count
