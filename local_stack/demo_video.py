"""Demo part: video, multi-video and composition jobs, driven the way a frontend does.

1. upload a seed image to Storage (as the web app's upload would);
2. `video_generation_jobs`: one scene video from that image, written onto the scene document;
3. `multi_video_jobs`: three scenes generated in steps on a task queue, progress per scene;
4. `composition_jobs`: the three clips joined twice, by stream copy, then with crossfades
   and a music track mixed under the clips.

Each job document is followed with a Firestore listener (progress bar); the outputs
(URLs, durations, sizes, the composition mode) are printed at the end.
"""

from __future__ import annotations

import io
import math
import struct
import time
import uuid
import wave
from typing import Any

from google.cloud import firestore, storage
from PIL import Image, ImageDraw

from local_stack.stack import LocalStack
from local_stack.watch_cli import watch_document

USER = "demo-user"
SCENES = [
    "A paper lantern rises over a dark lake",
    "The lantern drifts between pine trees",
    "Dawn breaks as the lantern fades into the sky",
]


def run(stack: LocalStack) -> bool:
    db = firestore.Client(project=stack.settings.project_id)
    bucket = storage.Client(project=stack.settings.project_id).bucket(stack.settings.bucket)
    tag = uuid.uuid4().hex[:8]

    seed_path = f"users/{USER}/uploads/{tag}-seed.png"
    bucket.blob(seed_path).upload_from_string(_seed_png(), content_type="image/png")
    seed_url = stack.storage_url(seed_path)
    print(f"  seed image uploaded: {seed_path}")

    # 2. one scene video
    video = _run_job(
        db,
        "video_generation_jobs",
        f"demo-video-{tag}",
        {
            "scene_id": "scene-1",
            "storyboard_id": "demo-storyboard",
            "image_url": seed_url,
            "text": "Slow push-in on the lantern",
            "duration": 2.0,
            "resolution": "480p",
        },
    )
    if video is None:
        return False
    print(
        f"  video: {video['duration']:.2f}s {video['resolution']} ({video['provider']}): {video['video_url']}"
    )

    # 3. three scenes in steps
    multi = _run_job(
        db,
        "multi_video_jobs",
        f"demo-multi-{tag}",
        {
            "scenes": [
                {
                    "scene_number": i + 1,
                    "seed_image_url": seed_url,
                    "duration": 3.0,
                    "description": text,
                }
                for i, text in enumerate(SCENES)
            ],
            "audio_url": None,
            "resolution": "480p",
            "progress_percent": 0,
            "clips": [],
        },
    )
    if multi is None:
        return False
    for clip in multi["clips"]:
        print(f"  scene {clip['scene_number']}: {clip['duration']:.2f}s {clip['video_url']}")

    # 4. compose them: plain join, then crossfades + music
    music_path = f"users/{USER}/uploads/{tag}-music.wav"
    bucket.blob(music_path).upload_from_string(_music_wav(6.0), content_type="audio/wav")
    results: list[tuple[str, dict[str, Any], float]] = []
    for label, extra in (
        ("plain join", {}),
        (
            "crossfade + music",
            {"include_crossfade": True, "audio_url": stack.storage_url(music_path)},
        ),
    ):
        started = time.monotonic()
        comp = _run_job(
            db,
            "composition_jobs",
            f"demo-compose-{tag}-{len(results)}",
            {
                "clips": multi["clips"],
                "audio_url": None,
                "include_crossfade": False,
                "optimize_size": False,
                "video_url": None,
                **extra,
            },
        )
        if comp is None:
            return False
        results.append((label, comp, time.monotonic() - started))
    for label, comp, seconds in results:
        print(
            f"  composition ({label}): mode={comp['mode']} {comp['duration']:.2f}s "
            f"{comp['size_bytes'] / 1024:.0f} KiB, done in {seconds:.1f}s: {comp['video_url']}"
        )
    return True


def _run_job(
    db: firestore.Client, collection: str, job_id: str, fields: dict[str, Any]
) -> dict[str, Any] | None:
    doc = {
        "job_id": job_id,
        "user_id": USER,
        "status": "pending",
        "created_at": firestore.SERVER_TIMESTAMP,
        **fields,
    }
    db.collection(collection).document(job_id).set(doc)
    final = watch_document(f"{collection}/{job_id}", timeout_s=180)
    if final.get("status") != "completed":
        print(f"  {collection}/{job_id} ended {final.get('status')}: {final.get('error')}")
        return None
    return final


def _seed_png(width: int = 640, height: int = 360) -> bytes:
    """A night-sky picture with a lantern, drawn with Pillow."""
    img = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(img)
    for y in range(height):
        t = y / height
        draw.line([(0, y), (width, y)], fill=(int(10 + 30 * t), int(20 + 40 * t), int(60 + 90 * t)))
    draw.rectangle([0, int(height * 0.7), width, height], fill=(15, 30, 45))
    cx, cy = width // 2, int(height * 0.45)
    draw.ellipse([cx - 60, cy - 60, cx + 60, cy + 60], fill=(120, 60, 10))
    draw.ellipse([cx - 30, cy - 40, cx + 30, cy + 40], fill=(255, 170, 60))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _music_wav(seconds: float, rate: int = 22050) -> bytes:
    """A soft two-note chord (mono WAV), standing in for a music track."""
    frames = bytearray()
    for i in range(int(seconds * rate)):
        t = i / rate
        v = 0.25 * math.sin(2 * math.pi * 220 * t) + 0.2 * math.sin(2 * math.pi * 330 * t)
        frames += struct.pack("<h", int(v * 32767))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return buf.getvalue()
