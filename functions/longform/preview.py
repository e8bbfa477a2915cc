"""The long-form preview: each finished clip re-encoded onto one HLS grid and published into
the job's EVENT playlist (`previews/{jobId}/preview.m3u8`), so a user watches clip 1 while
clip 3 is generated. The I/O (ffmpeg, Storage); the playlist text is
`media.hls.playlists.build_preview_playlist`, derived from the recorded pieces.
A preview failure never fails the job: `publish_clip` returns it as `previewError`.
docs/longform.md, "Watching while it is generated".
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

from core import storage
from core.errors import JobError
from longform.claim import StepRun
from longform.job import LongFormJob
from media.hls.encode import preview_encode_args
from media.hls.ladder import Rendition, SegmentGrid, plan_ladder
from media.hls.playlists import (
    PLAYLIST_CONTENT_TYPE,
    SEGMENT_CONTENT_TYPE,
    PreviewPiece,
    Segment,
    build_preview_playlist,
)
from media.hls.publish import public_url
from media.hls.segmenter import stream_segments
from media.picture import video_size
from media.probe import MediaInfo

PREVIEW_ROOT = "previews"
PREVIEW_FPS = Fraction(30)
PREVIEW_SEGMENT_S = 2.0
PREVIEW_MAX_HEIGHT = 720
PREVIEW_TIMEOUT_S = 180.0


def playlist_path(job_id: str) -> str:
    return f"{PREVIEW_ROOT}/{job_id}/preview.m3u8"


def clip_pattern(index: int) -> str:
    """Segment names of clip `index` (deterministic: a retry overwrites its own)."""
    return f"clip{index:03d}_%05d.ts"


def preview_rendition(spec: LongFormJob) -> Rendition:
    """The one grid of every clip of the job: the job's frame size, 30 fps, AAC stereo."""
    width, height = video_size(spec.aspectRatio, spec.resolution)
    return plan_ladder(width, height, PREVIEW_FPS, max_height=PREVIEW_MAX_HEIGHT)[0]


def recorded_pieces(job: Mapping[str, Any]) -> list[PreviewPiece]:
    """The pieces recorded on the job's segments (`segments[].preview`)."""
    pieces = []
    for seg in job.get("segments") or []:
        preview = seg.get("preview") if isinstance(seg, Mapping) else None
        if isinstance(preview, Mapping):
            pieces.append(piece_of(int(seg["index"]), preview))
    return pieces


def piece_of(index: int, preview: Mapping[str, Any]) -> PreviewPiece:
    return PreviewPiece(
        index,
        tuple(Segment(str(s["uri"]), float(s["durationSeconds"])) for s in preview["segments"]),
    )


def publish_clip(
    run: StepRun, spec: LongFormJob, index: int, clip: Path, info: MediaInfo, tmp: Path
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Encode clip `index` onto the preview grid, upload its segments and the playlist.

    Returns (the piece to record on the segment entry, the job fields to write):
    `previewPlaylistUrl`, or `previewError` when anything failed (logged, never raised).
    """
    try:
        return _publish(run, spec, index, clip, info, tmp)
    except Exception as exc:  # a preview is best effort: the stitched MP4 is the output
        code = exc.code if isinstance(exc, JobError) else "internal"
        run.warn("preview not published", index=index, errorCode=code, error=repr(exc)[:500])
        return None, {"previewError": {"code": code, "message": str(exc)[:500], "index": index}}


def _publish(
    run: StepRun, spec: LongFormJob, index: int, clip: Path, info: MediaInfo, tmp: Path
) -> tuple[dict[str, Any], dict[str, Any]]:
    rendition = preview_rendition(spec)
    out = tmp / "preview"
    out.mkdir(exist_ok=True)
    args = preview_encode_args(
        clip,
        out,
        rendition,
        segment_pattern=clip_pattern(index),
        src_has_audio=info.has_audio,
        segment_s=PREVIEW_SEGMENT_S,
    )
    base = f"{PREVIEW_ROOT}/{run.job_id}"
    segments: list[dict[str, Any]] = []
    for seg in stream_segments(args, out, timeout_s=PREVIEW_TIMEOUT_S):
        storage.upload_file(seg.path, f"{base}/{seg.name}", SEGMENT_CONTENT_TYPE)
        seg.path.unlink(missing_ok=True)
        segments.append({"uri": seg.name, "durationSeconds": round(seg.duration_s, 6)})
    piece = piece_of(index, {"segments": segments})
    others = [p for p in recorded_pieces(run.job) if p.index != index]
    target = SegmentGrid(rendition.fps, PREVIEW_SEGMENT_S, None).target_duration
    text = build_preview_playlist([*others, piece], len(spec.prompts), target)
    storage.upload_bytes(
        text,
        playlist_path(run.job_id),
        PLAYLIST_CONTENT_TYPE,
        cache_control=storage.CACHE_NONE,
    )
    listed = text.count("#EXTINF:")
    run.log("preview published", index=index, segments=len(segments), playlistSegments=listed)
    record = {"segments": segments, "playlistSegments": listed, "ended": "#EXT-X-ENDLIST" in text}
    url = public_url(storage.public_base(), playlist_path(run.job_id))
    # the URL once the playlist lists a clip (clip 0 is in)
    return record, ({"previewPlaylistUrl": url} if listed else {})
