"""Long-form segments driven by provider callbacks on the local stack (docs/longform.md,
docs/webhooks.md): the video provider is the Replicate adapter against the fake API, which
calls the stack's `providerwebhook` back, signed. A segment step records the segment's
prediction and ends; the callback stores the segment and queues the next step.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import m3u8
import pytest
import requests
from google.cloud import firestore, storage

from local_stack.stack import LocalStack
from tests.fakes.provider_api import FakeProviderAPI
from tests.integration.test_provider_webhooks import signed, webhook_params
from tests.support.longform import JobWatcher, call, start_job, user
from tests.support.stack import task_statuses
from tests.watch import wait_until

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def hooked(stack: LocalStack, provider_api: FakeProviderAPI) -> Iterator[LocalStack]:
    with stack.host_params(
        **webhook_params(stack, provider_api),
        MEDIA_PROVIDER="replicate",
        REPLICATE_API_TOKEN="r8_local_fake_token",
    ):
        yield stack


def prompts(*markers: str) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"A paper boat {tag} part {i} {m}".strip() for i, m in enumerate(markers)]


def creates(provider_api: FakeProviderAPI, prompt: str) -> list[dict[str, Any]]:
    """The create requests the fake saw for `prompt` (their JSON bodies)."""
    return [
        r.json
        for r in provider_api.requests_to("/predictions", "POST")
        if isinstance(r.json, dict) and (r.json.get("input") or {}).get("prompt") == prompt
    ]


def image_bytes(create: dict[str, Any]) -> bytes | None:
    uri = create["input"].get("image")
    if uri is None:
        return None
    head, _, data = str(uri).partition(",")
    assert head == "data:image/png;base64", head
    return base64.b64decode(data)


def slot_record(db: firestore.Client, job_id: str, slot: str, state: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        data = db.collection("videoJobs").document(job_id).get().to_dict() or {}
        record = (data.get("slot_predictions") or {}).get(slot) or {}
        return record if record.get("state") == state else None

    return dict(wait_until(check, 60, what=f"{job_id}: segment {slot}'s prediction {state}"))


def test_three_segments_complete_from_their_callbacks_each_seeded_by_the_last(
    hooked: LocalStack, provider_api: FakeProviderAPI, db, bucket: storage.Bucket, id_token
):
    uid, texts = user(), prompts("", "", "")
    with JobWatcher(db, uid) as watch:
        job_id = start_job(hooked, id_token(uid), prompts=texts)
        final = watch.wait_terminal(120)
        assert final["status"] == "completed", final.get("error")
        assert watch.statuses() == ["queued", "generating", "stitching", "completed"]
        seen = [len(s) for s in watch.values("segments")]
        assert seen == sorted(seen) and set(seen) == {0, 1, 2, 3}
        progress = watch.values("progress")
        assert progress == sorted(progress) and progress[-1] == 100

    segments = final["segments"]
    assert [s["index"] for s in segments] == [0, 1, 2]
    assert {s["provider"] for s in segments} == {"replicate"}
    assert [s["seededFrom"] for s in segments] == [
        "prompt",
        "previous-last-frame",
        "previous-last-frame",
    ]
    records = final["slot_predictions"]
    assert sorted(records) == ["0", "1", "2"] and {r["state"] for r in records.values()} == {"done"}
    # exactly one create per segment, nobody polled, and each segment after the first was
    # created with the previous segment's stored last frame as its image
    bodies = [creates(provider_api, t) for t in texts]
    assert [len(b) for b in bodies] == [1, 1, 1]
    assert all(b[0]["webhook"].startswith(hooked.function_url("providerwebhook")) for b in bodies)
    assert image_bytes(bodies[0][0]) is None
    for i in (1, 2):
        last = bucket.blob(segments[i - 1]["lastFramePath"]).download_as_bytes()
        assert image_bytes(bodies[i][0]) == last, f"segment {i} not seeded by segment {i - 1}"
    for r in records.values():
        assert provider_api.requests_to(f"/v1/predictions/{r['id']}", "GET") == []
    # every step task ended at once: none waited for its provider (no retries either)
    for i in range(3):
        assert task_statuses(hooked, f"{job_id}-seg-{i}-try-0") == [200]
    assert bucket.blob(final["finalPath"]).exists()
    assert abs(final["durationSeconds"] - sum(s["durationSeconds"] for s in segments)) < 0.25

    # the preview grew clip by clip, as with a provider polled in-process
    assert [s["preview"]["ended"] for s in segments] == [False, False, True]
    per_clip = [len(s["preview"]["segments"]) for s in segments]
    assert [s["preview"]["playlistSegments"] for s in segments] == [
        sum(per_clip[: i + 1]) for i in range(3)
    ]
    playlist = m3u8.loads(requests.get(final["previewPlaylistUrl"], timeout=10).text)
    assert playlist.is_endlist and len(playlist.segments) == sum(per_clip)


def test_a_duplicate_callback_changes_nothing(
    hooked: LocalStack, provider_api: FakeProviderAPI, db, id_token
):
    uid, texts = user(), prompts("[api:twice]", "")
    with JobWatcher(db, uid) as watch:
        job_id = start_job(hooked, id_token(uid), prompts=texts)
        final = watch.wait_terminal(120)
    assert final["status"] == "completed", final.get("error")
    assert [len(creates(provider_api, t)) for t in texts] == [1, 1]
    pid = final["slot_predictions"]["0"]["id"]
    both = wait_until(lambda: len(provider_api.callbacks_for(pid)) == 2 and
                      provider_api.callbacks_for(pid), 60, what="both copies")  # fmt: skip
    assert [c.status for c in both] == [200, 200] and both[0].webhook_id == both[1].webhook_id
    assert [s["index"] for s in final["segments"]] == [0, 1]
    # the very message once more, after the job completed: nothing changes
    (prediction,) = provider_api.predictions_for(texts[0])
    body, headers = signed(provider_api.webhook_secret, provider_api.prediction_json(prediction),
                           msg_id=both[0].webhook_id)  # fmt: skip
    again = requests.post(both[0].url, data=body, headers=headers, timeout=30)
    assert again.status_code == 200 and again.json() == {"outcome": "duplicate"}
    fresh_body, fresh = signed(
        provider_api.webhook_secret, provider_api.prediction_json(prediction)
    )
    other = requests.post(both[0].url, data=fresh_body, headers=fresh, timeout=30)
    assert other.status_code == 200 and other.json() == {"outcome": "ignored"}
    after = db.collection("videoJobs").document(job_id).get().to_dict() or {}
    assert after["segments"] == final["segments"] and after["updatedAt"] == final["updatedAt"]


def test_a_lost_segment_callback_is_reconciled_by_the_sweep(
    hooked: LocalStack, provider_api: FakeProviderAPI, db, id_token
):
    uid, texts = user(), prompts("", "[api:never]", "")
    with JobWatcher(db, uid) as watch:
        job_id = start_job(hooked, id_token(uid), prompts=texts)
        record = slot_record(db, job_id, "1", "waiting")
        wait_until(lambda: provider_api.predictions_for(texts[1])[0].status == "succeeded",
                   60, what="segment 1's prediction ended")  # fmt: skip
        assert hooked.wait_idle(60)
        waiting = db.collection("videoJobs").document(job_id).get().to_dict() or {}
        assert waiting["status"] == "generating" and len(waiting["segments"]) == 1
        assert hooked.run_scheduled("sweep_stuck_jobs") == 200
        final = watch.wait_terminal(120)
    assert final["status"] == "completed", final.get("error")
    assert provider_api.callbacks_for(record["id"]) == []
    assert len(provider_api.requests_to(f"/v1/predictions/{record['id']}", "GET")) >= 1
    assert [len(creates(provider_api, t)) for t in texts] == [1, 1, 1]


def test_a_retryable_failure_makes_the_segment_again_and_the_job_completes(
    hooked: LocalStack, provider_api: FakeProviderAPI, db, id_token
):
    uid, texts = user(), prompts("", "")
    provider_api.fail_next("aborted")  # the first create (segment 0's) ends `aborted`
    with JobWatcher(db, uid) as watch:
        job_id = start_job(hooked, id_token(uid), prompts=texts)
        final = watch.wait_terminal(120)
        retries = [r for r in watch.values("lastRetry") if r]
    assert final["status"] == "completed", final.get("error")
    assert [len(creates(provider_api, t)) for t in texts] == [2, 1]
    assert (
        retries and retries[0]["step"] == "seg-0" and retries[0]["code"] == "provider-unavailable"
    )
    assert final["lastRetry"] is None and final["slot_predictions"]["0"]["attempt"] == 1
    assert task_statuses(hooked, f"{job_id}-seg-0-try-0-again-1") == [200]


def test_a_refused_segment_fails_the_job_and_a_replay_finishes_it(
    hooked: LocalStack, provider_api: FakeProviderAPI, db, id_token
):
    uid, texts = user(), prompts("", "[api:nsfw]")
    token = id_token(uid)
    with JobWatcher(db, uid) as watch:
        job_id = start_job(hooked, token, prompts=texts)
        failed = watch.wait_terminal(120)
    assert failed["status"] == "failed" and failed["failedStep"] == 1
    assert failed["error"]["code"] == "content-policy" and len(failed["segments"]) == 1
    assert len(creates(provider_api, texts[1])) == 1, "a refusal is not retried"

    replacement = f"{texts[1].removesuffix('[api:nsfw]').strip()} calm"
    with JobWatcher(db, uid) as watch:
        r = call(hooked, "replaylongformvideojob", {"jobId": job_id, "prompt": replacement}, token)
        assert r.status_code == 200, r.text
        final = watch.wait_for(lambda d: d.get("status") in ("completed", "failed") and
                               d.get("replayCount") == 1, 120)  # fmt: skip
    assert final["status"] == "completed", final.get("error")
    assert len(creates(provider_api, replacement)) == 1
    assert len(creates(provider_api, texts[0])) == 1, "the finished segment is kept"


def test_segments_on_a_poll_only_provider_are_polled_from_short_task_attempts(
    hooked: LocalStack, provider_api: FakeProviderAPI, db, id_token
):
    """Veo has no callbacks: each segment's operation is looked at once per `providerpoll`
    attempt (one chain per prediction), so no instance waits for it either."""
    uid, texts = user(), prompts("", "")
    veo = {"MEDIA_PROVIDER": "veo", "GEMINI_API_KEY": "gm_local_fake_key"}
    with hooked.host_params(**veo), JobWatcher(db, uid) as watch:
        job_id = start_job(hooked, id_token(uid), prompts=texts, segmentSeconds=4,
                           resolution="720p")  # fmt: skip
        final = watch.wait_terminal(180)
    assert final["status"] == "completed", final.get("error")
    assert {s["provider"] for s in final["segments"]} == {"veo"}
    assert [provider_api.creates_for(t) for t in texts] == [1, 1]
    for i in range(2):
        polls = task_statuses(hooked, f"{job_id}-poll-{i}-0-0")
        assert polls[-1] < 300, f"segment {i}'s poll chain ended: {polls}"
        assert task_statuses(hooked, f"{job_id}-seg-{i}-try-0") == [200]
