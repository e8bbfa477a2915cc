"""Pure pieces of event delivery: which function a change triggers, and the CloudEvent it gets.

Production shapes (what Eventarc sends and the firebase_functions SDK parses):
- Firestore: binary-mode CloudEvent, datacontenttype application/protobuf, data a
  `google.events.cloud.firestore.v1.DocumentEventData`, extension attributes location,
  project, namespace, database, document (the path relative to `documents/`).
- Storage: datacontenttype application/json, data a StorageObjectData JSON object.
"""

from __future__ import annotations

import base64
import hashlib
import re
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

FIRESTORE_EVENT_TYPES = {
    "create": (
        "google.cloud.firestore.document.v1.created",
        "google.cloud.firestore.document.v1.written",
    ),
    "update": (
        "google.cloud.firestore.document.v1.updated",
        "google.cloud.firestore.document.v1.written",
    ),
    "delete": (
        "google.cloud.firestore.document.v1.deleted",
        "google.cloud.firestore.document.v1.written",
    ),
}
STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"


@dataclass(frozen=True)
class Endpoint:
    """One function as the manifest (functions.yaml) describes it."""

    name: str
    kind: str  # "event" | "https" | "callable" | "task" | "schedule"
    spec: dict[str, Any]

    @property
    def event_type(self) -> str | None:
        return (self.spec.get("eventTrigger") or {}).get("eventType")

    @property
    def document_pattern(self) -> str | None:
        trig = self.spec.get("eventTrigger") or {}
        return (trig.get("eventFilterPathPatterns") or {}).get("document") or (
            trig.get("eventFilters") or {}
        ).get("document")

    @property
    def bucket(self) -> str | None:
        return ((self.spec.get("eventTrigger") or {}).get("eventFilters") or {}).get("bucket")


def endpoints_from_manifest(manifest: dict[str, Any]) -> list[Endpoint]:
    out = []
    for name, spec in (manifest.get("endpoints") or {}).items():
        if "eventTrigger" in spec:
            kind = "event"
        elif "callableTrigger" in spec:
            kind = "callable"
        elif "taskQueueTrigger" in spec:
            kind = "task"
        elif "scheduleTrigger" in spec:
            kind = "schedule"
        else:
            kind = "https"
        out.append(Endpoint(name=name, kind=kind, spec=spec))
    return out


def match_document(pattern: str, document: str) -> dict[str, str] | None:
    """Match `users/{uid}/jobs/{jobId}` (also `{name=**}`) against a document path."""
    regex = ""
    for i, part in enumerate(pattern.strip("/").split("/")):
        sep = "" if i == 0 else "/"
        m = re.fullmatch(r"\{([^}=]+)(=\*\*)?\}", part)
        if m and m.group(2):
            regex += f"{sep}(?P<{m.group(1)}>.+)"
        elif m:
            regex += f"{sep}(?P<{m.group(1)}>[^/]+)"
        elif part == "*":
            regex += f"{sep}[^/]+"
        elif part == "**":
            regex += f"{sep}.+"
        else:
            regex += sep + re.escape(part)
    found = re.fullmatch(regex, document.strip("/"))
    return found.groupdict() if found else None


def relative_document(full_name: str) -> tuple[str, str, str]:
    """projects/P/databases/D/documents/a/b -> (project, database, 'a/b')."""
    m = re.fullmatch(r"projects/([^/]+)/databases/([^/]+)/documents/(.+)", full_name)
    if not m:
        raise ValueError(f"not a document name: {full_name}")
    return m.group(1), m.group(2), m.group(3)


def _delimited(field_number: int, payload: bytes) -> bytes:
    tag = (field_number << 3) | 2
    length = len(payload)
    varint = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        varint.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes([tag]) + bytes(varint) + payload


def document_event_data(value_b64: str | None, old_value_b64: str | None) -> bytes:
    """Serialize DocumentEventData{value=1, old_value=2} from two serialized v1 Documents.

    google.events' Document uses the same field numbers as google.firestore.v1.Document,
    so the bytes the Firestore server produced are embedded as they are.
    """
    out = b""
    if value_b64:
        out += _delimited(1, base64.b64decode(value_b64))
    if old_value_b64:
        out += _delimited(2, base64.b64decode(old_value_b64))
    return out


def firestore_event(
    *, event_type: str, full_name: str, data: bytes, time: datetime | None = None, event_id: str
) -> tuple[dict[str, str], bytes]:
    project, database, document = relative_document(full_name)
    attrs = {
        "specversion": "1.0",
        "id": event_id,
        "source": f"//firestore.googleapis.com/projects/{project}/databases/{database}",
        "type": event_type,
        "subject": f"documents/{document}",
        "time": _rfc3339(time),
        "datacontenttype": "application/protobuf",
        "dataschema": "https://github.com/googleapis/google-cloudevents/blob/main/proto/google/events/cloud/firestore/v1/data.proto",
        "location": "us-central1",
        "project": project,
        "namespace": "(default)",
        "database": database,
        "document": document,
    }
    return attrs, data


def storage_event(
    *, bucket: str, obj: dict[str, Any], event_id: str
) -> tuple[dict[str, str], dict[str, Any]]:
    attrs = {
        "specversion": "1.0",
        "id": event_id,
        "source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "type": STORAGE_FINALIZED,
        "subject": f"objects/{obj['name']}",
        "time": obj.get("updated") or _rfc3339(None),
        "datacontenttype": "application/json",
    }
    return attrs, obj


def header_value(value: str) -> str:
    """A CloudEvents attribute as an HTTP header value (binary mode): characters outside
    printable ASCII, and '%' and '"', are percent-encoded, as the HTTP binding requires."""
    return "".join(
        c if 0x20 <= ord(c) < 0x7F and c not in '%"' else urllib.parse.quote(c, safe="")
        for c in value
    )


def stable_event_id(*parts: str) -> str:
    """Deterministic id: the same change always produces the same event id."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def _rfc3339(time: datetime | None) -> str:
    t = time or datetime.now(UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
