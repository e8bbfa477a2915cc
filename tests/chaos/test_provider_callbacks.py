"""Fault injection on webhook-driven generations: nothing is paid twice.

This module runs its own stack with provider webhooks on (the host's PROVIDER_WEBHOOK_URL is
its own `providerwebhook` function) and a short job lease, so it can SIGKILL the function
host while a Replicate prediction runs, or while the request that creates it is in flight,
and check what a user and the provider's bill would show: the job completes from the
callback, with exactly one prediction created; a creation also ends `draft` charged once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from google.cloud import firestore, storage

from devtools.media_factory import make_image
from local_stack.stack import LocalStack
from tests.conftest import make_stack_settings
from tests.fakes.provider_api import FakeProviderAPI
from tests.support.documents import job_document
from tests.support.longform import JobWatcher, start_job
from tests.support.money import audit, grant
from tests.watch import DocWatcher, wait_until

pytestmark = pytest.mark.stack
VIDEOS = "video_generation_jobs"


@pytest.fixture(scope="module")
def hooked(
    tmp_path_factory: pytest.TempPathFactory, provider_api: FakeProviderAPI
) -> Iterator[LocalStack]:
    settings = make_stack_settings(
        "demo-callbacks", tmp_path_factory.mktemp("callbacks-stack"), provider_api, lease_s=4
    )
    settings.provider_webhooks = True
    settings.host_env["REPLICATE_WEBHOOK_SECRET"] = provider_api.webhook_secret
    settings.host_env["WEBHOOK_RECONCILE_AFTER_SECONDS"] = "0"
    settings.host_env["CREATION_PROVIDER"] = "replicate"
    with LocalStack(settings) as stack, stack.env():
        yield stack


@pytest.fixture(scope="module")
def hdb(hooked: LocalStack) -> firestore.Client:
    return firestore.Client(project=hooked.settings.project_id)


@pytest.fixture(scope="module")
def seed_url(hooked: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> str:
    png = make_image(tmp_path_factory.mktemp("callbacks-media") / "seed.png", 320, 180)
    bucket = storage.Client(project=hooked.settings.project_id).bucket(hooked.settings.bucket)
    bucket.blob("uploads/callbacks/seed.png").upload_from_filename(str(png))
    return hooked.storage_url("uploads/callbacks/seed.png")


@pytest.fixture()
def patient_callbacks(provider_api: FakeProviderAPI) -> Iterator[None]:
    """The fake retries a callback for up to a minute while the host is down (Replicate
    retries failed webhook deliveries too), so a slow host restart is waited for."""
    before = provider_api.callback_retry_s
    provider_api.callback_retry_s = (0.5,) * 120
    try:
        yield
    finally:
        provider_api.callback_retry_s = before


def new_job(db: firestore.Client, seed_url: str, marker: str) -> tuple[Any, dict[str, Any]]:
    text = f"A harbour at dawn {uuid.uuid4().hex[:8]} {marker}"
    job_id, doc = job_document(VIDEOS, "chaos-user", image_url=seed_url, text=text,
                               provider="replicate", resolution="480p")  # fmt: skip
    return db.collection(VIDEOS).document(job_id), doc


def prediction_state(ref: firestore.DocumentReference, state: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        record = (ref.get().to_dict() or {}).get("prediction") or {}
        return record if record.get("state") == state else None

    return dict(wait_until(check, 60, what=f"{ref.id}: prediction {state}"))


def test_host_killed_while_the_prediction_runs_completes_from_the_callback_with_one_create(
    hooked: LocalStack, provider_api: FakeProviderAPI, hdb, seed_url, patient_callbacks
):
    ref, doc = new_job(hdb, seed_url, "[api:hold]")
    with DocWatcher(ref) as watch:
        ref.set(doc)
        record = prediction_state(ref, "waiting")
        hooked.kill_host()
        hooked.start_host()
        # at-least-once delivery: the create event arrives again at the new instance
        (event_id,) = {d.event_id for d in hooked.deliveries
                       if d.function == "handle_video_generation" and ref.id in d.subject}  # fmt: skip
        hooked.redeliver(event_id)
        provider_api.release(doc["text"])
        final = watch.wait_terminal(120)
    assert final["status"] == "completed", final.get("error")
    assert provider_api.creates_for(doc["text"]) == 1, "the provider saw exactly one create"
    assert final["prediction"]["id"] == record["id"] and final["attempts"] == 1
    assert final["video_path"].endswith(f"{ref.id}.mp4")


def test_host_killed_during_the_create_request_adopts_the_prediction_from_its_callback(
    hooked: LocalStack, provider_api: FakeProviderAPI, hdb, seed_url, patient_callbacks
):
    """The instance dies after Replicate created the prediction but before it learnt the
    id: the job's record says `creating`, the callback (which carries the job in its URL)
    adopts the prediction, and no second one is ever created."""
    ref, doc = new_job(hdb, seed_url, "[api:slow-create]")
    with DocWatcher(ref) as watch:
        ref.set(doc)
        wait_until(lambda: provider_api.creates_for(doc["text"]) == 1, 60, what="the create")
        assert prediction_state(ref, "creating")["id"] is None
        hooked.kill_host()
        hooked.start_host()
        final = watch.wait_terminal(120)
    assert final["status"] == "completed", final.get("error")
    assert provider_api.creates_for(doc["text"]) == 1
    (created,) = provider_api.predictions_for(doc["text"])
    assert final["prediction"]["id"] == created.id


def test_host_killed_while_a_segment_prediction_runs_completes_with_one_create_per_segment(
    hooked: LocalStack, provider_api: FakeProviderAPI, hdb, patient_callbacks
):
    """A long-form job on Replicate: segment 1's step recorded its prediction and ended;
    the host dies while the provider works; the callback, to the new host, stores segment 1
    and the job goes on. The provider saw one create per segment."""
    tag = uuid.uuid4().hex[:8]
    texts = [f"A tram {tag} part 0", f"A tram {tag} part 1 [api:hold]", f"A tram {tag} part 2"]
    uid = f"lf-chaos-{tag}"
    with hooked.host_params(MEDIA_PROVIDER="replicate"), JobWatcher(hdb, uid) as watch:
        job_id = start_job(hooked, hooked.sign_in(uid), prompts=texts)

        def waiting() -> bool:
            data = hdb.collection("videoJobs").document(job_id).get().to_dict() or {}
            return ((data.get("slot_predictions") or {}).get("1") or {}).get("state") == "waiting"

        wait_until(waiting, 60, what="segment 1 waiting for its callback")
        hooked.kill_host()
        hooked.start_host()
        provider_api.release(texts[1])
        final = watch.wait_terminal(120)
    assert final["status"] == "completed", final.get("error")
    assert [provider_api.creates_for(t) for t in texts] == [1, 1, 1]
    assert [s["index"] for s in final["segments"]] == [0, 1, 2]


def new_creation(stack: LocalStack, db: firestore.Client, prompt: str) -> tuple[str, Any]:
    """A user granted 40 tokens and their 4 s creation (on Replicate): (uid, its document)."""
    uid = f"chaos-creator-{uuid.uuid4().hex[:6]}"
    grant(db, uid, 40)
    r = requests.post(
        stack.function_url("createvideogeneration"),
        json={"data": {"prompt": prompt, "duration": 4}},
        headers={"Authorization": f"Bearer {stack.sign_in(uid)}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return uid, db.document(f"creations/{r.json()['result']['creationId']}")


def charged_once(db: firestore.Client, uid: str) -> None:
    balance, entries = audit(db, uid)
    assert balance == sum(int(e["amount"]) for e in entries) == 0, "the ledger adds up"
    assert [e["type"] for e in entries if e["type"] != "grant"] == ["debit"], entries


def test_host_killed_while_a_creations_prediction_runs_ends_draft_charged_once(
    hooked: LocalStack, provider_api: FakeProviderAPI, hdb, patient_callbacks
):
    prompt = f"A windmill at dusk {uuid.uuid4().hex[:8]} [api:hold]"
    uid, ref = new_creation(hooked, hdb, prompt)
    record = prediction_state(ref, "waiting")
    hooked.kill_host()
    hooked.start_host()
    # Cloud Tasks may deliver the worker's task again, to the new instance: it creates nothing
    again = requests.post(
        hooked.function_url("creationworker"),
        json={"data": {"creationId": ref.id}},
        headers={"X-CloudTasks-TaskRetryCount": "0", "X-CloudTasks-QueueName": "creationworker"},
        timeout=30,
    )
    assert again.status_code == 200, again.text
    # the lease covers the provider's deadline (the job lease here is 4 s): the sweep
    # leaves a creation whose prediction still runs alone
    assert hooked.run_scheduled("sweep_stuck_jobs") == 200
    waiting = ref.get().to_dict() or {}
    assert waiting["status"] == "processing" and "redrives" not in waiting, waiting
    assert waiting["leaseExpiresAt"] > datetime.now(UTC) + timedelta(minutes=5)
    with DocWatcher(ref) as watch:
        provider_api.release(prompt)
        final = watch.wait_for(lambda d: d.get("status") in ("draft", "failed"), 120)
    assert final["status"] == "draft", final.get("error")
    assert provider_api.creates_for(prompt) == 1, "the provider saw exactly one create"
    assert final["prediction"]["id"] == record["id"] and final["attempts"] == 1
    charged_once(hdb, uid)


def test_host_killed_during_a_creations_create_request_adopts_the_prediction(
    hooked: LocalStack, provider_api: FakeProviderAPI, hdb, patient_callbacks
):
    """The worker dies before it learnt the prediction's id: Cloud Tasks' retry finds the
    creation waiting (`creating`) and creates nothing; the callback adopts the prediction."""
    prompt = f"A ferry in fog {uuid.uuid4().hex[:8]} [api:slow-create]"
    uid, ref = new_creation(hooked, hdb, prompt)
    wait_until(lambda: provider_api.creates_for(prompt) == 1, 60, what="the create")
    assert prediction_state(ref, "creating")["id"] is None
    with DocWatcher(ref) as watch:
        hooked.kill_host()
        hooked.start_host()
        final = watch.wait_for(lambda d: d.get("status") in ("draft", "failed"), 120)
    assert final["status"] == "draft", final.get("error")
    (created,) = provider_api.predictions_for(prompt)
    assert final["prediction"]["id"] == created.id
    charged_once(hdb, uid)
