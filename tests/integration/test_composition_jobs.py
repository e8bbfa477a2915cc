"""Composition jobs end to end on the local stack, written and watched like a frontend does.

Input clips come from devtools/media_factory.py (1 s, 320x180), uploaded to the stack's
bucket and passed by their local download URL. Each clip carries its own tone (scene 1:
300 Hz, scene 2: 500 Hz, scene 3: 700 Hz on the left channel) and the music another
(1200 Hz), so the tests can hear the order of the clips and whether music was mixed in.
"""

from __future__ import annotations

import math
import uuid
from array import array
from pathlib import Path
from typing import Any

import pytest
from google.cloud import firestore, storage

from devtools.media_factory import make_audio, make_clip
from local_stack.stack import LocalStack
from media.process import run_ffmpeg
from tests.support.documents import clip, job_document
from tests.support.media import probe_json
from tests.support.stack import duplicate_events
from tests.watch import run_job, wait_until

pytestmark = pytest.mark.stack

COLLECTION = "composition_jobs"
USER = "user-compose"
FPS = 30
FRAME_S = 1 / FPS
TONES = {1: 300, 2: 500, 3: 700}
MUSIC_HZ = 1200
PRESENT, ABSENT = 0.02, 0.006  # tone amplitude (full scale 1.0) after a mono downmix


class Inputs:
    """URLs of the uploaded inputs, by name."""

    def __init__(self, stack: LocalStack, bucket: storage.Bucket, folder: Path):
        self.stack, self.bucket, self.folder = stack, bucket, folder
        self.prefix = f"uploads/test-compose/{uuid.uuid4().hex}"
        self.urls: dict[str, str] = {}

    def add(self, name: str, local: Path, content_type: str) -> None:
        path = f"{self.prefix}/{name}"
        self.bucket.blob(path).upload_from_filename(str(local), content_type=content_type)
        self.urls[name] = self.stack.storage_url(path)

    def clip(self, name: str, **kw: Any) -> None:
        self.add(name, make_clip(self.folder / name, **kw), "video/mp4")


@pytest.fixture(scope="module")
def inputs(
    stack: LocalStack, bucket: storage.Bucket, tmp_path_factory: pytest.TempPathFactory
) -> Inputs:
    media = Inputs(stack, bucket, tmp_path_factory.mktemp("compose-inputs"))
    small = {"duration": 1.0, "width": 320, "height": 180, "fps": FPS}
    for n, hz in TONES.items():
        media.clip(f"scene{n}.mp4", frequency=hz, **small)
    # clips that cannot be joined as they are
    media.clip("silent.mp4", audio=None, **small)
    media.clip(
        "big-25fps-mono.mp4",
        duration=1.0,
        width=640,
        height=360,
        fps=25,
        audio="mono",
        sample_rate=44100,
        frequency=500,
    )
    media.clip("anamorphic-444.mp4", sar="4:3", pix_fmt="yuv444p", frequency=700, **small)
    media.add(
        "music.m4a", make_audio(media.folder / "music.m4a", 3.0, frequency=MUSIC_HZ), "audio/mp4"
    )
    media.add("tone-only.m4a", make_audio(media.folder / "tone-only.m4a", 1.0), "audio/mp4")
    (media.folder / "notes.txt").write_text("not a video")
    media.add("notes.mp4", media.folder / "notes.txt", "video/mp4")
    return media


def scene_clips(inputs: Inputs, order: tuple[int, ...] = (1, 2, 3)) -> list[dict[str, Any]]:
    return [clip(n, inputs.urls[f"scene{n}.mp4"]) for n in order]


def new_job(
    db: firestore.Client, clips: Any, **overrides: Any
) -> tuple[firestore.DocumentReference, dict]:
    job_id, doc = job_document(COLLECTION, USER, **{"clips": clips, **overrides})
    return db.collection(COLLECTION).document(job_id), doc


def fetch_output(bucket: storage.Bucket, final: dict, tmp_path: Path) -> Path:
    assert final["video_path"] == f"users/{USER}/compositions/{final['job_id']}.mp4"
    local = tmp_path / f"{final['job_id']}.mp4"
    bucket.blob(final["video_path"]).download_to_filename(str(local))
    assert local.stat().st_size == final["size_bytes"]
    return local


def ffprobe(path: Path) -> dict[str, Any]:
    data = probe_json(path, "-show_streams", "-show_format")
    kinds = [s["codec_type"] for s in data["streams"]]
    assert kinds.count("video") == 1 and kinds.count("audio") == 1, kinds
    video = next(s for s in data["streams"] if s["codec_type"] == "video")
    audio = next(s for s in data["streams"] if s["codec_type"] == "audio")
    assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p"
    assert (
        audio["codec_name"] == "aac" and audio["channels"] == 2 and audio["sample_rate"] == "48000"
    )
    return {"video": video, "audio": audio, "duration": float(data["format"]["duration"])}


def moov_before_mdat(path: Path) -> bool:
    """+faststart: the index (moov) comes before the media data (mdat)."""
    data = path.read_bytes()
    pos, order = 0, []
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8].decode("latin-1")
        if size == 1:
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        order.append(kind)
        if size < 8:
            break
        pos += size
    return "moov" in order and "mdat" in order and order.index("moov") < order.index("mdat")


def tone(path: Path, hz: float, start: float, length: float = 0.5, rate: int = 16000) -> float:
    """Amplitude of a pure tone in [start, start+length) of the mono downmix (Goertzel)."""
    pcm = path.with_name(f"{path.stem}-{start}-{uuid.uuid4().hex[:6]}.f32")
    run_ffmpeg(
        [
            "-ss",
            str(start),
            "-t",
            str(length),
            "-i",
            str(path),
            "-map",
            "0:a:0",
            "-ac",
            "1",
            "-ar",
            str(rate),
            "-f",
            "f32le",
            str(pcm),
        ]
    )
    samples = array("f", pcm.read_bytes())
    pcm.unlink()
    coeff = 2 * math.cos(2 * math.pi * hz / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    power = max(0.0, s1 * s1 + s2 * s2 - coeff * s1 * s2)
    return 2 * math.sqrt(power) / max(1, len(samples))


def test_compatible_clips_are_joined_by_stream_copy_in_scene_order(db, bucket, inputs, tmp_path):
    ref, doc = new_job(
        db, scene_clips(inputs, (3, 1, 2))
    )  # the order in the document does not matter
    final, watch = run_job(ref, doc)
    assert final["status"] == "completed", final.get("error")
    assert watch.statuses() == ["pending", "processing", "completed"]
    progress = watch.values("progress")
    assert progress == sorted(progress) and progress[-1] == 100
    assert final["mode"] == "stream_copy"
    out = fetch_output(bucket, final, tmp_path)
    s = ffprobe(out)
    assert (s["video"]["width"], s["video"]["height"]) == (320, 180)
    assert abs(s["duration"] - 3.0) <= 2 * FRAME_S and abs(final["duration"] - 3.0) <= 2 * FRAME_S
    assert moov_before_mdat(out)
    # each second sounds like its scene, in scene order
    for second, n in enumerate((1, 2, 3)):
        assert tone(out, TONES[n], second + 0.25) > PRESENT, f"scene {n} in second {second}"
        other = TONES[1 if n != 1 else 2]
        assert tone(out, other, second + 0.25) < ABSENT
    assert final["video_url"] == inputs.stack.storage_url(final["video_path"])


def test_crossfade_shortens_by_the_overlaps_and_blends_audio(db, bucket, inputs, tmp_path):
    ref, doc = new_job(db, scene_clips(inputs), include_crossfade=True)
    final, _ = run_job(ref, doc)
    assert final["status"] == "completed", final.get("error")
    assert final["mode"] == "reencode" and final["crossfade_s"] == 0.5
    s = ffprobe(fetch_output(bucket, final, tmp_path))
    expected = 3 * 1.0 - 2 * 0.5
    assert abs(s["duration"] - expected) <= 2 * FRAME_S, s["duration"]
    assert abs(float(s["video"]["duration"]) - expected) <= 2 * FRAME_S
    out = tmp_path / f"{final['job_id']}.mp4"
    # in the middle of the first transition both scenes' sound is heard
    assert tone(out, TONES[1], 0.6, 0.3) > PRESENT and tone(out, TONES[2], 0.6, 0.3) > PRESENT
    assert tone(out, TONES[1], 0.0, 0.3) > PRESENT and tone(out, TONES[2], 0.0, 0.3) < ABSENT


def test_mismatched_clips_are_normalised_so_the_result_plays(db, bucket, inputs, tmp_path):
    clips = [
        clip(1, inputs.urls["scene1.mp4"]),
        clip(2, inputs.urls["big-25fps-mono.mp4"]),
        clip(3, inputs.urls["silent.mp4"]),
        clip(4, inputs.urls["anamorphic-444.mp4"]),
    ]
    ref, doc = new_job(db, clips)
    final, _ = run_job(ref, doc)
    assert final["status"] == "completed", final.get("error")
    assert final["mode"] == "reencode"
    out = fetch_output(bucket, final, tmp_path)
    s = ffprobe(out)
    assert (
        (s["video"]["width"], s["video"]["height"])
        == (320, 180)
        == (final["width"], final["height"])
    )
    assert s["video"].get("sample_aspect_ratio", "1:1") in ("1:1", "N/A")
    assert abs(s["duration"] - 4.0) <= 2 * FRAME_S
    assert tone(out, TONES[2], 1.25) > PRESENT, "the mono 44.1 kHz clip kept its sound"
    assert tone(out, TONES[1], 2.25) < ABSENT and tone(out, TONES[2], 2.25) < ABSENT, (
        "silence for the silent clip"
    )


def test_music_is_mixed_under_the_clips_and_trimmed_to_the_video(db, bucket, inputs, tmp_path):
    ref, doc = new_job(db, scene_clips(inputs, (1, 2)), audio_url=inputs.urls["music.m4a"])
    final, _ = run_job(ref, doc)
    assert final["status"] == "completed", final.get("error")
    assert final["mode"] == "stream_copy" and final["audio_mode"] == "mix"
    out = fetch_output(bucket, final, tmp_path)
    s = ffprobe(out)
    assert abs(s["duration"] - 2.0) <= 2 * FRAME_S, "3 s of music trimmed to 2 s of video"
    assert abs(float(s["audio"]["duration"]) - 2.0) <= 2 * FRAME_S
    clip_level, music_level = tone(out, TONES[1], 0.25), tone(out, MUSIC_HZ, 0.25)
    assert clip_level > PRESENT and music_level > PRESENT
    assert music_level < clip_level / 2, "the music sits under the clip audio"


def test_music_can_replace_the_clip_audio(db, bucket, inputs, tmp_path):
    ref, doc = new_job(
        db, scene_clips(inputs, (1, 2)), audio_url=inputs.urls["music.m4a"], audio_mode="replace"
    )
    final, _ = run_job(ref, doc)
    assert final["status"] == "completed", final.get("error")
    out = fetch_output(bucket, final, tmp_path)
    ffprobe(out)
    assert tone(out, MUSIC_HZ, 0.25) > PRESENT and tone(out, TONES[1], 0.25) < ABSENT


def test_optimize_size_makes_a_smaller_file(db, bucket, inputs, tmp_path):
    plain, _ = run_job(*new_job(db, scene_clips(inputs)))
    small, _ = run_job(*new_job(db, scene_clips(inputs), optimize_size=True))
    assert plain["status"] == small["status"] == "completed", (
        plain.get("error"),
        small.get("error"),
    )
    assert small["mode"] == "reencode"
    out = fetch_output(bucket, small, tmp_path)
    s = ffprobe(out)
    assert abs(s["duration"] - 3.0) <= 2 * FRAME_S and moov_before_mdat(out)
    assert small["size_bytes"] < 0.8 * plain["size_bytes"], (
        small["size_bytes"],
        plain["size_bytes"],
    )


def test_duplicate_delivery_composes_once(stack: LocalStack, db, bucket, inputs):
    ref, doc = new_job(db, scene_clips(inputs, (1, 2)))
    with duplicate_events(stack):
        final, _ = run_job(ref, doc)
    assert final["status"] == "completed", final.get("error")
    assert final["attempts"] == 1
    subject = f"{COLLECTION}/{doc['job_id']}"
    wait_until(
        lambda: len([d for d in stack.deliveries if d.subject == subject]) == 2,
        30,
        what="two deliveries",
    )
    blobs = list(bucket.list_blobs(prefix=f"users/{USER}/compositions/{doc['job_id']}"))
    assert len(blobs) == 1 and blobs[0].metageneration == 1


@pytest.mark.parametrize(
    "field, url",
    [
        ("clip", "http://169.254.169.254/computeMetadata/v1/"),
        ("clip", "file:///etc/passwd"),
        ("clip", "http://localhost:1/x"),
        ("clip", "https://172.16.0.5/clip.mp4"),
        ("audio", "http://metadata.google.internal/"),
        ("audio", "ftp://example.com/music.mp3"),
    ],
)
def test_hostile_urls_are_refused(db, inputs, field, url):
    clips = scene_clips(inputs, (1,))
    if field == "clip":
        clips.append(clip(2, url))
        ref, doc = new_job(db, clips)
    else:
        ref, doc = new_job(db, clips, audio_url=url)
    final, _ = run_job(ref, doc, 30)
    assert final["status"] == "failed" and final["error"]["code"] == "unsafe-url", final["error"]
    assert final["error"]["message"].startswith(
        "clips[1].video_url:" if field == "clip" else "audio_url:"
    )


@pytest.mark.parametrize(
    "clips, overrides, reason",
    [
        ([], {}, "clips"),
        ("not-a-list", {}, "clips"),
        ("dup", {}, "unique"),
        ("too-many", {}, "at most"),
        ([{"scene_number": 1}], {}, "video_url"),
        ("ok", {"include_crossfade": "yes"}, "include_crossfade"),
        ("ok", {"audio_mode": "louder"}, "audio_mode"),
        ("ok", {"user_id": ""}, "user_id"),
    ],
)
def test_malformed_documents_fail_cleanly(db, inputs, clips, overrides, reason):
    if clips == "dup":
        clips = [clip(1, inputs.urls["scene1.mp4"]), clip(1, inputs.urls["scene2.mp4"])]
    elif clips == "too-many":
        clips = [clip(n, inputs.urls["scene1.mp4"]) for n in range(40)]
    elif clips == "ok":
        clips = scene_clips(inputs, (1,))
    ref, doc = new_job(db, clips, **overrides)
    final, _ = run_job(ref, doc, 30)
    assert final["status"] == "failed"
    assert final["error"]["code"] == "invalid-argument", final["error"]
    assert reason in final["error"]["message"]


@pytest.mark.parametrize(
    "name, code",
    [
        ("notes.mp4", "unreadable-media"),
        ("tone-only.m4a", "invalid-clip"),
        ("missing.mp4", "source-unavailable"),
    ],
)
def test_unusable_clips_fail_with_a_clear_code(db, inputs, name, code):
    url = inputs.urls.get(name) or inputs.stack.storage_url(f"{inputs.prefix}/{name}")
    ref, doc = new_job(db, [*scene_clips(inputs, (1,)), clip(2, url)])
    final, _ = run_job(ref, doc, 30)
    assert final["status"] == "failed" and final["error"]["code"] == code, final["error"]
    assert "scene 2" in final["error"]["message"]
