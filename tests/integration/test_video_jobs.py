"""Video jobs end to end on the local stack, written and watched like a frontend does.

Seed images are made with devtools/media_factory.py, uploaded to the stack's bucket and
passed by their local download URL (what a frontend gets from Storage). Every output is
inspected with ffprobe.
"""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore, storage

from devtools.media_factory import make_image
from local_stack.stack import LocalStack
from media.probe import probe
from tests.fakes.provider_api import FakeProviderAPI
from tests.support.documents import job_document
from tests.support.media import streams
from tests.support.stack import duplicate_events
from tests.watch import run_job, wait_until

pytestmark = pytest.mark.stack

COLLECTION = "video_generation_jobs"
SEEDANCE = "bytedance/seedance-1-lite"  # the offline provider keeps to its limits
FRAME_S = 1 / 24  # the local provider renders 24 fps


@pytest.fixture(scope="module")
def seed_path(bucket: storage.Bucket, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 320x180 PNG uploaded to the bucket (as a frontend's upload would be)."""
    png = make_image(tmp_path_factory.mktemp("seed") / "seed.png", 320, 180)
    path = f"uploads/test-video/{uuid.uuid4().hex}.png"
    bucket.blob(path).upload_from_filename(str(png), content_type="image/png")
    return path


@pytest.fixture(scope="module")
def seed_url(stack: LocalStack, seed_path: str) -> str:
    return stack.storage_url(seed_path)


def new_job(
    db: firestore.Client, seed: str, **overrides: Any
) -> tuple[firestore.DocumentReference, dict]:
    fields = {
        "image_url": seed,
        "text": "Waves rolling onto a beach at sunset",
        "resolution": "480p",
    }
    job_id, doc = job_document(COLLECTION, "user-video", **{**fields, **overrides})
    return db.collection(COLLECTION).document(job_id), doc


def download(bucket: storage.Bucket, path: str, tmp_path: Path) -> Path:
    local = tmp_path / Path(path).name
    bucket.blob(path).download_to_filename(str(local))
    return local


def test_video_job_stores_an_mp4_and_updates_the_scene(db, bucket, seed_url, tmp_path):
    ref, doc = new_job(db, seed_url, duration=3.0)
    final, watch = run_job(ref, doc)
    assert final["status"] == "completed", final.get("error")
    assert watch.statuses() == ["pending", "processing", "completed"]
    progress = watch.values("progress")
    assert progress == sorted(progress) and progress[-1] == 100 and len(set(progress)) >= 3

    assert final["video_path"] == f"users/user-video/videos/{doc['job_id']}.mp4"
    mp4 = download(bucket, final["video_path"], tmp_path)
    s = streams(mp4)
    assert s["video"]["codec_name"] == "h264" and s["video"]["pix_fmt"] == "yuv420p"
    assert (s["video"]["width"], s["video"]["height"]) == (854, 480)
    assert s["audio"]["codec_name"] == "aac"
    assert abs(float(s["format"]["duration"]) - 3.0) <= 2 * FRAME_S
    assert abs(final["duration"] - 3.0) <= 2 * FRAME_S
    assert final["resolution"] == "854x480" and final["provider"] == "local"

    scene = db.document(f"storyboards/{doc['storyboard_id']}/scenes/scene-1").get().to_dict()
    assert scene["video_url"] == final["video_url"] and scene["video_path"] == final["video_path"]
    assert scene["resolution"] == "854x480" and scene["duration"] == final["duration"]
    assert final["attempts"] == 1 and final["error"] is None


def test_duplicate_delivery_generates_once(stack: LocalStack, db, bucket, seed_url):
    ref, doc = new_job(db, seed_url)
    with duplicate_events(stack):
        final, _ = run_job(ref, doc)
    assert final["status"] == "completed", final.get("error")
    subject = f"{COLLECTION}/{doc['job_id']}"
    deliveries = wait_until(
        lambda: (
            [d for d in stack.deliveries if d.subject == subject][1:]
            and [d for d in stack.deliveries if d.subject == subject]
        ),
        timeout_s=30,
        what="both deliveries answered",
    )
    assert len(deliveries) == 2 and all(200 <= d.status < 300 for d in deliveries)
    assert final["attempts"] == 1, "only one delivery claimed the job"
    blob = bucket.get_blob(final["video_path"])
    assert blob is not None and blob.metageneration == 1
    assert len(list(bucket.list_blobs(prefix=f"users/user-video/videos/{doc['job_id']}"))) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token",
        "file:///etc/passwd",
        "http://localhost:1/x",
        "https://10.0.0.7/seed.png",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://evil.example.com/seed.png",
    ],
)
def test_hostile_image_urls_are_refused(db, url):
    ref, doc = new_job(db, url)
    final, _ = run_job(ref, doc, 30)
    assert final["status"] == "failed"
    assert final["error"]["code"] == "unsafe-url", final["error"]
    assert final["error"]["message"].startswith("image_url:")


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"duration": 0}, "duration"),
        ({"duration": 60.0}, "duration: must be between 1 and 15 seconds"),
        ({"duration": 1.5}, f"duration: {SEEDANCE} makes videos of 2 to 12 whole seconds"),
        ({"duration": 13.0}, f"duration: {SEEDANCE} makes videos of 2 to 12 whole seconds"),
        ({"duration": "5"}, "duration"),
        ({"duration": True}, "duration"),
        ({"image_url": None}, "image_url"),
        ({"user_id": "../../etc"}, "user_id"),
        ({"scene_id": None}, "scene_id"),
        ({"aspect_ratio": "4:3"}, "aspect_ratio"),
        ({"provider": "dall-e"}, "provider"),
    ],
)
def test_malformed_documents_fail_cleanly(db, seed_url, overrides, reason):
    ref, doc = new_job(db, seed_url, **overrides)
    final, _ = run_job(ref, doc, 30)
    assert final["status"] == "failed"
    assert final["error"]["code"] == "invalid-argument", final["error"]
    assert reason in final["error"]["message"]


def test_a_missing_seed_image_and_a_non_image_fail_with_clear_codes(stack, db, bucket, seed_url):
    ref, doc = new_job(db, stack.storage_url("uploads/test-video/does-not-exist.png"))
    final, _ = run_job(ref, doc, 30)
    assert final["status"] == "failed" and final["error"]["code"] == "source-unavailable"

    path = f"uploads/test-video/{uuid.uuid4().hex}.png"
    bucket.blob(path).upload_from_string(b"this is not a picture", content_type="image/png")
    ref, doc = new_job(db, stack.storage_url(path))
    final, _ = run_job(ref, doc, 30)
    assert final["status"] == "failed" and final["error"]["code"] == "unreadable-media"


def test_provider_refusal_fails_the_job_with_content_policy(db, seed_url):
    ref, doc = new_job(db, seed_url, text="something [fail:content-policy]")
    final, _ = run_job(ref, doc, 30)
    assert final["status"] == "failed" and final["error"]["code"] == "content-policy"


def test_video_job_through_the_real_replicate_adapter(
    provider_override, provider_api: FakeProviderAPI, db, bucket, seed_path, seed_url, tmp_path
):
    ref, doc = new_job(
        db, seed_url, provider="replicate", text=f"A lighthouse {uuid.uuid4().hex[:6]}"
    )
    final, watch = run_job(ref, doc)
    assert final["status"] == "completed", final.get("error")
    assert final["provider"] == "replicate" and final["model"] == "bytedance/seedance-1-lite"
    creates = [
        r
        for r in provider_api.requests_to("/predictions", "POST")
        if (r.json or {}).get("input", {}).get("prompt") == doc["text"]
    ]
    assert len(creates) == 1, "one prediction for one job"
    sent = creates[0].json["input"]
    assert sent["duration"] == 2 and isinstance(sent["duration"], int)
    assert sent["resolution"] == "480p"
    assert "aspect_ratio" not in sent, "SeeDance keeps the seed image's aspect ratio"
    prefix = "data:image/png;base64,"
    assert sent["image"].startswith(prefix)
    seed = bucket.blob(seed_path).download_as_bytes()
    assert base64.b64decode(sent["image"][len(prefix) :]) == seed, "the job's seed image was sent"
    info = probe(download(bucket, final["video_path"], tmp_path))
    assert info.video is not None and info.video.codec == "h264" and info.audio is not None
    assert (info.video.width, info.video.height) == (160, 90)  # what the fake API renders
    assert abs(info.duration_s - 2.0) <= 2 / 24
    progress = watch.values("progress")
    assert progress == sorted(progress) and progress[-1] == 100


def test_a_duration_seedance_refuses_fails_before_any_prediction(
    provider_override, provider_api: FakeProviderAPI, db, seed_url
):
    ref, doc = new_job(db, seed_url, provider="replicate", duration=2.5, text=uuid.uuid4().hex)
    final, _ = run_job(ref, doc, 30)
    assert final["status"] == "failed" and final["error"]["code"] == "invalid-argument"
    assert final["error"]["message"] == (
        f"duration: {SEEDANCE} makes videos of 2 to 12 whole seconds, got 2.5"
    )
    assert not provider_api.predictions_for(doc["text"]), "nothing was sent to Replicate"
