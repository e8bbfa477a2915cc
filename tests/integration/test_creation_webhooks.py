"""Creations that do not hold an instance, on the local stack: on Replicate the worker records
the prediction and its task attempt ends, and the signed callback (or the sweep's reconciler)
makes the draft; on Veo short `providerpoll` attempts look at the operation
(docs/webhooks.md, docs/creations.md "The worker").

The host runs with CREATION_PROVIDER=replicate and PROVIDER_WEBHOOK_URL pointing at its own
`providerwebhook` function; the fake Replicate API calls back, signed (tests/fakes/provider_api.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from google.cloud import firestore

from local_stack.stack import LocalStack
from media.probe import probe
from tests.fakes.provider_api import FakeProviderAPI
from tests.integration.test_creations import (
    FINAL,
    assert_balanced,
    create,
    entries_by_type,
    new_user,
)
from tests.support.stack import task_attempts, task_statuses
from tests.watch import DocWatcher, wait_until

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def hooked(stack: LocalStack, provider_api: FakeProviderAPI) -> Iterator[LocalStack]:
    with stack.host_params(
        PROVIDER_WEBHOOK_URL=stack.function_url("providerwebhook"),
        REPLICATE_WEBHOOK_SECRET=provider_api.webhook_secret,
        WEBHOOK_RECONCILE_AFTER_SECONDS="0",
        CREATION_PROVIDER="replicate",
        REPLICATE_API_TOKEN="r8_local_fake_token",
        GEMINI_API_KEY="gm_local_fake_key",
    ):
        yield stack


def start(stack: LocalStack, db: firestore.Client, prompt: str) -> tuple[str, str, Any]:
    """A new user with 40 tokens and their 4 s creation: (uid, creation id, its document)."""
    uid = new_user(40)
    cid = create(stack, uid, prompt=prompt)["creationId"]
    return uid, cid, db.collection("creations").document(cid)


def waiting_prediction(ref: firestore.DocumentReference) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        record = (ref.get().to_dict() or {}).get("prediction") or {}
        return record if record.get("state") == "waiting" and record.get("id") else None

    return dict(wait_until(check, 60, what=f"{ref.id} waiting for its prediction"))


def charged_once(uid: str) -> None:
    by_type = entries_by_type(uid)
    assert [e["amount"] for e in by_type["debit"]] == [-40] and not by_type["refund"]
    assert_balanced(uid, 0)


def refunded_once(uid: str) -> None:
    by_type = entries_by_type(uid)
    assert len(by_type["debit"]) == 1 and [e["amount"] for e in by_type["refund"]] == [40]
    assert_balanced(uid, 40)


def test_a_creation_on_replicate_ends_draft_from_the_callback_and_its_worker_did_not_wait(
    hooked: LocalStack, provider_api: FakeProviderAPI, db, tmp_path: Path
):
    prompt = f"A paper lantern drifting over a lake {uuid.uuid4().hex[:8]} [api:hold]"
    uid, cid, ref = start(hooked, db, prompt)
    record = waiting_prediction(ref)
    # the worker's task got its answer while the prediction was still running: no instance
    # waited for the provider
    assert task_statuses(hooked, cid) == [200]
    (prediction,) = provider_api.predictions_for(prompt)
    assert prediction.status not in ("succeeded", "failed"), "the provider is still at work"
    assert ref.get().to_dict()["status"] == "processing"
    with DocWatcher(ref) as watch:
        provider_api.release(prompt)
        final = watch.wait_for(lambda d: d.get("status") in FINAL, 90)
        progress = watch.values("progress")
    assert final["status"] == "draft", final.get("error")
    assert final["provider"] == "replicate" and final["modelUsed"] == "bytedance/seedance-1-lite"
    assert final["prediction"]["id"] == record["id"] and final["attempts"] == 1
    assert final["mediaPath"] == f"users/{uid}/creations/{cid}.mp4"
    assert final["thumbnailPath"] == f"users/{uid}/creations/{cid}.jpg"
    assert progress == sorted(progress) and progress[-1] == 100
    mp4 = tmp_path / "creation.mp4"
    mp4.write_bytes(requests.get(final["mediaUrl"], timeout=30).content)
    info = probe(mp4)
    assert info.video is not None and abs(info.duration_s - 4.0) < 0.1
    assert provider_api.creates_for(prompt) == 1
    assert provider_api.requests_to(f"/v1/predictions/{record['id']}", "GET") == [], "no polls"
    answered = wait_until(lambda: provider_api.callbacks_for(record["id"]), 30, what="callback")
    assert [c.status for c in answered] == [200]
    charged_once(uid)


def test_a_callback_delivered_twice_makes_one_draft(hooked, provider_api, db):
    uid, _, ref = start(hooked, db, f"A kite on a beach {uuid.uuid4().hex[:8]} [api:twice]")
    with DocWatcher(ref) as watch:
        final = watch.wait_for(lambda d: d.get("status") in FINAL, 90)
    assert final["status"] == "draft", final.get("error")
    pid = final["prediction"]["id"]
    attempts = wait_until(lambda: len(provider_api.callbacks_for(pid)) == 2 and
                          provider_api.callbacks_for(pid), 60, what="both callbacks")  # fmt: skip
    assert len({a.webhook_id for a in attempts}) == 1 and [a.status for a in attempts] == [200, 200]
    after = ref.get().to_dict()
    assert after["completedAt"] == final["completedAt"] and after["updatedAt"] == final["updatedAt"]
    charged_once(uid)


def test_a_refused_prediction_fails_the_creation_from_its_callback_refunded_once(
    hooked, provider_api, db
):
    prompt = f"Something the model refuses {uuid.uuid4().hex[:8]} [api:nsfw]"
    uid, cid, ref = start(hooked, db, prompt)
    with DocWatcher(ref) as watch:
        final = watch.wait_for(lambda d: d.get("status") in FINAL, 90)
    assert final["status"] == "failed" and final["error"]["code"] == "content-policy"
    assert final["refunded"] is True and provider_api.creates_for(prompt) == 1
    assert task_statuses(hooked, cid) == [200], "the worker's attempt ended at the create"
    assert hooked.run_scheduled("sweep_stuck_jobs") == 200
    assert ref.get().to_dict()["updatedAt"] == final["updatedAt"], "the sweep leaves it"
    refunded_once(uid)


def test_a_lost_callback_is_reconciled_by_the_sweep_into_a_draft(hooked, provider_api, db):
    prompt = f"A lighthouse in the rain {uuid.uuid4().hex[:8]} [api:never]"
    uid, _, ref = start(hooked, db, prompt)
    record = waiting_prediction(ref)
    wait_until(lambda: provider_api.predictions_for(prompt)[0].status == "succeeded", 60,
               what="the prediction ended")  # fmt: skip
    assert ref.get().to_dict()["status"] == "processing", "no callback: still waiting"
    with DocWatcher(ref) as watch:
        assert hooked.run_scheduled("sweep_stuck_jobs") == 200
        final = watch.wait_for(lambda d: d.get("status") in FINAL, 90)
    assert final["status"] == "draft", final.get("error")
    assert provider_api.callbacks_for(record["id"]) == []
    assert len(provider_api.requests_to(f"/v1/predictions/{record['id']}", "GET")) >= 1
    assert provider_api.creates_for(prompt) == 1
    charged_once(uid)


def test_a_creation_on_veo_is_polled_from_short_task_attempts(
    hooked: LocalStack, provider_api: FakeProviderAPI, db, tmp_path: Path
):
    """Veo has no callbacks: the worker records the operation and ends, and each
    `providerpoll` attempt looks once ("not yet" is a 503 Cloud Tasks retries)."""
    with hooked.host_params(CREATION_PROVIDER="veo"):
        prompt = f"A fox in the snow {uuid.uuid4().hex[:8]}"
        uid, cid, ref = start(hooked, db, prompt)
        with DocWatcher(ref) as watch:
            final = watch.wait_for(lambda d: d.get("status") in FINAL, 120)
        assert final["status"] == "draft", final.get("error")
        assert final["provider"] == "veo" and provider_api.creates_for(prompt) == 1
        assert [h["status"] for h in task_attempts(hooked, cid)] == [200]
        (poll_task,) = {d.event_id for d in hooked.deliveries
                        if d.function == "providerpoll" and cid in d.subject}  # fmt: skip
        statuses = task_statuses(hooked, poll_task)
        assert statuses[-1] < 300 and 503 in statuses, f"not yet, then done: {statuses}"
    mp4 = tmp_path / "veo.mp4"
    mp4.write_bytes(requests.get(final["mediaUrl"], timeout=30).content)
    assert abs(probe(mp4).duration_s - 4.0) < 0.1
    charged_once(uid)
