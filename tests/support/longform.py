"""Driving long-form jobs like a frontend: the callable over HTTP with a signed-in user's ID
token, and a Firestore listener on the user's jobs (tests/integration/test_longform.py,
tests/e2e/test_player.py)."""

from __future__ import annotations

import uuid
from typing import Any

import requests
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from local_stack.stack import LocalStack
from tests.watch import DocWatcher


class JobWatcher(DocWatcher):
    """A listener on the user's long-form jobs (each test uses a fresh user with one job),
    attached before the callable runs, so the first snapshot (`queued`) is seen too."""

    def __init__(self, db: firestore.Client, uid: str):
        query = db.collection("videoJobs").where(filter=FieldFilter("userId", "==", uid))
        super().__init__(query, path=f"videoJobs?userId={uid}")


def call(stack: LocalStack, name: str, data: Any, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(stack.function_url(name), json={"data": data}, headers=headers, timeout=30)


def start_job(stack: LocalStack, token: str, **data: Any) -> str:
    """A long-form job of 2 s 480p segments unless `data` says otherwise; its id."""
    r = call(
        stack, "triggerlongformvideojob", {"segmentSeconds": 2, "resolution": "480p", **data}, token
    )
    assert r.status_code == 200, r.text
    return str(r.json()["result"]["jobId"])


def user() -> str:
    return f"lf-{uuid.uuid4().hex[:10]}"
