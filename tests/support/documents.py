"""Job documents as a frontend writes them (the seed schemas), for every job collection.

`job_document(collection, user, **fields)` gives a fresh `job_id` and a `pending` document
with the fields that collection needs; a test passes what it cares about as `fields`.
"""

from __future__ import annotations

import uuid
from typing import Any

from google.cloud import firestore


def _scene_job(job_id: str) -> dict[str, Any]:
    return {"scene_id": "scene-1", "storyboard_id": f"sb-{job_id[:8]}"}


_REQUIRED = {
    "image_generation_jobs": _scene_job,
    # 2 s: the video model's shortest (SeeDance: 2 to 12 whole seconds)
    "video_generation_jobs": lambda job_id: {**_scene_job(job_id), "duration": 2.0},
    "multi_video_jobs": lambda job_id: {"audio_url": None, "progress_percent": 0, "clips": []},
    "composition_jobs": lambda job_id: {
        "audio_url": None,
        "include_crossfade": False,
        "optimize_size": False,
        "video_url": None,
    },
}


def job_document(collection: str, user: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    """(job_id, document) of a new `pending` job in `collection` for `user`."""
    job_id = uuid.uuid4().hex
    doc: dict[str, Any] = {
        "job_id": job_id,
        "user_id": user,
        "status": "pending",
        "created_at": firestore.SERVER_TIMESTAMP,
        **_REQUIRED[collection](job_id),
        **fields,
    }
    return job_id, doc


def scene(n: int, seed_url: str, description: str = "", duration: float = 2.0) -> dict[str, Any]:
    """One scene of a multi-video job."""
    return {
        "scene_number": n,
        "seed_image_url": seed_url,
        "duration": duration,
        "description": description or f"Scene {n}: a quiet harbour",
    }


def clip(n: int, url: str, duration: float = 1.0) -> dict[str, Any]:
    """One clip of a composition job."""
    return {"scene_number": n, "video_url": url, "duration": duration}
