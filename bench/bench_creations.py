"""Benchmark: the createVideoGeneration callable on the local stack.

Starts its own LocalStack and measures, through the callable over HTTP with local ID
tokens (what a client sees, HTTP included):

* latency: sequential creates by one user, p50 / p95 / max in ms (the bar is 100 ms);
* throughput: creates per second with 16 client threads spread over 16 users, and with
  16 threads all charging one user (every create locks that user's balance);
* the 50-way run: 50 simultaneous creates against a balance that affords 20, with the
  outcome (accepted, refused, balance, ledger sum) and, once the workers have failed
  them on purpose, the refunds.

Prompts carry the local provider's `[fail:content-policy]` marker, so each worker fails
fast and refunds instead of rendering video: the numbers are about the create path and
the ledger, not ffmpeg.

    python -m bench.bench_creations          # prints a table and the JSON figures
    from bench.bench_creations import run; run()
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

_ROOT = Path(__file__).resolve().parent.parent
for _p in (_ROOT / "functions", _ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from core import ledger  # noqa: E402
from devtools import ledger_audit  # noqa: E402
from local_stack.stack import LocalStack, StackSettings  # noqa: E402

COST = 40  # duration 4 at the default 10 tokens per second
PROMPT = "[fail:content-policy] benchmark creation"


def _grant(uid: str, amount: int) -> None:
    with contextlib.redirect_stdout(io.StringIO()):  # the backend's structured log line
        ledger.grant(uid, amount, reason="benchmark")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


class _Client:
    def __init__(self, stack: LocalStack):
        self.url = stack.function_url("createvideogeneration")
        self.stack = stack
        self.session = requests.Session()
        self.session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=64))

    def create(self, uid: str, prompt: str = PROMPT) -> tuple[int, float, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.stack.sign_in(uid)}"}
        started = time.perf_counter()
        r = self.session.post(
            self.url, json={"data": {"prompt": prompt, "duration": 4}}, headers=headers, timeout=60
        )
        return r.status_code, (time.perf_counter() - started) * 1000, r.json()


def _latency(client: _Client, calls: int) -> dict[str, float]:
    uid = f"bench-lat-{uuid.uuid4().hex[:8]}"
    _grant(uid, COST * (calls + 5))
    for _ in range(5):  # warm-up: first calls pay connection and import costs
        client.create(uid)
    ms = []
    for _ in range(calls):
        status, elapsed, body = client.create(uid)
        if status != 200:
            raise RuntimeError(f"create failed: {status} {body}")
        ms.append(elapsed)
    return {
        "calls": calls,
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(_percentile(ms, 0.95), 1),
        "max_ms": round(max(ms), 1),
        "mean_ms": round(statistics.fmean(ms), 1),
    }


def _throughput(client: _Client, calls: int, users: int, threads: int = 16) -> dict[str, float]:
    uids = [f"bench-tp-{uuid.uuid4().hex[:8]}" for _ in range(users)]
    for uid in uids:
        _grant(uid, COST * calls)
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda i: client.create(uids[i % users]), range(calls)))
    wall = time.perf_counter() - started
    failures = sum(1 for status, _, _ in results if status != 200)
    return {
        "calls": calls,
        "threads": threads,
        "users": users,
        "wall_s": round(wall, 2),
        "creates_per_s": round(calls / wall, 1),
        "failures": failures,
    }


def _fifty_way(client: _Client, db_wait_s: float = 60.0) -> dict[str, Any]:
    uid = f"bench-race-{uuid.uuid4().hex[:8]}"
    _grant(uid, 20 * COST)
    prompt = "[fail:slow=5] " + PROMPT  # workers refuse only after the race is measured
    started = time.perf_counter()
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda _: client.create(uid, prompt), range(50)))
    wall = time.perf_counter() - started
    balance, total = ledger_audit.audit(uid)
    accepted = [body["result"]["creationId"] for status, _, body in results if status == 200]
    refused = [body["error"] for status, _, body in results if status != 200]
    outcome: dict[str, Any] = {
        "requests": 50,
        "affordable": 20,
        "accepted": len(accepted),
        "refused": len(refused),
        "refused_insufficient": sum(
            1 for e in refused if (e.get("details") or {}).get("reason") == "insufficient-tokens"
        ),
        "balance_after": balance,
        "ledger_sum_after": total,
        "wall_s": round(wall, 2),
        "p95_ms": round(_percentile([ms for _, ms, _ in results], 0.95), 1),
    }
    end = time.monotonic() + db_wait_s
    while time.monotonic() < end:
        refunds = [e for e in ledger_audit.entries(uid) if e["type"] == "refund"]
        if len(refunds) >= len(accepted):
            break
        time.sleep(0.5)
    balance, total = ledger_audit.audit(uid)
    outcome.update(
        {
            "refunds": sum(1 for e in ledger_audit.entries(uid) if e["type"] == "refund"),
            "balance_after_refunds": balance,
            "ledger_sum_after_refunds": total,
        }
    )
    outcome["ok"] = (
        outcome["accepted"] == 20
        and outcome["balance_after"] == outcome["ledger_sum_after"] == 0
        and outcome["refunds"] == 20
        and outcome["balance_after_refunds"] == outcome["ledger_sum_after_refunds"] == 20 * COST
    )
    return outcome


def run(*, latency_calls: int = 100, throughput_calls: int = 160) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="bench-creations-"))
    settings = StackSettings(
        state_dir=state,
        run_schedules=False,
        persist=False,
        task_backoff_scale=0.02,
        host_env={"JOB_LEASE_SECONDS": "900"},
    )
    with LocalStack(settings) as stack, stack.env():
        client = _Client(stack)
        results: dict[str, Any] = {
            "latency": _latency(client, latency_calls),
            "throughput_many_users": _throughput(client, throughput_calls, users=16),
            "throughput_one_user": _throughput(client, throughput_calls, users=1),
            "fifty_way": _fifty_way(client),
        }
        stack.wait_idle(60)
    results["target_p50_under_100ms"] = results["latency"]["p50_ms"] < 100
    return results


def _print(results: dict[str, Any]) -> None:
    lat = results["latency"]
    print("createVideoGeneration on the local stack (callable over HTTP, local ID tokens)")
    print(
        f"  latency ({lat['calls']} sequential): p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms, max {lat['max_ms']} ms"
    )
    for key in ("throughput_many_users", "throughput_one_user"):
        t = results[key]
        print(
            f"  throughput ({t['threads']} threads, {t['users']} user(s)): {t['creates_per_s']} creates/s "
            f"({t['calls']} in {t['wall_s']} s, {t['failures']} failures)"
        )
    f = results["fifty_way"]
    print(
        f"  50-way race for 20: accepted {f['accepted']}, refused {f['refused']}, balance {f['balance_after']}, "
        f"ledger sum {f['ledger_sum_after']}; after the workers: {f['refunds']} refunds, "
        f"balance {f['balance_after_refunds']} -> {'OK' if f['ok'] else 'FAILED'}"
    )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    _print(run())
