"""Composition jobs: `composition_jobs/{job_id}` -> one MP4 made of the job's clips.

The clips (and an optional music track) are checked (every URL first), fetched through
`core.safe_fetch`, put in scene_number order, probed within the COMPOSE_* bounds and
joined by `media.compose_run.compose` (stream copy when the clips allow it, else a
re-encode; crossfades, music mixed under the clips' audio or replacing it). The result goes
to `users/{uid}/compositions/{job_id}.mp4`. The contract: docs/video-jobs.md,
"Composition jobs".
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Literal

from google.cloud import firestore
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core import config, storage
from core.errors import InvalidInput, JobError, MediaError, named
from core.lifecycle import Job, SweptCollection, run_job, work_dir
from core.safe_fetch import fetch_url
from core.url_policy import check_document_urls
from core.vocabulary import MAX_URL_LENGTH, Id, SceneNumber, Url, require_unique_scene_numbers
from media.compose_model import DEFAULT_CROSSFADE_S, AudioMode
from media.compose_run import compose
from media.probe import MediaInfo, probe

COLLECTION = "composition_jobs"
SWEPT = SweptCollection(COLLECTION, redrive=True)
COMPOSE_TIMEOUT_S = 420.0  # inside the 540 s of the event function, after the downloads
FETCH_WORKERS = 4


class ClipRef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    scene_number: SceneNumber
    video_url: Url
    duration: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class CompositionJob(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user_id: Id
    clips: list[ClipRef] = Field(min_length=1)
    audio_url: str | None = Field(default=None, max_length=MAX_URL_LENGTH)
    include_crossfade: bool = Field(default=False, strict=True)
    optimize_size: bool = Field(default=False, strict=True)
    crossfade_s: float = Field(default=DEFAULT_CROSSFADE_S, ge=0.1, le=2.0, allow_inf_nan=False)
    audio_mode: Literal["mix", "replace"] | None = None

    @field_validator("audio_url", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _unique_scene_numbers(self) -> CompositionJob:
        require_unique_scene_numbers([c.scene_number for c in self.clips], "clips")
        return self


def handle(document: firestore.DocumentReference, event_id: str) -> None:
    run_job(document, event_id, CompositionJob, compose_clips)


def compose_clips(job: Job, spec: CompositionJob) -> dict[str, Any]:
    max_clips = int(config.COMPOSE_MAX_CLIPS.value)
    if len(spec.clips) > max_clips:
        raise InvalidInput(
            f"clips: at most {max_clips} clips per composition, got {len(spec.clips)}"
        )
    audio_mode = _audio_mode(spec.audio_mode)
    _check_urls(spec)  # every URL, before downloading anything
    ordered = sorted(spec.clips, key=lambda c: c.scene_number)
    job.progress(5, clip_count=len(ordered))
    with work_dir(f"compose-{job.id}") as tmp:
        paths = _fetch_clips(job, ordered, tmp)
        music: Path | None = None
        if spec.audio_url:
            music = _fetch(
                spec.audio_url,
                tmp / "music",
                "audio_url",
                int(config.COMPOSE_MAX_AUDIO_BYTES.value),
            )
        _check_media(ordered, paths, music)
        job.progress(45)
        result = compose(
            paths,
            tmp / "composition.mp4",
            audio_path=music,
            include_crossfade=spec.include_crossfade,
            optimize_size=spec.optimize_size,
            crossfade_s=spec.crossfade_s,
            audio_mode=audio_mode,
            timeout_s=COMPOSE_TIMEOUT_S,
        )
        job.progress(88, mode=result.mode)
        info = probe(result.path)
        path = f"users/{spec.user_id}/compositions/{job.id}.mp4"
        url = storage.upload_file(
            result.path, path, "video/mp4", metadata={"jobId": job.id, "mode": result.mode}
        )
    job.log(
        "composition stored",
        path=path,
        mode=result.mode,
        duration=result.duration_s,
        sizeBytes=result.size_bytes,
        copyBlockers=list(result.copy_blockers)[:5],
    )
    video = info.video
    outputs: dict[str, Any] = {
        "video_url": url,
        "video_path": path,
        "duration": round(result.duration_s, 3),
        "size_bytes": result.size_bytes,
        "mode": result.mode,
        "width": video.width if video else None,
        "height": video.height if video else None,
        "clip_count": len(ordered),
        "audio_mode": audio_mode if music is not None else None,
        "crossfade_s": spec.crossfade_s if spec.include_crossfade and len(ordered) > 1 else 0.0,
    }
    return outputs


def _audio_mode(requested: str | None) -> AudioMode:
    mode = (requested or config.COMPOSE_AUDIO_MODE.value or "mix").strip().lower()
    if mode not in ("mix", "replace"):
        raise JobError(f"COMPOSE_AUDIO_MODE {mode!r} is not mix or replace", code="misconfigured")
    return mode  # type: ignore[return-value]


def _check_urls(spec: CompositionJob) -> None:
    urls = [(f"clips[{i}].video_url", c.video_url) for i, c in enumerate(spec.clips)]
    if spec.audio_url:
        urls.append(("audio_url", spec.audio_url))
    check_document_urls(urls)


def _fetch(url: str, dest: Path, field: str, max_bytes: int) -> Path:
    try:
        return fetch_url(url, dest, source="user", max_bytes=max_bytes)
    except JobError as err:
        raise named(err, field) from None


def _fetch_clips(job: Job, ordered: list[ClipRef], tmp: Path) -> list[Path]:
    """Download the clips a few at a time; progress 5 -> 40 as they arrive."""
    max_bytes = int(config.COMPOSE_MAX_CLIP_BYTES.value)
    paths = [tmp / f"clip-{i:03d}.mp4" for i in range(len(ordered))]
    with ThreadPoolExecutor(max_workers=min(FETCH_WORKERS, len(ordered))) as pool:
        futures = [
            pool.submit(
                _fetch, clip.video_url, paths[i], f"clip for scene {clip.scene_number}", max_bytes
            )
            for i, clip in enumerate(ordered)
        ]
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                future.result()  # re-raises the first failure
                job.progress(5 + 35 * done / len(ordered))
        except BaseException:
            for f in futures:
                f.cancel()  # downloads not started yet are dropped; running ones finish
            raise
    return paths


def _check_media(ordered: list[ClipRef], paths: list[Path], music: Path | None) -> None:
    """Every clip has video; the total length is within COMPOSE_MAX_DURATION_S."""
    total = 0.0
    for clip, path in zip(ordered, paths, strict=True):
        info = _probe(path, f"clip for scene {clip.scene_number}")
        if not info.has_video:
            raise MediaError(
                f"clip for scene {clip.scene_number}: the file has no video stream",
                code="invalid-clip",
            )
        total += info.duration_s
    limit = int(config.COMPOSE_MAX_DURATION_S.value)
    if total > limit:
        raise InvalidInput(
            f"clips: {total:.0f} s of video in total; at most {limit} s", code="too-large"
        )
    if music is not None:
        info = _probe(music, "audio_url")
        if not info.has_audio:
            raise MediaError("audio_url: the file has no audio stream", code="invalid-audio")


def _probe(path: Path, field: str) -> MediaInfo:
    try:
        return probe(path)
    except MediaError as err:
        raise named(err, field) from None
