"""Every benchmark, one command, one table:

    functions/venv/bin/python -m bench            # all
    functions/venv/bin/python -m bench --quick    # skip the 5-minute source of the plot

Each figure is printed with its baseline measured in the same run (plain ffmpeg, a bare
write, a bare HTTP round trip, "transcode everything then publish") and the ratio
ours / baseline, plus absolute times and peak memory. Writes bench/results/latest.json,
bench/results/latest.md, bench/results/by_length.json (every by-length run so far) and
bench/results/time_to_playable.png (their curves side by side, bench/plot.py).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from bench import plot
from local_stack.stack import LocalStack, StackSettings

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results"

Row = tuple[str, str, float | None, float | None, str]  # name, unit, ours, baseline, note


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b in (None, 0) else f"{a / b:.2f}"


def callable_latency(stack: LocalStack, calls: int = 30) -> dict[str, float]:
    """createvideogeneration round trips vs a bare HTTP round trip to the function host."""
    from bench import bench_creations

    client = bench_creations._Client(stack)
    lat = bench_creations._latency(client, calls)
    session = requests.Session()
    health = f"http://127.0.0.1:{stack.host_port}/__/health"
    for _ in range(5):
        session.get(health, timeout=10)
    ms = []
    for _ in range(calls):
        t0 = time.perf_counter()
        session.get(health, timeout=10)
        ms.append((time.perf_counter() - t0) * 1000)
    return {
        "p50_ms": lat["p50_ms"],
        "p95_ms": lat["p95_ms"],
        "bare_http_p50_ms": statistics.median(ms),
    }


def collect(quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''} cores={__import__('os').cpu_count()}",
    }
    stack = LocalStack(
        StackSettings(
            state_dir=ROOT / ".local" / "bench", fresh=True, persist=False, run_schedules=False
        )
    ).start()
    try:
        with stack.env():
            from bench import bench_platform

            results["platform"] = bench_platform.run(stack)
            results["callable"] = callable_latency(stack)
    finally:
        stack.stop()
    for name in (
        "bench_web",
        "bench_compose",
        "bench_creations",
        "bench_webhooks",
        "bench_longform",
        "memory",
        "bench_streaming",
    ):
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError:
            continue
        print(f"... {name}", flush=True)
        try:
            results[name] = module.run()
            if name == "bench_streaming" and hasattr(module, "run_first_playable"):
                results["first_playable_stages"] = module.run_first_playable()
            if name == "bench_webhooks" and hasattr(module, "run_longform"):
                results["webhooks_longform"] = module.run_longform()
            if name == "bench_streaming" and hasattr(module, "run_lengths"):
                lengths = (10, 60) if quick else (10, 60, 300)
                results["time_to_playable_by_length"] = module.run_lengths(lengths, repeats=3)
        except Exception:
            traceback.print_exc()
            results[name] = {"error": traceback.format_exc()[-1500:]}
    return results


def rows(r: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    p = r.get("platform", {})
    tl, ci = p.get("trigger_latency", {}), p.get("cold_import", {})
    if tl:
        out.append(
            (
                "trigger: write -> handler started",
                "ms",
                tl.get("write_to_handler_started_ms_p50"),
                tl.get("plain_write_to_listener_ms_p50"),
                "baseline: plain write seen by a listener",
            )
        )
        out.append(
            (
                "trigger: write -> status visible to listener",
                "ms",
                tl.get("write_to_status_visible_ms_p50"),
                tl.get("plain_write_to_listener_ms_p50"),
                "p50",
            )
        )
    c = r.get("callable", {})
    if c:
        out.append(
            (
                "callable createvideogeneration p50",
                "ms",
                c["p50_ms"],
                c["bare_http_p50_ms"],
                f"p95 {c['p95_ms']:.0f} ms; baseline: bare HTTP round trip",
            )
        )
    if ci:
        out.append(
            (
                "cold import of functions/main.py",
                "s",
                ci["import_main_s"],
                ci["bare_interpreter_s"],
                "baseline: bare interpreter",
            )
        )
    out.extend(web_rows(r.get("bench_web") or {}))
    comp = r.get("bench_compose", {})
    for job in ("stream_copy", "crossfade"):
        f = comp.get(job)
        if isinstance(f, dict):
            out.append(
                (
                    f"compose 5x5 s 720p: {job}",
                    "s",
                    f["ours_s"],
                    f["plain_s"],
                    f"{f['ours_x_realtime']}x realtime (plain {f['plain_x_realtime']}x)",
                )
            )
    for key in ("bench_webhooks", "webhooks_longform"):
        wh = r.get(key, {})
        if isinstance(wh, dict) and "webhook" in wh:
            from bench import bench_webhooks

            out.extend(bench_webhooks.rows(wh))
    cr = r.get("bench_creations", {})
    if isinstance(cr, dict) and "throughput_many_users" in cr:
        tp = cr["throughput_many_users"]
        out.append(
            (
                "creations: creates per second (16 threads)",
                "1/s",
                tp["creates_per_s"],
                None,
                f"{tp['failures']} failures",
            )
        )
        fw = cr.get("fifty_way", {})
        out.append(
            (
                "creations: 50-way race for 20",
                "accepted",
                fw.get("accepted"),
                20,
                f"balance {fw.get('balance_after')} = ledger {fw.get('ledger_sum_after')}; refunds {fw.get('refunds')}; ok={fw.get('ok')}",
            )
        )
    st = r.get("bench_streaming", {})
    if isinstance(st, dict) and "progressive" in st:
        prog, base = st["progressive"]["from_trigger_start"], st["baseline_transcode_then_publish"]
        src = f"{st['source']['seconds']} s 1080p30"
        note = "baseline: transcode everything, then publish"
        out.append(
            (
                f"stream {src}: first playable (master + 1st segment)",
                "s",
                prog.get("first_playable_s"),
                base["first_playable_s"],
                note,
            )
        )
        out.append(
            (f"stream {src}: ready", "s", prog.get("ready_s"), base["first_playable_s"], note)
        )
        out.append(
            (
                f"stream {src}: 720p complete",
                "s",
                prog.get("live_720p_complete_s"),
                base["first_playable_s"],
                note,
            )
        )
        if "1080p_ready_s" in prog:
            out.append(
                (f"stream {src}: 1080p ready (background)", "s", prog["1080p_ready_s"], None, "")
            )
        plain = st["plain_ffmpeg_same_encode"]
        out.append(
            (
                "720p live encode speed",
                "x realtime",
                st["progressive"].get("live_720p_speed_x_realtime"),
                plain["speed_x_realtime"],
                "baseline: plain ffmpeg, same arguments",
            )
        )
        mem = st["progressive"].get("memory_live", {})
        out.append(
            (
                "streaming peak memory: host + ffmpeg",
                "MiB",
                mem.get("peak_rss_mb"),
                base.get("peak_ffmpeg_rss_mb"),
                "baseline: the baseline's ffmpeg",
            )
        )
    fp = r.get("first_playable_stages")
    if isinstance(fp, dict) and "floor" in fp:
        low = fp["floor"]["first_segment_alone_s"]
        note = f"median of {fp['repeats']}; baseline: ffmpeg start + 1st segment alone (the floor)"
        out.append(
            ("first playable 60 s 1080p30 vs the floor", "s", fp["first_playable_s"], low, note)
        )
        out.append(
            (
                "first playable 60 s 1080p30 vs transcode-then-publish",
                "s",
                fp["first_playable_s"],
                fp["baseline_first_playable_s"],
                "same run",
            )
        )
        out.append(("ffmpeg start alone", "s", fp["floor"]["ffmpeg_start_s"], None, "trivial run"))
        for stage, t in fp["stages_s"].items():
            out.append((f"first playable stage: {stage}", "s", t, None, "from the trigger's start"))
        load = fp.get("load_avg_1m")
        out.append(
            (
                "load average (1 min) at the end of first playable",
                "",
                load,
                None,
                f"{os.cpu_count()} cores",
            )
        )
        if isinstance(fp.get("background_assets"), dict):
            from bench import bench_streaming

            out.extend(bench_streaming.asset_rows(fp["background_assets"]))
    lf = r.get("bench_longform")
    if isinstance(lf, dict) and "first_preview_s" in lf:
        from bench import bench_longform

        out.extend(bench_longform.rows(lf))
    for name, m in (r.get("memory") or {}).items():
        if isinstance(m, dict) and "ffmpeg_mib" in m:
            out.append(
                (
                    f"peak memory: {name}",
                    "MiB",
                    m["python_mib"] + m["ffmpeg_mib"],
                    None,
                    f"python {m['python_mib']:.0f} + ffmpeg {m['ffmpeg_mib']:.0f}",
                )
            )
    return out


def web_rows(w: dict[str, Any]) -> list[Row]:
    """The web SDK path: official emulator (ours) next to the npm fallback (baseline)."""
    official, npm = w.get("official") or {}, w.get("npm") or {}
    fallback = (npm.get("python_client") or {}) if npm else {}
    out: list[Row] = []

    def pair(title: str, key: str, ours: dict[str, Any], ours_client: str) -> None:
        mine, base = ours.get(key), fallback.get(key)
        if not mine:
            return
        note = f"p95 {mine['p95_ms']:.0f} ms" + (
            f" vs {base['p95_ms']:.0f} ms; baseline: npm fallback, Python client "
            "(it cannot serve the web SDK)"
            if base
            else ""
        )
        out.append(
            (
                f"{title} ({ours_client})",
                "ms",
                mine["p50_ms"],
                base["p50_ms"] if base else None,
                note,
            )
        )

    if official:
        web, py = official.get("web_sdk") or {}, official.get("python_client") or {}
        pair(
            "official emulator: write -> trigger started",
            "write_to_trigger_started",
            web,
            "web SDK",
        )
        pair(
            "official emulator: write -> trigger started", "write_to_trigger_started", py, "Python"
        )
        pair(
            "official emulator: terminal status -> onSnapshot",
            "trigger_done_to_listener",
            web,
            "browser",
        )
        pair(
            "official emulator: terminal status -> onSnapshot",
            "trigger_done_to_listener",
            py,
            "Python",
        )
        out.append(
            (
                "Firestore server start-up",
                "s",
                official.get("firestore_startup_s"),
                npm.get("firestore_startup_s") if npm else None,
                "official emulator (JVM) vs the npm server",
            )
        )
        out.append(
            (
                "local stack start-up (all servers, host, web app)",
                "s",
                official.get("stack_startup_s"),
                npm.get("stack_startup_s") if npm else None,
                "official vs npm Firestore; both start the Auth emulator",
            )
        )
    return out


def table(rs: list[Row]) -> str:
    lines = [
        "| figure | unit | ours | baseline | ours/baseline | note |",
        "|---|---|---|---|---|---|",
    ]
    for name, unit, ours, base, note in rs:
        lines.append(
            f"| {name} | {unit} | {_fmt(ours)} | {_fmt(base)} | {_ratio(ours, base)} | {note} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="skip the 5-minute source in the plot")
    args = parser.parse_args()
    started = time.monotonic()
    ran_on = plot.commit()
    r = collect(args.quick)
    OUT.mkdir(parents=True, exist_ok=True)
    rs = rows(r)
    md = table(rs)
    (OUT / "latest.json").write_text(json.dumps(r, indent=2, default=str))
    (OUT / "latest.md").write_text(f"Run {r['when']} on {r['machine']}\n\n{md}\n")
    lengths = r.get("time_to_playable_by_length")
    plotted = isinstance(lengths, dict) and plot.plot(
        plot.record(lengths, "python -m bench", ran_on)
    )
    print()
    print(md)
    print(
        f"\nwrote {OUT / 'latest.json'}, {OUT / 'latest.md'}"
        + (f", {plot.HISTORY}, {plot.PLOT}" if plotted else "")
    )
    print(f"benchmark wall time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
