"""Peak memory of each media function, each run in a fresh process.

Every measurement runs the function in its own interpreter and reports the peak resident
set of that interpreter and, separately, of the largest ffmpeg/ffprobe child it started
(`RUSAGE_CHILDREN.ru_maxrss`): what a Cloud Functions instance needs. The baseline is a
plain `ffmpeg` run of the same transcode (for the encoders) started the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Each snippet runs with cwd=functions/ and the inputs prepared below as IN_* variables.
SNIPPETS: dict[str, str] = {
    "thumbnail (media.frames.make_thumbnail)": "from media.frames import make_thumbnail; make_thumbnail(Path(IN_VIDEO), OUT / 't.jpg')",
    "ken burns 4 s 720p (media.animate)": "from media.animate import render_ken_burns; render_ken_burns(Path(IN_IMAGE), OUT / 'k.mp4', 4.0, 1280, 720)",
    "compose stream copy 5 clips (media.compose_run)": "from media.compose_run import compose; compose(CLIPS, OUT / 'c.mp4')",
    "compose crossfade 5 clips (media.compose_run)": "from media.compose_run import compose; compose(CLIPS, OUT / 'x.mp4', include_crossfade=True)",
    "last frame (media.frames.extract_last_frame)": "from media.frames import extract_last_frame; extract_last_frame(Path(IN_VIDEO), OUT / 'l.png')",
}

RUNNER = """
import json, resource, sys, time
from pathlib import Path
ARGS = json.loads(sys.argv[1])
exec(sys.argv[2])
started = time.monotonic()
exec(sys.argv[3])
seconds = time.monotonic() - started
self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"python_mib": self_kb / 1024, "ffmpeg_mib": child_kb / 1024, "seconds": seconds}))
"""
"""Runs `setup` (imports, inputs), then the measured `code`, with the JSON `ARGS`: prints the
peak RSS of the interpreter and of its largest child, and the wall seconds of `code`."""

# The inputs of SNIPPETS, from the ARGS `run()` passes.
INPUTS = """
IN_VIDEO, IN_IMAGE = ARGS["video"], ARGS["image"]
CLIPS = [Path(p) for p in ARGS["clips"]]
OUT = Path(ARGS["out"])
"""


def measure(
    code: str,
    setup: str = "",
    args: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """Peak memory (MiB: `python_mib`, `ffmpeg_mib`) and wall `seconds` of `code` run in a
    fresh interpreter (cwd functions/, `setup` run first, its imports not timed), with
    `env` added to this process's environment."""
    full_env = {
        **os.environ,
        **(env or {}),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT)]),
    }
    out = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(args or {}), setup, code],
        cwd=ROOT / "functions",
        env=full_env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _inputs(folder: Path) -> tuple[Path, Path, list[Path]]:
    sys.path.insert(0, str(ROOT))
    from devtools.media_factory import make_clip, make_image

    clips = [
        make_clip(folder / f"clip{i}.mp4", duration=5.0, width=1280, height=720, fps=30)
        for i in range(5)
    ]
    image = make_image(folder / "seed.png", 1280, 720)
    return clips[0], image, clips


def run() -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_mem_") as tmp:
        folder = Path(tmp)
        video, image, clips = _inputs(folder)
        args = {"video": str(video), "image": str(image), "clips": [str(c) for c in clips]}
        for name, code in SNIPPETS.items():
            results[name] = measure(code, INPUTS, {**args, "out": str(folder)})
    return results


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
