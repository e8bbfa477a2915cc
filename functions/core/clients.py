"""Lazily created Firebase clients, shared by every handler.

`init_app()` is called once when main.py is imported: it only registers the default
firebase_admin app (no network), so import stays cheap. Against the local stack or the
official emulators (FIRESTORE_EMULATOR_HOST / STORAGE_EMULATOR_HOST set) the app uses the
emulator credential, so no Google login is needed.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

import firebase_admin
import google.cloud.storage as gcs
from firebase_admin import _utils, credentials
from google.cloud import firestore as gcf


def using_emulators() -> bool:
    return bool(
        os.environ.get("FIRESTORE_EMULATOR_HOST") or os.environ.get("STORAGE_EMULATOR_HOST")
    )


class _EmulatorCredential(credentials.Base):
    def get_credential(self) -> Any:
        return _utils.EmulatorAdminCredentials()


def firebase_config() -> dict[str, Any]:
    raw = os.environ.get("FIREBASE_CONFIG", "")
    if raw.startswith("{"):
        return dict(json.loads(raw))
    if raw and os.path.exists(raw):
        with open(raw) as fh:
            return dict(json.load(fh))
    return {}


def project_id() -> str:
    return str(
        firebase_config().get("projectId")
        or os.environ.get("GCLOUD_PROJECT")
        or os.environ.get("GOOGLE_CLOUD_PROJECT")
        or "demo-media-backend"
    )


def bucket_name() -> str:
    return str(
        os.environ.get("STORAGE_BUCKET")
        or firebase_config().get("storageBucket")
        or f"{project_id()}.appspot.com"
    )


def init_app() -> firebase_admin.App:
    try:
        return firebase_admin.get_app()
    except ValueError:
        pass
    options = {"projectId": project_id(), "storageBucket": bucket_name()}
    cred = _EmulatorCredential() if using_emulators() else None
    return firebase_admin.initialize_app(cred, options)


_clients: dict[tuple[str, str | None, str], Any] = {}
_clients_lock = threading.Lock()


def _client(kind: str, emulator_env: str, make: Callable[[str], Any]) -> Any:
    """One client per (kind, emulator address, project), created on first use.

    Keyed by the emulator address so a process that talks to more than one local stack
    (benchmarks, tests) never reuses a client bound to another server.
    """
    key = (kind, os.environ.get(emulator_env), project_id())
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            init_app()
            client = _clients[key] = make(key[2])
        return client


def db() -> gcf.Client:
    client: gcf.Client = _client(
        "firestore", "FIRESTORE_EMULATOR_HOST", lambda project: gcf.Client(project=project)
    )
    return client


def storage_client() -> gcs.Client:
    client: gcs.Client = _client(
        "storage", "STORAGE_EMULATOR_HOST", lambda project: gcs.Client(project=project)
    )
    return client


def bucket() -> gcs.Bucket:
    return storage_client().bucket(bucket_name())
