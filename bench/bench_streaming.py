"""Benchmark: upload -> playable, progressive HLS vs "transcode everything, then publish".

Source: 60 s 1080p30 H.264/AAC (testsrc2 + sine, ~41 MB, cached in .local/bench/), on a
local stack this benchmark starts itself (the real functions/main.py in the function
host; Storage events are detected by the stack's 150 ms listing poll, as Eventarc would
deliver them with some latency).

Measured (wall seconds):

* from the finalize event, i.e. the trigger's start (`processingStartedAt`, written by the
  handler in its claim transaction as the delivery arrives; the stack detects new objects
  by polling every 150 ms), and from the moment the client's upload request returned (for
  large files the trigger can start before that response arrives; the local Storage server
  stamps `timeCreated` before a large upload has completed, so it is not the origin here) to
  - first playable: a client polling the public path-style URLs every 20 ms can fetch the
    master, a media playlist that lists a segment, and that segment;
  - `ready` (the document's `readyAt`);
  - 720p complete (ENDLIST; `liveEndedAt`);
* the baseline in the same run: `devtools.baseline.baseline_encode_args` for 720p only
  (one ffmpeg, VOD, same encoder settings and grid), reading the same upload URL, then
  every file uploaded; nothing is playable before the last upload;
* 720p encode speed (x realtime) of the live encode (trigger start -> ENDLIST, publishing
  included) next to plain ffmpeg running the same arguments on the local file;
* peak memory (RSS) of the function host + its ffmpeg while the live encode runs, and of
  the baseline's ffmpeg.

Background qualities run after the live rendition here (QUALITIES_WITH_LIVE=false): in
production every task has its own instance; on a 2-core box they would share the live
encoder's cores. `run_lengths()` gives time to first playable for 10 s, 60 s and 5 min.

    python -m bench.bench_streaming                 # run() and run_lengths(), JSON
    python -m bench.bench_streaming first-playable  # run_first_playable(): stages, floor
    python -m bench.bench_streaming inputs          # run_first_playable_inputs(): by input kind
    python -m bench.bench_streaming assets          # run_assets(): storyboard, MP4 download
    python -m bench.bench_streaming lengths [--quick] [--label L]  # run_lengths(), the plot
    from bench.bench_streaming import run; run()
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
for _p in (_ROOT / "functions", _ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import requests  # noqa: E402
from google.cloud import firestore  # noqa: E402
from google.cloud.storage import Bucket, Client  # noqa: E402

from bench import memory  # noqa: E402
from core.errors import MediaError  # noqa: E402
from devtools.baseline import run_baseline  # noqa: E402
from devtools.media_factory import make_clip  # noqa: E402
from local_stack.stack import LocalStack, StackSettings  # noqa: E402
from media.hls.encode import LIVE_PRESET, LIVE_TUNE, hls_encode_args  # noqa: E402
from media.hls.ladder import ladder_for  # noqa: E402
from media.probe import probe  # noqa: E402
from media.process import run_ffmpeg  # noqa: E402

CACHE = _ROOT / ".local" / "bench"
STACK_ENV = {
    "JOB_LEASE_SECONDS": "900",
    "MEDIA_PROVIDER": "local",
    "QUALITIES_WITH_LIVE": "false",
}


INPUTS: dict[str, dict[str, Any]] = {
    "1080p30 H.264": {"width": 1920, "height": 1080, "fps": 30},
    "1080p30 HEVC": {"width": 1920, "height": 1080, "fps": 30, "vcodec": "libx265"},
    "1080p30 VP9": {
        "width": 1920, "height": 1080, "fps": 30, "vcodec": "libvpx-vp9", "acodec": "libopus",
        "extra_args": ["-deadline", "realtime", "-cpu-used", "8", "-b:v", "4M"],
    },
    "1080p30 rotated 90": {"width": 1920, "height": 1080, "fps": 30, "rotate": 90},
    "2160p60 H.264": {"width": 3840, "height": 2160, "fps": 60},
}  # fmt: skip
"""The upload kinds `run_first_playable_inputs` compares (`make_clip` arguments)."""
REFERENCE_INPUT = "1080p30 H.264"
"""The kind of `source()`, the upload every other part measures."""


def _cached(path: Path, make: Callable[[Path], object]) -> Path:
    """`path`, made once by `make(tmp)` (renamed into place only when complete)."""
    if not path.exists():
        tmp = path.with_name(f".{path.name}")
        make(tmp)
        tmp.rename(path)
    return path


def source(seconds: int) -> Path:
    """The 1080p30 H.264/AAC test source of `seconds` (generated once, cached). Sources
    longer than a minute repeat the 60 s one (stream copy), which is much faster."""
    path = CACHE / f"src_1080p30_{seconds}s.mp4"
    if seconds > 60 and seconds % 60 == 0:
        return _cached(path, lambda tmp: _repeat(source(60), seconds // 60, tmp))
    return _cached(path, lambda tmp: _clip(REFERENCE_INPUT, seconds, tmp))


def input_source(kind: str, seconds: int) -> Path:
    """A cached source of `kind` (one of `INPUTS`); the reference kind is `source()`."""
    if kind == REFERENCE_INPUT:
        return source(seconds)
    suffix = ".webm" if INPUTS[kind].get("vcodec") == "libvpx-vp9" else ".mp4"
    path = CACHE / f"input_{kind.replace(' ', '_')}_{seconds}s{suffix}"
    return _cached(path, lambda tmp: _clip(kind, seconds, tmp))


def _clip(kind: str, seconds: int, out: Path) -> None:
    make_clip(out, duration=float(seconds), preset="veryfast", **INPUTS[kind])


def _repeat(one: Path, times: int, out: Path) -> None:
    listing = CACHE / f".concat_{out.name}.txt"
    listing.write_text(f"file '{one.name}'\n" * times)
    run_ffmpeg(
        ["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(out)],
        timeout_s=600,
    )
    listing.unlink()


def start_stack(**env: str) -> LocalStack:
    state = Path(tempfile.mkdtemp(prefix="bench-streaming-"))
    settings = StackSettings(
        state_dir=state,
        run_schedules=False,
        fresh=True,
        persist=False,
        host_env={**STACK_ENV, **env},
    )
    return LocalStack(settings).start()


# --------------------------------------------------------------------------- observers


class PeakRss:
    """Polls /proc every 50 ms: peak summed RSS of a process tree (root + descendants)."""

    def __init__(self, root_pid: Callable[[], int | None]):
        self._root = root_pid
        self.peak_mb = 0.0
        self.peak_ffmpeg_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            root = self._root()
            if root is not None:
                total, ff = 0.0, 0.0
                for pid, name in _tree(root):
                    rss = _rss_mb(pid)
                    total += rss
                    if name == "ffmpeg":
                        ff += rss
                self.peak_mb = max(self.peak_mb, total)
                self.peak_ffmpeg_mb = max(self.peak_ffmpeg_mb, ff)
            self._stop.wait(0.05)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(2)
        return {
            "peak_rss_mb": round(self.peak_mb, 1),
            "peak_ffmpeg_rss_mb": round(self.peak_ffmpeg_mb, 1),
        }


def _tree(root: int) -> list[tuple[int, str]]:
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
        names[int(entry)] = name
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append((pid, names.get(pid, "")))
        todo += children.get(pid, [])
    return out


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class FirstPlayable:
    """What a player needs, fetched every 20 ms from the public URL: the master, a media
    playlist listing a segment, and that segment. Records the wall time it first worked."""

    def __init__(self, stack: LocalStack, video_id: str):
        self.base = f"http://{stack.storage_host}/{stack.settings.bucket}/streams/{video_id}/"
        self.at: float | None = None
        self._http = requests.Session()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while self.at is None and not self._stop.is_set():
            try:
                if self._check():
                    self.at = time.time()
            except requests.RequestException:
                pass
            self._stop.wait(0.02)

    def _check(self) -> bool:
        master = self._http.get(self.base + "master.m3u8", timeout=5)
        if master.status_code != 200:
            return False
        first = next(line for line in master.text.splitlines() if line and line[0] != "#")
        url = urllib.parse.urljoin(self.base, first)
        playlist = self._http.get(url, timeout=5)
        segs = [line for line in playlist.text.splitlines() if line and line[0] != "#"]
        if playlist.status_code != 200 or not segs:
            return False
        return self._http.get(urllib.parse.urljoin(url, segs[0]), timeout=5).status_code == 200

    def wait(self, timeout_s: float) -> float | None:
        self._thread.join(timeout_s)
        self._stop.set()
        return self.at


# --------------------------------------------------------------------------- measurements


def _upload(bucket: Bucket, src: Path, video_id: str) -> None:
    bucket.blob(f"uploads/bench-user/{video_id}{src.suffix}").upload_from_filename(
        str(src), content_type=f"video/{src.suffix.lstrip('.')}"
    )


def _wait_doc(
    db: firestore.Client, video_id: str, check: Callable[[dict[str, Any]], bool], timeout_s: float
) -> dict[str, Any]:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        data = db.collection("videos").document(video_id).get().to_dict() or {}
        if check(data) or data.get("status") == "failed":
            return data
        time.sleep(0.1)
    raise TimeoutError(f"videos/{video_id}: not done in {timeout_s}s")


def _ts(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


def _since(t: float | None, origin: float | None) -> float | None:
    return None if t is None or origin is None else round(t - origin, 3)


def progressive(
    stack: LocalStack, src: Path, *, wait_for: str = "complete", timeout_s: float = 600
) -> dict[str, Any]:
    """Upload `src` and time the progressive path (see the module docstring)."""
    db = firestore.Client(project=stack.settings.project_id)
    bucket = Client(project=stack.settings.project_id).bucket(stack.settings.bucket)
    video_id = f"bench{uuid.uuid4().hex[:10]}"
    host = stack.children.get("host")  # the benchmark watches the host process's memory
    memory = PeakRss(lambda: host.pid if host is not None else None)
    playable = FirstPlayable(stack, video_id)
    uploaded = time.time()
    _upload(bucket, src, video_id)
    finalized = time.time()  # the upload request returned: the object is finalized
    at = playable.wait(timeout_s)
    if wait_for == "ready":
        doc = _wait_doc(db, video_id, lambda d: d.get("readyAt") is not None, timeout_s)
    else:
        doc = _wait_doc(db, video_id, lambda d: d.get("liveEndedAt") is not None, timeout_s)
    mem = memory.stop()  # the live encode (background qualities start after it here)
    if wait_for == "complete":
        doc = _wait_doc(db, video_id, lambda d: d.get("status") == "complete", timeout_s)
    started = _ts(doc.get("processingStartedAt"))
    live_end = _ts(doc.get("liveEndedAt"))
    levels = doc.get("qualityLevels") or {}
    out: dict[str, Any] = {
        "video_id": video_id,
        "status": doc.get("status"),
        "client_upload_s": round(finalized - uploaded, 3),
        "doc_time_to_ready_s": doc.get("timeToReadySeconds"),
        "from_upload_returned": {
            "first_playable_s": _since(at, finalized),
            "ready_s": _since(_ts(doc.get("readyAt")), finalized),
            "live_720p_complete_s": _since(live_end, finalized),
        },
        "from_trigger_start": {
            "thumbnail_s": _since(_ts(doc.get("thumbnailAt")), started),
            "master_s": _since(_ts(doc.get("masterAt")), started),
            "first_segment_s": _since(_ts(doc.get("firstSegmentAt")), started),
            "first_playable_s": _since(at, started),
            "ready_s": _since(_ts(doc.get("readyAt")), started),
            "live_720p_complete_s": _since(live_end, started),
        },
        "memory_live": mem,
    }
    duration = float(doc.get("duration") or 0)
    if live_end and started and duration:
        out["live_720p_speed_x_realtime"] = round(duration / (live_end - started), 2)
    later = {
        f"{name}_ready_s": _ts(level.get("readyAt"))
        for name, level in levels.items()
        if not level.get("live") and _ts(level.get("readyAt"))
    }
    if doc.get("status") == "complete":
        later["complete_s"] = _ts(doc.get("completedAt"))
    for key, t in later.items():
        out["from_upload_returned"][key] = _since(t, finalized)
        out["from_trigger_start"][key] = _since(t, started)
    return out


def baseline(stack: LocalStack, src: Path) -> dict[str, Any]:
    """Transcode 720p completely (same settings and grid), then upload every file."""
    bucket = Client(project=stack.settings.project_id).bucket(stack.settings.bucket)
    name = f"uploads/bench-user/baseline{uuid.uuid4().hex[:8]}.bin"  # not a video: no trigger
    bucket.blob(name).upload_from_filename(str(src), content_type="application/octet-stream")
    url = stack.storage_url(name)
    live = ladder_for(probe(src))[0]
    prefix = f"baseline/{uuid.uuid4().hex[:8]}"
    memory = PeakRss(lambda: os.getpid())
    with tempfile.TemporaryDirectory() as tmp:
        started = time.time()
        run_baseline(url, tmp, [live], timeout_s=1200)
        encoded = time.time()
        files = sorted((Path(tmp) / live.name).iterdir(), key=lambda p: p.suffix != ".ts")
        for f in files:  # segments first, the playlist last
            blob = bucket.blob(f"{prefix}/{live.name}/{f.name}")
            blob.upload_from_filename(str(f))
        bucket.blob(f"{prefix}/master.m3u8").upload_from_string("#EXTM3U\n")
        published = time.time()
    mem = memory.stop()
    return {
        "encode_s": round(encoded - started, 3),
        "publish_s": round(published - encoded, 3),
        "first_playable_s": round(published - started, 3),
        "speed_x_realtime": round(probe(src).duration_s / (encoded - started), 2),
        "peak_ffmpeg_rss_mb": mem["peak_ffmpeg_rss_mb"],
    }


def plain_ffmpeg(src: Path) -> dict[str, Any]:
    """The live encode's own ffmpeg arguments on the local file, nothing published."""
    info = probe(src)
    live = ladder_for(info)[0]
    memory = PeakRss(lambda: os.getpid())
    with tempfile.TemporaryDirectory() as tmp:
        started = time.time()
        run_ffmpeg(
            hls_encode_args(src, tmp, live, preset=LIVE_PRESET, tune=LIVE_TUNE), timeout_s=1200
        )
        wall = time.time() - started
    mem = memory.stop()
    return {
        "wall_s": round(wall, 3),
        "speed_x_realtime": round(info.duration_s / wall, 2),
        "peak_ffmpeg_rss_mb": mem["peak_ffmpeg_rss_mb"],
    }


def run(seconds: int = 60) -> dict[str, Any]:
    """The full comparison for a `seconds`-long 1080p30 upload (see the module docstring)."""
    src = source(seconds)
    stack = start_stack()
    try:
        with stack.env():
            ours = progressive(stack, src, wait_for="complete")
            base = baseline(stack, src)
            plain = plain_ffmpeg(src)
            stack.wait_idle(60)
            stack.settings.host_env["STREAM_OVERLAP_START"] = "false"
            stack.restart_host()
            strict = progressive(stack, src, wait_for="ready")
    finally:
        stack.stop()
    return {
        "source": {
            "seconds": seconds,
            "size_mb": round(src.stat().st_size / 1e6, 1),
            "video": "1080p30 H.264",
            "audio": "AAC",
        },
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "progressive": ours,
        "progressive_strict_order_first_playable_s": strict["from_trigger_start"][
            "first_playable_s"
        ],
        "baseline_transcode_then_publish": base,
        "plain_ffmpeg_same_encode": plain,
    }


STAGES = (
    "claimed",
    "probed",
    "encodeStarted",
    "thumbnail",
    "mediaPlaylists",
    "master",
    "startDocument",
    "firstSegmentEncoded",
    "masterWaited",
    "firstSegmentUploaded",
    "firstPlaylistsWritten",
)
"""`startStages` on the video document: seconds from the trigger's start to each stage
(streaming/live.py `mark`); stages not on the path (e.g. the thumbnail once it moved to the
background) are missing."""


def floor(stack: LocalStack, src: Path, repeats: int = 3) -> dict[str, Any]:
    """The physical floor on this machine: ffmpeg's start on its own (a trivial run), and
    ffmpeg started on the upload's URL encoding only the first segment of the live
    rendition (same arguments as the live encode), with nothing else: medians of `repeats`."""
    bucket = Client(project=stack.settings.project_id).bucket(stack.settings.bucket)
    name = f"uploads/bench-user/floor{uuid.uuid4().hex[:8]}.bin"  # not a video: no trigger
    bucket.blob(name).upload_from_filename(str(src), content_type="application/octet-stream")
    url = stack.storage_url(name)
    live = ladder_for(probe(src))[0]
    starts, firsts = [], []
    for _ in range(repeats):
        t = time.monotonic()
        run_ffmpeg(["-f", "lavfi", "-i", "color=s=16x16:d=0.04", "-f", "null", "-"], timeout_s=60)
        starts.append(time.monotonic() - t)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.monotonic()
            args = hls_encode_args(url, tmp, live, preset=LIVE_PRESET, tune=LIVE_TUNE, end_number=1)
            run_ffmpeg(args, timeout_s=120)
            firsts.append(time.monotonic() - t)
    return {
        "ffmpeg_start_s": round(statistics.median(starts), 3),
        "first_segment_alone_s": round(statistics.median(firsts), 3),
        "runs_first_segment_alone_s": [round(f, 3) for f in firsts],
    }


ASSETS = ("storyboard", "download")


def background_assets(stack: LocalStack, src: Path, timeout_s: float = 600) -> dict[str, Any]:
    """One upload followed to its storyboard and MP4 download: its first playable and
    `ready`, how long each asset's task took (its start to ready) and when it started
    relative to `ready` (never before it: the first-playable path does not wait for it),
    then each asset made again in a fresh process once the stack is idle, for its peak
    memory and its time alone (`asset_memory`)."""
    db = firestore.Client(project=stack.settings.project_id)
    first = progressive(stack, src, wait_for="ready", timeout_s=timeout_s)
    video_id = first["video_id"]
    doc = _wait_doc(
        db,
        video_id,
        lambda d: all((d.get(a) or {}).get("status") in ("ready", "failed") for a in ASSETS),
        timeout_s,
    )
    ready = _ts(doc.get("readyAt"))
    out: dict[str, Any] = {
        "video_id": video_id,
        "first_playable_s": first["from_trigger_start"]["first_playable_s"],
        "ready_s": first["from_trigger_start"]["ready_s"],
        "poster_after_ready_s": _since(_ts(doc.get("thumbnailAt")), ready),
    }
    for asset in ASSETS:
        a = doc.get(asset) or {}
        start, end = _ts(a.get("startedAt")), _ts(a.get("readyAt"))
        out[asset] = {
            "status": a.get("status"),
            "seconds": _since(end, start),
            "started_after_ready_s": _since(start, ready),
            "size_bytes": a.get("sizeBytes"),
        }
    out["stack_idle_before_memory"] = stack.wait_idle(300)  # the other qualities' encodes
    for asset in ASSETS:
        if out[asset]["status"] == "ready":
            out[asset]["alone"] = asset_memory(stack, video_id, asset)
    return out


def asset_memory(stack: LocalStack, video_id: str, asset: str) -> dict[str, float]:
    """`streaming.<asset>.make` for the video in a fresh interpreter (what one task instance
    runs; the task's document writes aside): peak RSS of the interpreter and of its ffmpeg,
    and its wall seconds. It rewrites the asset's own objects (same names)."""
    setup = (
        f"from streaming import {asset}\n"
        "from streaming.claim import video_ref\n"
        "DATA = video_ref(ARGS['video_id']).get().to_dict()\n"
    )
    return memory.measure(
        f"{asset}.make(ARGS['video_id'], DATA)", setup, {"video_id": video_id}, stack.client_env()
    )


def asset_rows(assets: dict[str, Any]) -> list[tuple[str, str, float | None, float | None, str]]:
    """Table rows for bench/__main__.py: each background asset's time and peak memory, and
    when it started relative to `ready` (the first-playable timeline)."""
    out: list[tuple[str, str, float | None, float | None, str]] = [
        (
            "stream 60 s 1080p30 with its assets: first playable / ready",
            "s",
            assets.get("first_playable_s"),
            None,
            f"ready {assets.get('ready_s')} s; poster {assets.get('poster_after_ready_s')} s "
            "after ready",
        )
    ]
    busy = "stack idle" if assets.get("stack_idle_before_memory") else "stack still busy"
    for asset in ASSETS:
        a = assets.get(asset) or {}
        alone = a.get("alone") or {}
        after = a.get("started_after_ready_s")
        out.append(
            (
                f"{asset} task (60 s 1080p30)",
                "s",
                a.get("seconds"),
                alone.get("seconds"),
                f"{a.get('status')}; started {after} s after ready; baseline: made again in a "
                f"fresh process ({busy})",
            )
        )
        if alone:
            out.append(
                (
                    f"peak memory: {asset} task (60 s 1080p30)",
                    "MiB",
                    alone["python_mib"] + alone["ffmpeg_mib"],
                    None,
                    f"python {alone['python_mib']:.0f} + ffmpeg {alone['ffmpeg_mib']:.0f}",
                )
            )
    return out


def run_first_playable(seconds: int = 60, repeats: int = 9) -> dict[str, Any]:
    """Where time to first playable goes, per stage (medians of `repeats` uploads on a warm
    instance), next to the floor and the naive baseline measured in the same run."""
    src = source(seconds)
    stack = start_stack()
    runs: list[dict[str, Any]] = []
    try:
        with stack.env():
            for _ in range(repeats):
                warm_up(stack)
                out = progressive(stack, src, wait_for="ready", timeout_s=120)
                db = firestore.Client(project=stack.settings.project_id)
                doc = db.collection("videos").document(out["video_id"]).get().to_dict() or {}
                out["stages"] = doc.get("startStages") or {}
                runs.append(out)
                stack.restart_host()  # stops the rest of this encode
            low = floor(stack, src, repeats)
            base = baseline(stack, src)
            assets = background_assets(stack, src)
    finally:
        stack.stop()

    first = _median([r["from_trigger_start"]["first_playable_s"] for r in runs])
    stages = {s: _median([r["stages"].get(s) for r in runs]) for s in STAGES}
    return {
        "source_s": seconds,
        "repeats": repeats,
        "first_playable_s": first,
        "ready_s": _median([r["from_trigger_start"]["ready_s"] for r in runs]),
        "stages_s": {k: v for k, v in stages.items() if v is not None},
        "runs_first_playable_s": [r["from_trigger_start"]["first_playable_s"] for r in runs],
        "floor": low,
        "baseline_first_playable_s": base["first_playable_s"],
        "ratio_to_floor": round(first / low["first_segment_alone_s"], 2) if first else None,
        "ratio_to_baseline": round(first / base["first_playable_s"], 3) if first else None,
        "background_assets": assets,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def run_first_playable_inputs(seconds: int = 10, repeats: int = 3) -> dict[str, Any]:
    """First playable (median of `repeats`, warm instance) for each of `INPUTS`, with the
    early start on (the default) and off: what starting the 1080p30 encoder before the
    probe costs the uploads it does not fit (one ffmpeg started and stopped)."""
    sources = {kind: input_source(kind, seconds) for kind in INPUTS}
    out: dict[str, Any] = {"source_s": seconds, "repeats": repeats, "inputs": {}}
    for key, early in (("early_start", "true"), ("no_early_start", "false")):
        stack = start_stack(STREAM_EARLY_START=early)
        try:
            with stack.env():
                for kind, src in sources.items():
                    runs = []
                    for _ in range(repeats):
                        warm_up(stack)
                        got = progressive(stack, src, wait_for="ready", timeout_s=180)
                        runs.append(got["from_trigger_start"]["first_playable_s"])
                        stack.restart_host()  # stops the rest of this encode
                    out["inputs"].setdefault(kind, {})[key] = {
                        "first_playable_s": _median(runs),
                        "runs": runs,
                    }
        finally:
            stack.stop()
    for row in out["inputs"].values():
        on, off = row["early_start"]["first_playable_s"], row["no_early_start"]["first_playable_s"]
        row["ratio_early_to_none"] = round(on / off, 2) if on and off else None
    out["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return out


def _median(values: list[Any]) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def run_assets(seconds: int = 60) -> dict[str, Any]:
    """`background_assets` alone, on a warm instance (the last part of run_first_playable)."""
    src = source(seconds)
    stack = start_stack()
    try:
        with stack.env():
            warm_up(stack)
            assets = background_assets(stack, src)
    finally:
        stack.stop()
    return {**assets, "source_s": seconds, "load_avg_1m": round(os.getloadavg()[0], 2)}


def warm_up(stack: LocalStack) -> None:
    """One tiny upload, so the measured one finds a warm instance (clients, imports)."""
    tiny = CACHE / "warmup_320x180.mp4"
    if not tiny.exists():
        make_clip(tiny, duration=1.0, width=320, height=180)
    progressive(stack, tiny, wait_for="live", timeout_s=60)
    stack.wait_idle(120)  # its background tasks (poster, storyboard, download) are done too


def run_lengths(lengths: tuple[int, ...] = (10, 60, 300), repeats: int = 3) -> dict[str, Any]:
    """Time to first playable (median of `repeats`) by source length, on a warm instance.
    Only the live path runs (BACKGROUND_QUALITIES=false); the host is restarted after each
    measurement, which stops the rest of that encode."""
    stack = start_stack(BACKGROUND_QUALITIES="false")
    out: dict[str, Any] = {}
    try:
        with stack.env():
            for seconds in lengths:
                src = source(seconds)
                runs = []
                for _ in range(repeats):
                    warm_up(stack)
                    runs.append(progressive(stack, src, wait_for="ready", timeout_s=120))
                    stack.restart_host()
                firsts = [r["from_trigger_start"]["first_playable_s"] for r in runs]
                try:
                    base: float | None = baseline(stack, src)["first_playable_s"]
                except MediaError as exc:  # its ffmpeg bound, on a saturated machine
                    base = None
                    print(f"baseline of {seconds} s not measured: {exc}", file=sys.stderr)
                out[f"{seconds}s"] = {
                    "source_s": seconds,
                    "first_playable_s": statistics.median(f for f in firsts if f is not None),
                    "baseline_first_playable_s": base,
                    "runs_first_playable_s": firsts,
                    "runs_from_upload_returned_s": [
                        r["from_upload_returned"]["first_playable_s"] for r in runs
                    ],
                    "load_avg_1m": round(os.getloadavg()[0], 2),
                }
    finally:
        stack.stop()
    return out


def main() -> None:
    import argparse
    import logging

    from bench import plot

    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m bench.bench_streaming")
    parser.add_argument(
        "part", nargs="?", choices=("first-playable", "inputs", "assets", "lengths")
    )
    parser.add_argument("--quick", action="store_true", help="lengths: skip the 5-minute source")
    parser.add_argument("--label", default="this run", help="lengths: the curve's name")
    args = parser.parse_args()
    if args.part == "first-playable":
        print(json.dumps(run_first_playable(), indent=2))
    elif args.part == "inputs":
        print(json.dumps(run_first_playable_inputs(), indent=2))
    elif args.part == "assets":
        print(json.dumps(run_assets(), indent=2))
    elif args.part == "lengths":
        ran_on = plot.commit()
        lengths = run_lengths((10, 60) if args.quick else (10, 60, 300), repeats=3)
        plot.plot(plot.record(lengths, args.label, ran_on))
        print(json.dumps(lengths, indent=2))
        print(f"wrote {plot.HISTORY}, {plot.PLOT}")
    else:
        print(json.dumps({"run": run(), "run_lengths": run_lengths()}, indent=2))


if __name__ == "__main__":
    main()
