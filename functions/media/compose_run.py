"""Running a composition: probe the clips, plan (media.compose), run ffmpeg, check the result.

    result = compose([clip1, clip2], out, audio_path=music, include_crossfade=True)
    result.mode          # "stream_copy" | "reencode"
    result.duration_s    # probed from the output

`stitch(segments, out)` joins long-form segments without transitions or music (stream copy
when the segments allow it, else a re-encode onto one canvas).

Lower level: `probe_clips(paths)` -> [ClipInput], `media.compose.plan_composition(...)` ->
CompositionPlan, `run_plan(plan)` -> ComposeResult (writes the concat list, runs ffmpeg,
removes a partial output on failure, and checks the result has video + audio and roughly
the planned duration).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from core.errors import InvalidInput, MediaError
from media.compose import plan_composition
from media.compose_model import (
    DEFAULT_CROSSFADE_S,
    AudioMode,
    AudioTrack,
    ClipInput,
    ComposeOptions,
    CompositionPlan,
    PlanMode,
)
from media.probe import MediaInfo, parse_probe, probe
from media.process import run_ffmpeg, run_ffprobe

DEFAULT_COMPOSE_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class ComposeResult:
    path: Path
    mode: PlanMode
    duration_s: float
    size_bytes: int
    expected_duration_s: float
    copy_blockers: tuple[str, ...] = ()


def probe_clip(path: Path, *, timeout_s: float = 60.0) -> ClipInput:
    """Probe a clip for planning: MediaInfo plus the video stream's duration, time base and
    codec private data hash (to be sure stream-copied clips share SPS/PPS). One ffprobe run."""
    if not path.exists() or path.stat().st_size == 0:
        raise MediaError(f"{path.name} is empty or missing", code="unreadable-media")
    try:
        out = run_ffprobe(
            [
                "-print_format", "json", "-show_format", "-show_streams",
                "-show_data_hash", "md5", str(path),
            ],
            timeout_s=timeout_s,
        )  # fmt: skip
        data = json.loads(out)
    except (MediaError, json.JSONDecodeError) as exc:
        raise MediaError(
            f"{path.name} is not readable media: {exc}", code="unreadable-media"
        ) from exc
    info = parse_probe(data, size_bytes=path.stat().st_size)
    stream = next(
        (
            s
            for s in data.get("streams") or []
            if s.get("codec_type") == "video"
            and not (s.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
    if stream is None:
        return ClipInput(path=path, info=info)
    audio = next((s for s in data.get("streams") or [] if s.get("codec_type") == "audio"), None)
    v_start = _float(stream.get("start_time"))
    a_start = _float(audio.get("start_time")) if audio is not None else None
    offset = a_start - v_start if a_start is not None and v_start is not None else 0.0
    index = stream.get("index")
    return ClipInput(
        path=path,
        info=info,
        video_duration_s=_float(stream.get("duration")),
        video_time_base=stream.get("time_base"),
        video_extradata_hash=stream.get("extradata_hash"),
        video_stream_index=index if isinstance(index, int) else None,
        audio_offset_s=offset,
    )


def probe_clips(paths: Sequence[Path], *, max_workers: int = 4) -> list[ClipInput]:
    """`probe_clip` for every path, a few at a time (each ffprobe start costs ~0.1 s).
    A failure is re-raised naming the clip's index ("clip 2: ...")."""

    def one(indexed: tuple[int, Path]) -> ClipInput:
        i, path = indexed
        try:
            return probe_clip(path)
        except MediaError as exc:
            raise MediaError(f"clip {i}: {exc.message}", code=exc.code) from exc

    if len(paths) == 1:
        return [one((0, paths[0]))]
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(paths)))) as pool:
        return list(pool.map(one, enumerate(paths)))


def compose(
    clip_paths: Sequence[str | Path],
    out_path: str | Path,
    *,
    audio_path: str | Path | None = None,
    include_crossfade: bool = False,
    optimize_size: bool = False,
    crossfade_s: float = DEFAULT_CROSSFADE_S,
    audio_mode: AudioMode = "mix",
    allow_stream_copy: bool = True,
    timeout_s: float = DEFAULT_COMPOSE_TIMEOUT_S,
) -> ComposeResult:
    """Join local clips (scene order) into one faststart MP4 (H.264 + AAC stereo 48 kHz).

    Raises MediaError(code="invalid-clip") naming the clip index for a clip without video,
    code="unreadable-media" for a file ffprobe can't read, code="invalid-audio" for an
    audio track without sound, and code="media-timeout" when ffmpeg runs past `timeout_s`.
    """
    if not clip_paths:
        raise InvalidInput("at least one clip is required")
    out = Path(out_path)
    clips = probe_clips([Path(p) for p in clip_paths])
    track: AudioTrack | None = None
    if audio_path is not None:
        track = AudioTrack(path=Path(audio_path), info=probe(audio_path))
    options = ComposeOptions(
        include_crossfade=include_crossfade,
        crossfade_s=crossfade_s,
        optimize_size=optimize_size,
        audio_mode=audio_mode,
        allow_stream_copy=allow_stream_copy,
    )
    plan = plan_composition(clips, track, options, out_path=out)
    return run_plan(plan, timeout_s=timeout_s)


def stitch(
    segment_paths: Sequence[str | Path],
    out_path: str | Path,
    *,
    timeout_s: float = DEFAULT_COMPOSE_TIMEOUT_S,
) -> ComposeResult:
    """Join long-form segments end to end: no crossfade, no music; stream copy if possible."""
    return compose(segment_paths, out_path, timeout_s=timeout_s)


def run_plan(
    plan: CompositionPlan, *, timeout_s: float = DEFAULT_COMPOSE_TIMEOUT_S
) -> ComposeResult:
    """Run a plan (writing its concat list first), then probe and sanity-check the output."""
    out = plan.out_path
    out.parent.mkdir(parents=True, exist_ok=True)
    list_path = plan.concat_list_path
    try:
        if list_path is not None and plan.concat_list is not None:
            list_path.write_text(plan.concat_list, encoding="utf-8")
        run_ffmpeg(plan.args, timeout_s=timeout_s)
    except MediaError:
        out.unlink(missing_ok=True)
        raise
    finally:
        if list_path is not None:
            list_path.unlink(missing_ok=True)
    info = probe(out)
    _check_output(info, plan)
    return ComposeResult(
        path=out,
        mode=plan.mode,
        duration_s=info.duration_s,
        size_bytes=info.size_bytes,
        expected_duration_s=plan.expected_duration_s,
        copy_blockers=plan.copy_blockers,
    )


def _check_output(info: MediaInfo, plan: CompositionPlan) -> None:
    if info.video is None or info.audio is None:
        raise MediaError("composition produced no video or no audio stream", code="compose-failed")
    # a broken join (e.g. timestamps gone wrong) shows up as a wildly wrong duration
    tolerance = max(1.0, 0.05 * plan.expected_duration_s)
    if abs(info.duration_s - plan.expected_duration_s) > tolerance:
        raise MediaError(
            f"composition lasts {info.duration_s:.2f}s, expected {plan.expected_duration_s:.2f}s",
            code="compose-failed",
        )


def _float(value: object) -> float | None:
    try:
        return float(str(value))
    except ValueError:
        return None
