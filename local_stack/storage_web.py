"""The Firebase Storage web API (`/v0`) on the local stack, stored in the same bucket.

The Firebase Storage web SDK does not speak the GCS JSON API that fake-gcs-server serves;
it speaks `/v0/b/{bucket}/o...`. firebase-tools' Storage emulator serves that API but
always starts a rules runtime that is a download, so this module serves it instead:

- `uploadBytes`: POST `/v0/b/B/o?name=N` with `X-Goog-Upload-Protocol: multipart`
  (multipart/related: JSON metadata, then the bytes);
- `uploadBytesResumable`: POST `...?name=N` with `X-Goog-Upload-Command: start`, answered
  with `X-Goog-Upload-URL`; then `upload` / `upload, finalize` / `finalize` / `query` /
  `cancel` commands with `X-Goog-Upload-Offset`, answered with `X-Goog-Upload-Status`
  (`active` | `final`) and, for `query`, `X-Goog-Upload-Size-Received`;
- `getMetadata` / `getDownloadURL`: GET `/v0/b/B/o/N` (Firebase metadata JSON with
  `downloadTokens`; an object without a token gets one, as in production);
- downloads: GET `/v0/b/B/o/N?alt=media[&token=T]` with Range support (a wrong token
  is refused with 403, as in production);
- `updateMetadata` (PATCH), `deleteObject` (DELETE), `list`/`listAll` (GET `/v0/b/B/o`).

Every object is written to fake-gcs-server through its JSON API, so an object uploaded by
the web SDK and one uploaded by google-cloud-storage are the same object, and the stack's
finalize trigger fires the same way for both. The download token lives where Firebase
keeps it, in the custom metadata key `firebaseStorageDownloadTokens`.

storage.rules are NOT evaluated: any request is served whatever its Authorization header
says. Say so wherever this server is mentioned; it is not a stand-in for the rules.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import threading
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import requests

from local_stack.http_server import BackgroundServer

log = logging.getLogger("local_stack.storage_web")
TOKEN_KEY = "firebaseStorageDownloadTokens"
CHUNK = 1 << 20
EXPOSED_HEADERS = ", ".join(
    [
        "Content-Type",
        "Content-Length",
        "Content-Range",
        "Accept-Ranges",
        "ETag",
        "X-Firebase-Storage-Version",
        "X-Goog-Upload-URL",
        "X-Goog-Upload-Status",
        "X-Goog-Upload-Size-Received",
        "X-Goog-Upload-Chunk-Granularity",
        "X-Goog-Upload-Control-URL",
        "X-GUploader-UploadID",
    ]
)
WRITABLE = (
    "cacheControl",
    "contentDisposition",
    "contentEncoding",
    "contentLanguage",
    "contentType",
)


class StorageError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Upload:
    """One resumable upload session."""

    upload_id: str
    name: str
    resource: dict[str, Any]
    expected_size: int | None
    path: Path
    received: int = 0
    status: str = "active"  # active | final | cancelled
    result: dict[str, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def firebase_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    """A GCS object resource as the Firebase Storage API returns it."""
    custom = dict(obj.get("metadata") or {})
    tokens = custom.pop(TOKEN_KEY, "")
    return {
        "name": obj["name"],
        "bucket": obj["bucket"],
        "generation": str(obj.get("generation", "")),
        "metageneration": str(obj.get("metageneration", "1")),
        "contentType": obj.get("contentType", "application/octet-stream"),
        "timeCreated": obj.get("timeCreated"),
        "updated": obj.get("updated"),
        "storageClass": obj.get("storageClass", "STANDARD"),
        "size": str(obj.get("size", "0")),
        "md5Hash": obj.get("md5Hash"),
        "crc32c": obj.get("crc32c"),
        "etag": obj.get("etag"),
        "downloadTokens": tokens,
        "contentEncoding": obj.get("contentEncoding") or "identity",
        "contentDisposition": obj.get("contentDisposition"),
        "contentLanguage": obj.get("contentLanguage"),
        "cacheControl": obj.get("cacheControl"),
        "metadata": custom,
    }


def gcs_resource(name: str, resource: dict[str, Any], content_type: str | None) -> dict[str, Any]:
    """The GCS object resource to write for a Firebase upload's metadata (with a new token)."""
    out: dict[str, Any] = {"name": name}
    for key in WRITABLE:
        if resource.get(key):
            out[key] = resource[key]
    if content_type and not out.get("contentType"):
        out["contentType"] = content_type
    out.setdefault("contentType", "application/octet-stream")
    custom = {k: str(v) for k, v in (resource.get("metadata") or {}).items() if v is not None}
    custom[TOKEN_KEY] = str(uuid.uuid4())
    out["metadata"] = custom
    return out


def parse_multipart_related(content_type: str, body: bytes) -> tuple[dict[str, Any], str, bytes]:
    """(JSON metadata, media content type, media bytes) of a multipart/related upload body."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise StorageError(400, "multipart upload without a boundary")
    delimiter = b"--" + m.group(1).encode()
    parts = [p for p in body.split(delimiter) if p not in (b"", b"--", b"--\r\n", b"\r\n")]
    if len(parts) < 2:
        raise StorageError(400, "a multipart upload needs a metadata part and a media part")

    def split(part: bytes) -> tuple[dict[str, str], bytes]:
        part = part.removeprefix(b"\r\n")
        head, _, payload = part.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return headers, payload.removesuffix(b"\r\n")

    _, meta = split(parts[0])
    media_headers, media = split(parts[1])
    try:
        metadata = json.loads(meta or b"{}")
    except ValueError as exc:
        raise StorageError(400, f"bad metadata part: {exc}") from exc
    return metadata, media_headers.get("content-type", ""), media


class FirebaseStorageAPI:
    """Serves `/v0` on `port`, storing into `bucket` of the GCS server at `gcs_url`."""

    def __init__(self, gcs_url: str, work_dir: Path, port: int = 0):
        self.gcs = gcs_url.rstrip("/")
        self.work_dir = work_dir
        shutil.rmtree(work_dir, ignore_errors=True)
        work_dir.mkdir(parents=True, exist_ok=True)
        self.uploads: dict[str, Upload] = {}
        self._uploads_lock = threading.Lock()
        self._http = requests.Session()
        api = self

        class Handler(_Handler):
            storage = api

        self._server = BackgroundServer(Handler, port=port, name="storage-v0")

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> FirebaseStorageAPI:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
        shutil.rmtree(self.work_dir, ignore_errors=True)

    # -- GCS JSON API ------------------------------------------------------------------
    def _object_url(self, bucket: str, name: str) -> str:
        return f"{self.gcs}/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}"

    def get_object(self, bucket: str, name: str) -> dict[str, Any]:
        r = self._http.get(self._object_url(bucket, name), timeout=30)
        if r.status_code == 404:
            raise StorageError(404, "Not Found.")
        r.raise_for_status()
        obj: dict[str, Any] = r.json()
        return obj

    def with_token(self, bucket: str, obj: dict[str, Any]) -> dict[str, Any]:
        """The object, given a download token first if it has none (as production does)."""
        if (obj.get("metadata") or {}).get(TOKEN_KEY):
            return obj
        metadata = {**(obj.get("metadata") or {}), TOKEN_KEY: str(uuid.uuid4())}
        r = self._http.patch(
            self._object_url(bucket, obj["name"]), json={"metadata": metadata}, timeout=30
        )
        r.raise_for_status()
        patched: dict[str, Any] = r.json()
        return patched

    def write_object(
        self, bucket: str, resource: dict[str, Any], data_path: Path
    ) -> dict[str, Any]:
        """Write one object (resumable upload to the GCS server, streamed from a file)."""
        start = self._http.post(
            f"{self.gcs}/upload/storage/v1/b/{bucket}/o",
            params={"uploadType": "resumable", "name": resource["name"]},
            json=resource,
            headers={"X-Upload-Content-Type": resource["contentType"]},
            timeout=30,
        )
        start.raise_for_status()
        with data_path.open("rb") as fh:
            r = self._http.put(
                start.headers["Location"],
                data=fh,
                headers={
                    "Content-Type": resource["contentType"],
                    "Content-Length": str(data_path.stat().st_size),
                },
                timeout=600,
            )
        r.raise_for_status()
        obj: dict[str, Any] = r.json()
        return obj

    def update_object(self, bucket: str, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        patch: dict[str, Any] = {k: changes[k] for k in WRITABLE if k in changes}
        if "metadata" in changes:
            current = self.get_object(bucket, name).get("metadata") or {}
            custom = {k: v for k, v in (changes["metadata"] or {}).items() if v is not None}
            patch["metadata"] = {**custom, TOKEN_KEY: current.get(TOKEN_KEY) or str(uuid.uuid4())}
        r = self._http.patch(self._object_url(bucket, name), json=patch, timeout=30)
        if r.status_code == 404:
            raise StorageError(404, "Not Found.")
        r.raise_for_status()
        obj: dict[str, Any] = r.json()
        return obj

    def delete_object(self, bucket: str, name: str) -> None:
        r = self._http.delete(self._object_url(bucket, name), timeout=30)
        if r.status_code == 404:
            raise StorageError(404, "Not Found.")
        r.raise_for_status()

    def list_objects(self, bucket: str, params: dict[str, str]) -> dict[str, Any]:
        query = {
            k: params[k]
            for k in ("prefix", "delimiter", "pageToken", "maxResults")
            if params.get(k)
        }
        r = self._http.get(f"{self.gcs}/storage/v1/b/{bucket}/o", params=query, timeout=30)
        r.raise_for_status()
        data = r.json()
        out: dict[str, Any] = {
            "prefixes": data.get("prefixes") or [],
            "items": [{"name": o["name"], "bucket": bucket} for o in data.get("items") or []],
        }
        if data.get("nextPageToken"):
            out["nextPageToken"] = data["nextPageToken"]
        return out

    def open_media(self, bucket: str, name: str, range_header: str | None) -> requests.Response:
        url = f"{self.gcs}/download/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}"
        headers = {"Range": range_header} if range_header else {}
        return self._http.get(
            url, params={"alt": "media"}, headers=headers, stream=True, timeout=60
        )

    # -- resumable sessions ----------------------------------------------------------
    def start_upload(self, name: str, resource: dict[str, Any], size: int | None) -> Upload:
        upload_id = uuid.uuid4().hex
        up = Upload(upload_id, name, resource, size, self.work_dir / upload_id)
        up.path.touch()
        with self._uploads_lock:
            self.uploads[upload_id] = up
        return up

    def upload(self, upload_id: str) -> Upload:
        with self._uploads_lock:
            up = self.uploads.get(upload_id)
        if up is None:
            raise StorageError(404, "Upload session not found.")
        return up

    def finish(self, up: Upload) -> None:
        """Drop a finished session's bytes; the session stays so a retried finalize is answered."""
        with contextlib.suppress(FileNotFoundError):
            up.path.unlink()


class _Handler(BaseHTTPRequestHandler):
    storage: FirebaseStorageAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    # -- responses ---------------------------------------------------------------------
    def _cors(self) -> None:
        self.send_header("Access-Control-Allow-Origin", self.headers.get("Origin") or "*")
        self.send_header("Access-Control-Expose-Headers", EXPOSED_HEADERS)
        self.send_header("Vary", "Origin")

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self._cors()
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode()
        self._send(
            status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        )

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": {"code": status, "message": message}})

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _route(self) -> tuple[str, str | None, dict[str, str]]:
        """(bucket, object name or None, query) of a /v0 path."""
        parts = urllib.parse.urlsplit(self.path)
        m = re.fullmatch(r"/v0/b/([^/]+)/o(?:/(.+))?", parts.path)
        if not m:
            raise StorageError(404, "Not Found.")
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        name = urllib.parse.unquote(m.group(2)) if m.group(2) else None
        return urllib.parse.unquote(m.group(1)), name, query

    def _handle(self, action: Any) -> None:
        try:
            action()
        except StorageError as e:
            self._error(e.status, e.message)
        except requests.RequestException as e:
            log.warning("storage server request failed: %s", e)
            self._error(503, f"the Storage server is unavailable: {e}")
        except (BrokenPipeError, ConnectionResetError):
            pass

    # -- verbs -------------------------------------------------------------------------
    def do_OPTIONS(self) -> None:
        self.send_response(204)
        self._cors()
        self.send_header(
            "Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
        )
        self.send_header(
            "Access-Control-Allow-Headers",
            self.headers.get("Access-Control-Request-Headers") or "*",
        )
        self.send_header("Access-Control-Max-Age", "3600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._handle(self._get)

    def do_HEAD(self) -> None:
        self._handle(self._get)

    def do_POST(self) -> None:
        self._handle(self._post)

    def do_PUT(self) -> None:
        self._handle(self._post)

    def do_PATCH(self) -> None:
        self._handle(self._patch)

    def do_DELETE(self) -> None:
        self._handle(self._delete)

    def _get(self) -> None:
        api = self.storage
        bucket, name, query = self._route()
        if name is None:
            self._json(200, api.list_objects(bucket, query))
            return
        obj = api.get_object(bucket, name)
        if query.get("alt") != "media":
            self._json(200, firebase_metadata(api.with_token(bucket, obj)))
            return
        token = query.get("token")
        tokens = ((obj.get("metadata") or {}).get(TOKEN_KEY) or "").split(",")
        if token is not None and token not in tokens:
            raise StorageError(403, "Permission denied: the download token is not valid.")
        self._stream_media(bucket, name, obj)

    def _stream_media(self, bucket: str, name: str, obj: dict[str, Any]) -> None:
        with self.storage.open_media(bucket, name, self.headers.get("Range")) as r:
            if r.status_code not in (200, 206):
                raise StorageError(r.status_code, r.text[:200] or "download failed")
            self.send_response(r.status_code)
            self._cors()
            headers = {
                "Content-Type": obj.get("contentType") or "application/octet-stream",
                "Accept-Ranges": "bytes",
                "Cache-Control": obj.get("cacheControl") or "",
                "ETag": obj.get("etag") or "",
                "x-goog-generation": str(obj.get("generation", "")),
            }
            for k in ("Content-Length", "Content-Range"):
                if r.headers.get(k):
                    headers[k] = r.headers[k]
            for k, v in headers.items():
                if v:
                    self.send_header(k, v)
            self.end_headers()
            if self.command == "HEAD":
                return
            for chunk in r.iter_content(CHUNK):
                self.wfile.write(chunk)

    def _post(self) -> None:
        api = self.storage
        bucket, name, query = self._route()
        protocol = (
            self.headers.get("X-Goog-Upload-Protocol") or query.get("uploadType") or ""
        ).lower()
        command = (self.headers.get("X-Goog-Upload-Command") or "").lower()
        if "upload_id" in query:
            self._continue(bucket, api.upload(query["upload_id"]), command)
            return
        name = name or query.get("name")
        if not name:
            raise StorageError(400, "an upload needs an object name (?name=)")
        if protocol == "resumable" or command == "start":
            self._start_resumable(bucket, name)
        elif protocol == "multipart":
            metadata, media_type, data = parse_multipart_related(
                self.headers.get("Content-Type", ""), self._body()
            )
            self._store(bucket, gcs_resource(name, metadata, media_type), data)
        else:  # a plain media upload: the body is the object
            resource = gcs_resource(name, {}, self.headers.get("Content-Type"))
            self._store(bucket, resource, self._body())

    def _store(self, bucket: str, resource: dict[str, Any], data: bytes) -> None:
        path = self.storage.work_dir / f"one-shot-{uuid.uuid4().hex}"
        try:
            path.write_bytes(data)
            obj = self.storage.write_object(bucket, resource, path)
        finally:
            path.unlink(missing_ok=True)
        self._json(200, firebase_metadata(obj))

    def _start_resumable(self, bucket: str, name: str) -> None:
        body = self._body()
        try:
            metadata = json.loads(body) if body else {}
        except ValueError as exc:
            raise StorageError(400, f"bad upload metadata: {exc}") from exc
        size_header = self.headers.get("X-Goog-Upload-Header-Content-Length")
        content_type = self.headers.get("X-Goog-Upload-Header-Content-Type")
        resource = gcs_resource(name, metadata, content_type)
        up = self.storage.start_upload(name, resource, int(size_header) if size_header else None)
        host = self.headers.get("Host") or f"127.0.0.1:{self.storage.port}"
        url = (
            f"http://{host}/v0/b/{urllib.parse.quote(bucket, safe='')}/o?"
            + urllib.parse.urlencode(
                {"name": name, "upload_id": up.upload_id, "upload_protocol": "resumable"}
            )
        )
        self._send(
            200,
            headers={
                "X-Goog-Upload-Status": "active",
                "X-Goog-Upload-URL": url,
                "X-Goog-Upload-Chunk-Granularity": str(256 * 1024),
                "X-Goog-Upload-Control-URL": "",
                "X-GUploader-UploadID": up.upload_id,
            },
        )

    def _continue(self, bucket: str, up: Upload, command: str) -> None:
        body = self._body()
        with up.lock:
            if command == "query":
                self._send(
                    200,
                    headers={
                        "X-Goog-Upload-Status": up.status,
                        "X-Goog-Upload-Size-Received": str(up.received),
                    },
                )
                return
            if command == "cancel":
                up.status = "cancelled"
                self.storage.finish(up)
                self._send(200)
                return
            if up.status == "final" and up.result is not None:  # a retried finalize
                self._json(200, up.result, {"X-Goog-Upload-Status": "final"})
                return
            if up.status != "active":
                raise StorageError(400, f"the upload is {up.status}")
            if "upload" in command:
                offset = int(self.headers.get("X-Goog-Upload-Offset") or up.received)
                if offset > up.received:
                    raise StorageError(
                        400, f"offset {offset} is past the {up.received} bytes received"
                    )
                with up.path.open("r+b") as fh:  # a retried chunk overwrites from its offset
                    fh.truncate(offset)
                    fh.seek(offset)
                    fh.write(body)
                up.received = offset + len(body)
            if "finalize" not in command:
                self._send(
                    200,
                    headers={
                        "X-Goog-Upload-Status": "active",
                        "X-GUploader-UploadID": up.upload_id,
                    },
                )
                return
            if up.expected_size is not None and up.received != up.expected_size:
                raise StorageError(
                    400, f"received {up.received} bytes, the upload declared {up.expected_size}"
                )
            obj = self.storage.write_object(bucket, up.resource, up.path)
            up.status, up.result = "final", firebase_metadata(obj)
            self.storage.finish(up)
            self._json(200, up.result, {"X-Goog-Upload-Status": "final"})

    def _patch(self) -> None:
        bucket, name, _ = self._route()
        if name is None:
            raise StorageError(400, "PATCH needs an object")
        try:
            changes = json.loads(self._body() or b"{}")
        except ValueError as exc:
            raise StorageError(400, f"bad metadata: {exc}") from exc
        self._json(200, firebase_metadata(self.storage.update_object(bucket, name, changes)))

    def _delete(self) -> None:
        bucket, name, _ = self._route()
        if name is None:
            raise StorageError(400, "DELETE needs an object")
        self.storage.delete_object(bucket, name)
        self._send(204)
