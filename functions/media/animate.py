"""Animating a still image into a short MP4 (the local provider's "image-to-video").

`ken_burns_args` is pure: it builds the ffmpeg arguments for a slow zoom-in with a
gentle drift (the "Ken Burns" effect). The image is first scaled to cover the frame
and centre-cropped, then re-scaled every frame (``scale`` with ``eval=frame``, which
resamples smoothly rather than stepping whole source pixels like ``zoompan``) and
cropped back to the output size. The output is what the streaming pipeline expects
from any provider: H.264 High, yuv420p, constant frame rate, a keyframe every 2 s,
AAC stereo 48 kHz (quiet pink noise, so players and the HLS packager always see an
audio track), ``+faststart``, and exactly ``duration_s`` long (``-t``).
"""

from __future__ import annotations

from pathlib import Path

from core.errors import InvalidInput
from media.process import run_ffmpeg

ZOOM = 0.12  # the frame ends 12% zoomed in
KEYFRAME_INTERVAL_S = 2.0
AUDIO_RATE = 48_000


def ken_burns_args(
    image: Path,
    out: Path,
    duration_s: float,
    width: int,
    height: int,
    fps: int = 24,
    audio: bool = True,
) -> list[str]:
    """ffmpeg arguments (without the binary and global flags) for `run_ffmpeg`."""
    if not duration_s > 0:
        raise InvalidInput(f"duration must be positive, got {duration_s}")
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise InvalidInput(f"video size must be positive and even, got {width}x{height}")
    if fps <= 0:
        raise InvalidInput(f"fps must be positive, got {fps}")
    d = f"{duration_s:.6f}".rstrip("0").rstrip(".")
    gop = max(1, round(fps * KEYFRAME_INTERVAL_S))
    # progress 0 -> 1 over the clip; smoothstep-free linear motion reads as a steady push-in
    p = f"min(t/{d},1)"
    zoom_w = f"trunc({width}*(1+{ZOOM}*{p})/2)*2"
    video_filter = ",".join(
        [
            f"scale={width}:{height}:force_original_aspect_ratio=increase:flags=bicubic",
            f"crop={width}:{height}",
            "setsar=1",
            f"scale=w='{zoom_w}':h=-2:eval=frame:flags=bicubic",
            # centre, drifting from slightly left/up of centre to slightly right/down
            f"crop={width}:{height}:x='(iw-ow)*(0.35+0.3*{p})':y='(ih-oh)*(0.4+0.2*{p})'",
            f"fps={fps}",
            "format=yuv420p",
        ]
    )
    args: list[str] = ["-loop", "1", "-framerate", str(fps), "-t", d, "-i", str(image)]
    if audio:
        args += [
            "-f",
            "lavfi",
            "-t",
            d,
            "-i",
            f"anoisesrc=color=pink:amplitude=0.02:sample_rate={AUDIO_RATE}:seed=7",
        ]
    args += ["-map", "0:v:0"]
    if audio:
        args += ["-map", "1:a:0"]
    args += [
        "-vf",
        video_filter,
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-profile:v",
        "high",
        "-pix_fmt",
        "yuv420p",
        "-crf",
        "20",
        "-r",
        str(fps),
        "-g",
        str(gop),
        "-keyint_min",
        str(gop),
        "-sc_threshold",
        "0",
        "-force_key_frames",
        f"expr:gte(t,n_forced*{KEYFRAME_INTERVAL_S:g})",
    ]
    if audio:
        args += ["-c:a", "aac", "-b:a", "96k", "-ar", str(AUDIO_RATE), "-ac", "2"]
    else:
        args += ["-an"]
    args += ["-t", d, "-movflags", "+faststart", "-f", "mp4", str(out)]
    return args


def render_ken_burns(
    image: Path,
    out: Path,
    duration_s: float,
    width: int,
    height: int,
    fps: int = 24,
    audio: bool = True,
    *,
    timeout_s: float = 300.0,
) -> Path:
    """Run `ken_burns_args` through ffmpeg; returns `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    run_ffmpeg(
        ken_burns_args(image, out, duration_s, width, height, fps, audio), timeout_s=timeout_s
    )
    return out
