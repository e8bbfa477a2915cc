"""Lazily created Firebase clients, shared by every handler.

`init_app()` is called once when main.py is imported: it only registers the default
firebase_admin app (no network), so import stays cheap. Against the local stack or the
official emulators (FIRESTORE_EMULATOR_HOST / STORAGE_EMULATOR_HOST set) the app uses the
emulator credential, so no Google login is needed.
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any

import firebase_admin
from firebase_admin import _utils, credentials, firestore, storage
from google.cloud import firestore as gcf
from google.cloud import storage as gcs


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


@cache
def db() -> gcf.Client:
    init_app()
    return firestore.client()


def bucket() -> gcs.Bucket:
    init_app()
    return storage.bucket(bucket_name())
