"""Webhook-driven generations on the local stack: the fake Replicate API calls the stack's
`providerwebhook` function over HTTP, signed, as Replicate does (docs/webhooks.md).

The host runs with PROVIDER_WEBHOOK_URL pointing at its own `providerwebhook` function and
the fake API's signing secret, so a Replicate generation records its prediction, the
invocation ends, and the job goes on from the callback (or, when the callback is lost, from
the sweep's reconciler).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from google.cloud import firestore, storage
from standardwebhooks.webhooks import Webhook

from devtools.media_factory import make_image
from local_stack.stack import LocalStack
from media.probe import probe
from tests.fakes.provider_api import FakeProviderAPI
from tests.support.documents import job_document, scene
from tests.support.stack import task_statuses
from tests.watch import DocWatcher, run_job, wait_until

pytestmark = pytest.mark.stack

VIDEOS = "video_generation_jobs"
IMAGES = "image_generation_jobs"


def webhook_params(stack: LocalStack, provider_api: FakeProviderAPI) -> dict[str, str]:
    """The host's params for callbacks from the fake API (the sweep reconciles at once)."""
    return {
        "PROVIDER_WEBHOOK_URL": stack.function_url("providerwebhook"),
        "REPLICATE_WEBHOOK_SECRET": provider_api.webhook_secret,
        "WEBHOOK_RECONCILE_AFTER_SECONDS": "0",
    }


@pytest.fixture(scope="module")
def webhooks(stack: LocalStack, provider_api: FakeProviderAPI) -> Iterator[LocalStack]:
    with stack.host_params(
        **webhook_params(stack, provider_api),
        IMAGE_PROVIDER="replicate",
        ALLOW_PROVIDER_OVERRIDE="true",
        MEDIA_PROVIDER="local",
        REPLICATE_API_TOKEN="r8_local_fake_token",
        GEMINI_API_KEY="gm_local_fake_key",
    ):
        yield stack


@pytest.fixture(scope="module")
def seed_url(
    webhooks: LocalStack, bucket: storage.Bucket, tmp_path_factory: pytest.TempPathFactory
) -> str:
    png = make_image(tmp_path_factory.mktemp("seed") / "seed.png", 320, 180)
    path = f"uploads/test-webhooks/{uuid.uuid4().hex}.png"
    bucket.blob(path).upload_from_filename(str(png), content_type="image/png")
    return webhooks.storage_url(path)


def video_job(db: firestore.Client, seed_url: str, marker: str = "") -> tuple[Any, dict]:
    text = f"A lighthouse at dusk {uuid.uuid4().hex[:8]} {marker}".strip()
    job_id, doc = job_document(VIDEOS, "user-hooks", image_url=seed_url, text=text,
                               provider="replicate", resolution="480p")  # fmt: skip
    return db.collection(VIDEOS).document(job_id), doc


def waiting_prediction(ref: firestore.DocumentReference) -> dict[str, Any]:
    """The job's recorded prediction, once the job is waiting for its callback."""

    def check() -> dict[str, Any] | None:
        record = (ref.get().to_dict() or {}).get("prediction") or {}
        return record if record.get("state") == "waiting" and record.get("id") else None

    return dict(wait_until(check, 60, what=f"{ref.id} waiting for its prediction"))


def signed(secret: str, body: dict[str, Any], *, msg_id: str | None = None,
           at: datetime | None = None) -> tuple[bytes, dict[str, str]]:  # fmt: skip
    data = json.dumps(body)
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    headers = {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, data),
    }
    return data.encode(), headers


def test_video_job_completes_from_the_signed_callback_without_polling(
    webhooks: LocalStack, provider_api: FakeProviderAPI, db, bucket, seed_url, tmp_path
):
    ref, doc = video_job(db, seed_url)
    final, watch = run_job(ref, doc)
    assert final["status"] == "completed", final.get("error")
    assert final["provider"] == "replicate" and final["model"] == "bytedance/seedance-1-lite"
    assert provider_api.creates_for(doc["text"]) == 1
    pid = final["prediction"]["id"]
    create = [r for r in provider_api.requests_to("/predictions", "POST")
              if (r.json or {}).get("input", {}).get("prompt") == doc["text"]]  # fmt: skip
    assert create[0].json["webhook"].startswith(webhooks.function_url("providerwebhook"))
    assert create[0].json["webhook_events_filter"] == ["completed"]
    assert provider_api.requests_to(f"/v1/predictions/{pid}", "GET") == [], "nobody polled"
    # the fake records a callback once it has the answer, which comes after the completion
    answered = wait_until(lambda: provider_api.callbacks_for(pid), 30, what="the callback")
    assert [c.status for c in answered] == [200]
    # the output was copied into our bucket before it was reported, and is a real video
    local = tmp_path / "out.mp4"
    bucket.blob(final["video_path"]).download_to_filename(str(local))
    info = probe(local)
    assert info.video is not None and abs(info.duration_s - 2.0) <= 2 / 24
    scene = db.document(f"storyboards/{doc['storyboard_id']}/scenes/{doc['scene_id']}").get()
    assert scene.to_dict()["video_url"] == final["video_url"]
    progress = watch.values("progress")
    assert progress == sorted(progress) and progress[-1] == 100


def test_image_job_completes_from_the_callback(webhooks, provider_api, db, bucket):
    text = f"A red kite over hills {uuid.uuid4().hex[:8]}"
    job_id, doc = job_document(IMAGES, "user-hooks", text=text)
    final, _ = run_job(db.collection(IMAGES).document(job_id), doc)
    assert final["status"] == "completed", final.get("error")
    assert final["provider"] == "replicate" and provider_api.creates_for(text) == 1
    assert bucket.blob(final["image_path"]).exists()
    assert final["prediction"]["id"] and final["prediction"]["state"] == "finishing"


def test_a_callback_delivered_twice_finishes_the_job_once(webhooks, provider_api, db, seed_url):
    ref, doc = video_job(db, seed_url, "[api:twice]")
    final, _ = run_job(ref, doc)
    assert final["status"] == "completed", final.get("error")
    pid = final["prediction"]["id"]
    attempts = wait_until(lambda: len(provider_api.callbacks_for(pid)) == 2 and
                          provider_api.callbacks_for(pid), 60, what="both callbacks")  # fmt: skip
    assert {a.webhook_id for a in attempts} == {attempts[0].webhook_id}, "one message, twice"
    assert [a.status for a in attempts] == [200, 200]
    after = ref.get().to_dict()
    assert after["completedAt"] == final["completedAt"] and after["attempts"] == 1


def test_a_late_callback_still_completes_the_job(webhooks, provider_api, db, seed_url):
    ref, doc = video_job(db, seed_url, "[api:late]")
    final, _ = run_job(ref, doc, 120)
    assert final["status"] == "completed", final.get("error")
    assert provider_api.creates_for(doc["text"]) == 1


def test_a_lost_callback_is_reconciled_by_the_sweep(webhooks, provider_api, db, seed_url):
    ref, doc = video_job(db, seed_url, "[api:never]")
    with DocWatcher(ref) as watch:
        ref.set(doc)
        record = waiting_prediction(ref)
        wait_until(lambda: provider_api.predictions_for(doc["text"])[0].status == "succeeded",
                   60, what="the prediction ended")  # fmt: skip
        assert ref.get().to_dict()["status"] == "processing", "no callback: still waiting"
        assert webhooks.run_scheduled("sweep_stuck_jobs") == 200
        final = watch.wait_terminal(120)
    assert final["status"] == "completed", final.get("error")
    assert provider_api.callbacks_for(record["id"]) == []
    assert provider_api.creates_for(doc["text"]) == 1
    # the sweep only queued: one reconcile task asked the provider once and finished the job
    (task,) = reconcile_tasks(webhooks, ref.id)
    assert task.startswith(f"{VIDEOS}-{ref.id}-reconcile-main-0-")
    assert task_statuses(webhooks, task) == [200]
    assert len(provider_api.requests_to(f"/v1/predictions/{record['id']}", "GET")) == 1


def reconcile_tasks(stack: LocalStack, job_id: str) -> set[str]:
    """The ids of the `reconcileprediction` tasks queued for this job (settled or not: the
    job is finished before its task answers)."""
    return {t.task_id for t in stack.tasks.tasks()
            if t.function == "reconcileprediction" and job_id in t.task_id}  # fmt: skip


def test_a_scene_whose_callback_is_lost_is_reconciled_by_a_task_the_sweep_queues(
    webhooks: LocalStack, provider_api: FakeProviderAPI, db, bucket, seed_url
):
    tag = uuid.uuid4().hex[:8]
    scenes = [scene(1, seed_url, f"pier {tag} scene 1"),
              scene(2, seed_url, f"pier {tag} scene 2 [api:never]")]  # fmt: skip
    job_id, doc = job_document("multi_video_jobs", "user-hooks", scenes=scenes,
                               provider="replicate", resolution="480p")  # fmt: skip
    ref = db.collection("multi_video_jobs").document(job_id)

    def lost_scene() -> bool:
        data = ref.get().to_dict() or {}
        record = (data.get("slot_predictions") or {}).get("2") or {}
        scene_1 = {c["scene_number"] for c in data.get("clips") or []} == {1}
        return scene_1 and record.get("state") == "waiting"

    with DocWatcher(ref) as watch:
        ref.set(doc)
        wait_until(lost_scene, 120, what="scene 1 stored, scene 2 waiting for its callback")
        (lost,) = provider_api.predictions_for(scenes[1]["description"])
        wait_until(lambda: lost.status == "succeeded", 60, what="scene 2's prediction ended")
        assert webhooks.run_scheduled("sweep_stuck_jobs") == 200
        final = watch.wait_terminal(120)
    assert final["status"] == "completed", final.get("error")
    assert [c["scene_number"] for c in final["clips"]] == [1, 2]
    assert bucket.blob(final["clips"][1]["video_path"]).exists()
    assert provider_api.callbacks_for(lost.id) == []
    assert provider_api.creates_for(scenes[1]["description"]) == 1
    (task,) = reconcile_tasks(webhooks, job_id)
    assert task.startswith(f"multi_video_jobs-{job_id}-reconcile-2-0-")
    assert task_statuses(webhooks, task) == [200]


def test_a_refused_prediction_fails_the_job_from_its_callback(webhooks, db, seed_url):
    ref, doc = video_job(db, seed_url, "[api:nsfw]")
    final, _ = run_job(ref, doc)
    assert final["status"] == "failed" and final["error"]["code"] == "content-policy"


def test_forged_tampered_stale_and_replayed_callbacks_change_nothing(
    webhooks: LocalStack, provider_api: FakeProviderAPI, db, seed_url
):
    url = webhooks.function_url("providerwebhook")
    ref, doc = video_job(db, seed_url, "[api:hold]")
    ref.set(doc)
    record = waiting_prediction(ref)
    before = ref.get().to_dict()
    pid = record["id"]
    body = {"id": pid, "status": "succeeded", "output": "http://127.0.0.1:9/evil.mp4"}
    target = f"{url}?job={VIDEOS}/{ref.id}"
    secret = provider_api.webhook_secret

    unsigned = requests.post(target, json=body, timeout=30)
    forged_body, forged = signed("whsec_" + "QUJD" * 8, body)
    _, good = signed(secret, body)
    tampered = json.dumps({**body, "output": "http://127.0.0.1:9/other.mp4"}).encode()
    stale_body, stale = signed(secret, body, at=datetime.now(UTC) - timedelta(minutes=10))
    answers = {
        "unsigned": unsigned.status_code,
        "forged": requests.post(target, data=forged_body, headers=forged, timeout=30).status_code,
        "tampered": requests.post(target, data=tampered, headers=good, timeout=30).status_code,
        "stale": requests.post(target, data=stale_body, headers=stale, timeout=30).status_code,
    }
    assert answers == {"unsigned": 401, "forged": 401, "tampered": 401, "stale": 401}
    not_ours, headers = signed(secret, {"id": pid, "status": "succeeded"})
    elsewhere = requests.post(f"{url}?job=users/x", data=not_ours, headers=headers, timeout=30)
    assert elsewhere.status_code == 400
    assert requests.get(target, timeout=30).status_code == 405
    after = ref.get().to_dict()
    assert after["status"] == "processing" and after["prediction"] == before["prediction"]

    # the genuine callback finishes it; replaying that very message changes nothing
    with DocWatcher(ref) as watch:
        provider_api.release(doc["text"])
        final = watch.wait_terminal(90)
    assert final["status"] == "completed", final.get("error")
    genuine = wait_until(lambda: provider_api.callbacks_for(pid), 30, what="the callback")[0]
    real = provider_api.prediction_json(provider_api.predictions_for(doc["text"])[0])
    replay_body, replay = signed(secret, real, msg_id=genuine.webhook_id)
    again = requests.post(genuine.url, data=replay_body, headers=replay, timeout=30)
    assert again.status_code == 200 and again.json() == {"outcome": "duplicate"}
    # a new message about the same finished prediction is not a second completion either
    fresh_body, fresh = signed(secret, real)
    other = requests.post(genuine.url, data=fresh_body, headers=fresh, timeout=30)
    assert other.status_code == 200 and other.json() == {"outcome": "ignored"}
    assert ref.get().to_dict()["completedAt"] == final["completedAt"]


def test_multi_video_scenes_complete_from_their_callbacks(
    webhooks: LocalStack, provider_api: FakeProviderAPI, db, bucket, seed_url
):
    tag = uuid.uuid4().hex[:8]
    scenes = [scene(n, seed_url, f"harbour {tag} scene {n}") for n in (1, 2, 3)]
    job_id, doc = job_document("multi_video_jobs", "user-hooks", scenes=scenes,
                               provider="replicate", resolution="480p")  # fmt: skip
    final, _ = run_job(db.collection("multi_video_jobs").document(job_id), doc, 180)
    assert final["status"] == "completed", final.get("error")
    assert [c["scene_number"] for c in final["clips"]] == [1, 2, 3]
    for s in scenes:
        (created,) = provider_api.predictions_for(s["description"])  # one create per scene
        assert provider_api.requests_to(f"/v1/predictions/{created.id}", "GET") == []
    records = final["slot_predictions"]
    assert sorted(records) == ["1", "2", "3"] and all(r["id"] for r in records.values())
    for c in final["clips"]:
        assert bucket.blob(c["video_path"]).exists()


def test_a_scene_prediction_that_fails_retryably_is_made_again_and_the_job_completes(
    webhooks: LocalStack, provider_api: FakeProviderAPI, db, seed_url
):
    tag = uuid.uuid4().hex[:8]
    scenes = [scene(n, seed_url, f"quay {tag} scene {n}") for n in (1, 2)]
    job_id, doc = job_document("multi_video_jobs", "user-hooks", scenes=scenes,
                               provider="replicate", resolution="480p")  # fmt: skip
    provider_api.fail_next("aborted")  # the first create ends `aborted` (Replicate: retry it)
    final, _ = run_job(db.collection("multi_video_jobs").document(job_id), doc, 180)
    assert final["status"] == "completed", final.get("error")
    assert [c["scene_number"] for c in final["clips"]] == [1, 2]
    counts = {s["scene_number"]: provider_api.creates_for(s["description"]) for s in scenes}
    assert sorted(counts.values()) == [1, 2], counts
    (again,) = [n for n, c in counts.items() if c == 2]
    record = final["slot_predictions"][str(again)]
    assert record["attempt"] == 1
    assert {r["state"] for r in final["slot_predictions"].values()} == {"done"}
    assert task_statuses(webhooks, f"{job_id}-scene-{again}-again-1") == [200]


def test_multi_video_scenes_on_a_poll_only_provider_are_polled_from_short_task_attempts(
    webhooks: LocalStack, provider_api: FakeProviderAPI, db, bucket, seed_url, tmp_path
):
    """Veo scenes: each scene's step records its operation (slot = scene number) and ends;
    its `providerpoll` chain looks once per attempt and hands it to `finish_scene`, which
    stores the clip and queues the lane's next scene. Every look at an operation is one
    poll attempt: no instance polled."""
    tag = uuid.uuid4().hex[:8]
    scenes = [scene(n, seed_url, f"veo harbour {tag} scene {n}", duration=4.0) for n in (1, 2, 3)]
    job_id, doc = job_document("multi_video_jobs", "user-hooks", scenes=scenes,
                               provider="veo", resolution="720p")  # fmt: skip
    final, _ = run_job(db.collection("multi_video_jobs").document(job_id), doc, 300)
    assert final["status"] == "completed", final.get("error")
    assert [c["scene_number"] for c in final["clips"]] == [1, 2, 3]
    assert {r["state"] for r in final["slot_predictions"].values()} == {"done"}
    for c in final["clips"]:
        local = tmp_path / f"scene-{c['scene_number']}.mp4"
        bucket.blob(c["video_path"]).download_to_filename(str(local))
        info = probe(local)
        assert info.video is not None and info.video.codec == "h264"
        assert abs(info.duration_s - 4.0) <= 2 / 24 and abs(c["duration"] - info.duration_s) < 0.01
    for s in scenes:
        n = s["scene_number"]
        (operation,) = provider_api.predictions_for(s["description"])  # one create per scene
        assert final["slot_predictions"][str(n)]["id"].endswith(operation.id)
        polls = task_statuses(webhooks, f"{job_id}-poll-{n}-1-0")
        assert polls[-1] < 300 and set(polls[:-1]) <= {503}, f"scene {n}: {polls}"
        looks = [r for r in provider_api.requests_to(":fetchPredictOperation", "POST")
                 if str((r.json or {}).get("operationName", "")).endswith(operation.id)]  # fmt: skip
        assert len(looks) == len(polls), f"scene {n}: one look per poll attempt, none elsewhere"
        assert task_statuses(webhooks, f"{job_id}-scene-{n}") == [200], "the step ended at once"


def test_a_poll_only_provider_is_polled_from_short_task_attempts(
    webhooks: LocalStack, provider_api: FakeProviderAPI, db, bucket, seed_url
):
    """Veo has no callbacks: its operation is looked at once per `providerpoll` attempt,
    and "not yet" is a 503 that Cloud Tasks retries after the backoff, so no instance waits."""
    text = f"A lighthouse in fog {uuid.uuid4().hex[:8]}"
    job_id, doc = job_document(VIDEOS, "user-hooks", image_url=seed_url, text=text,
                               provider="veo", duration=4.0, resolution="720p")  # fmt: skip
    final, _ = run_job(db.collection(VIDEOS).document(job_id), doc, 120)
    assert final["status"] == "completed", final.get("error")
    assert final["provider"] == "veo" and bucket.blob(final["video_path"]).exists()
    assert provider_api.creates_for(text) == 1
    (task_id,) = {d.event_id for d in webhooks.deliveries
                  if d.function == "providerpoll" and job_id in d.subject}  # fmt: skip
    statuses = task_statuses(webhooks, task_id)
    assert statuses[-1] < 300 and 503 in statuses, f"not yet, then done: {statuses}"
    trigger = [d for d in webhooks.deliveries
               if d.function == "handle_video_generation" and job_id in d.subject]  # fmt: skip
    assert len(trigger) == 1
