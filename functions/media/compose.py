"""Planning a composition of clips into one MP4 (pure: no processes, no file access).

`plan_composition` takes what `media.probe` found in each clip (and in an optional music
track), chooses the strategy (stream copy when nothing blocks it: compose_copy.py, else a
re-encode onto one canvas: compose_reencode.py) and returns the exact ffmpeg arguments in a
`CompositionPlan` (compose_model.py); `media.compose_run` runs it. The output is always
H.264 yuv420p + AAC stereo 48 kHz in an MP4 with `+faststart`. The strategies, the canvas,
crossfades and music: docs/video-jobs.md, "Composition jobs".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from media.compose_copy import plan_stream_copy, stream_copy_blockers
from media.compose_model import (
    AudioTrack,
    ClipInput,
    ComposeOptions,
    CompositionPlan,
    validate_clips,
    validate_options,
)
from media.compose_reencode import plan_reencode


def plan_composition(
    clips: Sequence[ClipInput],
    audio: AudioTrack | None,
    options: ComposeOptions,
    *,
    out_path: Path,
    concat_list_path: Path | None = None,
) -> CompositionPlan:
    """Decide stream copy vs re-encode and build the ffmpeg arguments for `out_path`."""
    validate_clips(clips)
    validate_options(options, audio)
    blockers = stream_copy_blockers(clips, options)
    if not blockers:
        list_path = concat_list_path or out_path.with_name(out_path.name + ".concat.txt")
        return plan_stream_copy(clips, audio, options, out_path, list_path)
    return plan_reencode(clips, audio, options, out_path, tuple(blockers))
