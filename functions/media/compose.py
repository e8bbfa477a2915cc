"""Planning a composition of clips into one MP4 (pure: no processes, no file access).

Given what `media.probe` found in each clip (and in an optional music track), decide how
ffmpeg should join them and return the exact argument list in a `CompositionPlan`.
`media.compose_run` probes, writes the concat list and runs the plan.

Two strategies:

* **stream_copy** - every clip is H.264 yuv420p in an MP4/MOV with square pixels, no
  rotation, and the same size, frame rate, profile, time base and codec private data
  (SPS/PPS, when known), and their audio is uniform (all AAC with the same rate and
  channels, or none at all). Then the concat demuxer joins the packets with `-c:v copy`:
  seconds instead of minutes, and no quality loss. Audio is copied too when it is already
  AAC stereo 48 kHz and no music is added; otherwise only the audio is re-encoded
  (music mixed in, resampled to 48 kHz stereo, or silence added when clips are silent).
* **reencode** - anything else, and always for crossfades or `optimize_size`. Every clip is
  brought to one canvas: the most common clip size (ties: the first clip's), even
  dimensions, letterboxed/pillarboxed to keep its display aspect (SAR and rotation taken
  into account), square pixels, the most common frame rate, yuv420p; audio is resampled to
  48 kHz stereo, and clips without audio get silence. Each clip is cut to an exact frame
  count so crossfade offsets are exact: with n clips of d_i seconds and a crossfade of x,
  clip k+1 starts at sum(d_1..d_k) - k*x and the result lasts sum(d_i) - (n-1)*x.

Music (`AudioTrack`) is trimmed (or padded with silence) to the video's length and faded
out over its last second. audio_mode "mix" (the default) lays it under the clips' own audio
at -12 dB (a plain `amix`, no ducking); when no clip has audio it is used at full volume,
as with "replace", which drops the clips' audio.

The output is always H.264 yuv420p + AAC stereo 48 kHz in an MP4 with `+faststart`.
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
