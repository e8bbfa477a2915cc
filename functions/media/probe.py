"""What a media file contains, read with ffprobe into typed values."""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from core.errors import MediaError
from media.process import run_ffprobe


@dataclass(frozen=True)
class VideoStream:
    codec: str
    width: int  # as displayed, rotation applied
    height: int
    fps: float
    pix_fmt: str
    sample_aspect_ratio: str
    rotation: int  # degrees, from the display matrix / rotate tag
    profile: str | None
    level: int | None
    bit_rate: int | None


@dataclass(frozen=True)
class AudioStream:
    codec: str
    sample_rate: int
    channels: int
    channel_layout: str | None


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float
    size_bytes: int
    format_name: str
    bit_rate: int | None
    video: VideoStream | None
    audio: AudioStream | None

    @property
    def has_video(self) -> bool:
        return self.video is not None

    @property
    def has_audio(self) -> bool:
        return self.audio is not None


def probe(path: str | Path, *, timeout_s: float = 60.0) -> MediaInfo:
    """Probe a local file. Raises MediaError(code='unreadable-media') if ffprobe can't read it."""
    p = Path(path)
    if not p.exists() or p.stat().st_size == 0:
        raise MediaError(f"{p.name} is empty or missing", code="unreadable-media")
    return parse_probe(_probe_json(str(p), p.name, timeout_s), size_bytes=p.stat().st_size)


def probe_url(url: str, *, size_bytes: int, timeout_s: float = 60.0) -> MediaInfo:
    """Probe media behind an http(s) URL (e.g. a signed Storage URL): ffprobe reads only the
    header and index it needs, not the whole file. MediaError('unreadable-media') if it can't."""
    return parse_probe(_probe_json(url, "the file", timeout_s), size_bytes=size_bytes)


def _probe_json(target: str, name: str, timeout_s: float) -> dict:
    try:
        out = run_ffprobe(
            ["-print_format", "json", "-show_format", "-show_streams", target], timeout_s=timeout_s
        )
        return dict(json.loads(out))
    except (MediaError, json.JSONDecodeError) as exc:
        raise MediaError(f"{name} is not readable media: {exc}", code="unreadable-media") from exc


def parse_probe(data: dict, *, size_bytes: int) -> MediaInfo:
    """Turn ffprobe's JSON into MediaInfo (pure; unit-testable)."""
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    v = next((s for s in streams if s.get("codec_type") == "video" and not _is_cover(s)), None)
    a = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration = _float(fmt.get("duration")) or max(
        (_float(s.get("duration")) or 0.0 for s in streams), default=0.0
    )
    video = None
    if v is not None:
        rotation = _rotation(v)
        w, h = int(v.get("width") or 0), int(v.get("height") or 0)
        if rotation in (90, 270):
            w, h = h, w
        video = VideoStream(
            codec=str(v.get("codec_name")),
            width=w,
            height=h,
            fps=_rate(v.get("avg_frame_rate")) or _rate(v.get("r_frame_rate")) or 0.0,
            pix_fmt=str(v.get("pix_fmt")),
            sample_aspect_ratio=str(v.get("sample_aspect_ratio") or "1:1"),
            rotation=rotation,
            profile=v.get("profile"),
            level=int(v["level"]) if isinstance(v.get("level"), int) else None,
            bit_rate=int(v["bit_rate"]) if str(v.get("bit_rate", "")).isdigit() else None,
        )
    audio = None
    if a is not None:
        audio = AudioStream(
            codec=str(a.get("codec_name")),
            sample_rate=int(a.get("sample_rate") or 0),
            channels=int(a.get("channels") or 0),
            channel_layout=a.get("channel_layout"),
        )
    br = fmt.get("bit_rate")
    return MediaInfo(
        duration_s=duration,
        size_bytes=size_bytes,
        format_name=str(fmt.get("format_name", "")),
        bit_rate=int(str(br)) if str(br or "").isdigit() else None,
        video=video,
        audio=audio,
    )


def _is_cover(stream: dict) -> bool:
    return bool((stream.get("disposition") or {}).get("attached_pic"))


def _rotation(stream: dict) -> int:
    for sd in stream.get("side_data_list") or []:
        if "rotation" in sd:
            return round(float(sd["rotation"])) % 360
    tag = (stream.get("tags") or {}).get("rotate")
    return int(tag) % 360 if tag and str(tag).lstrip("-").isdigit() else 0


def _rate(value: object) -> float | None:
    try:
        r = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return None
    return float(r) if r > 0 else None


def _float(value: object) -> float | None:
    try:
        return float(str(value))
    except ValueError:
        return None
