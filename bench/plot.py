"""Time to first playable by upload length: every recorded by-length run's curve side by side.

`bench/results/by_length.json` keeps one entry per by-length run (when, commit, load, and
`run_lengths()`'s figures); `record()` adds this run's (replacing an entry of the same
commit), `plot()` draws every entry's first-playable curve and each run's own baseline
(transcode everything, then publish) into `bench/results/time_to_playable.png`, so the
current curve stands beside the earlier ones and the load each was measured under.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "results"
HISTORY = OUT / "by_length.json"
PLOT = OUT / "time_to_playable.png"


def commit() -> str:
    """The short commit the bench runs on, `+changes` when the worktree differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+changes" if git("status", "--porcelain", "--", "functions") else "")


def history() -> list[dict[str, Any]]:
    if not HISTORY.exists():
        return []
    runs: list[dict[str, Any]] = json.loads(HISTORY.read_text())["runs"]
    return runs


def record(lengths: dict[str, Any], label: str, ran_on: str) -> list[dict[str, Any]]:
    """Add this run's by-length figures, measured on commit `ran_on` (`commit()` read before
    the run), to the history (one entry per commit) and save it."""
    entry = {
        "label": label,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": ran_on,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "lengths": lengths,
    }
    runs = [r for r in history() if r["commit"] != entry["commit"]] + [entry]
    OUT.mkdir(parents=True, exist_ok=True)
    HISTORY.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    return runs


def plot(runs: list[dict[str, Any]], path: Path = PLOT) -> bool:
    """First playable (solid) and the same run's baseline (dashed) per run, by source length.
    The latest run is drawn last and labelled with its figures."""
    runs = [r for r in runs if r.get("lengths")]
    if not runs:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colors = ["0.6", "tab:blue", "tab:green", "tab:purple"]
    for i, run in enumerate(runs):
        data = sorted(run["lengths"].values(), key=lambda d: d["source_s"])
        x = [d["source_s"] for d in data]
        first = [d["first_playable_s"] for d in data]
        # a baseline that timed out on a saturated machine is left out
        bx = [d["source_s"] for d in data if d.get("baseline_first_playable_s") is not None]
        base = [d["baseline_first_playable_s"] for d in data if d["source_s"] in bx]
        color = colors[-1] if i >= len(colors) else colors[i]
        if i == len(runs) - 1:
            color = "tab:red"
        loads = [d.get("load_avg_1m") for d in data if d.get("load_avg_1m") is not None]
        load = f", load {min(loads):.0f}-{max(loads):.0f}" if loads else ""
        tag = f"{run['when'][:10]} {run['commit']}"
        ax.plot(x, first, "o-", color=color, label=f"first playable: {run['label']} ({tag}{load})")
        ax.plot(bx, base, "x--", color=color, alpha=0.6, label=f"baseline, same run ({tag})")
        labels = [(xi, y, f"{y:.2f} s") for xi, y in zip(x, first, strict=True)]
        labels += [(xi, y, f"{y:.0f} s") for xi, y in zip(bx, base, strict=True)]
        for xi, y, text in labels:
            ax.annotate(text, (xi, y), textcoords="offset points", xytext=(0, 7 + 9 * i),
                        ha="center", color=color, fontsize=8)  # fmt: skip
    ax.set_xlabel("source length (s), 1080p30 H.264/AAC")
    ax.set_ylabel("seconds from the upload trigger")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(top=ax.get_ylim()[1] * 1.8)  # room for the top labels under the title
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14))  # below the axes
    ax.set_title("Time to playable (720p), 2 cores shared; baseline: transcode all, then publish")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return True
