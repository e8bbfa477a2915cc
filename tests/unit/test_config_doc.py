"""docs/configuration.md lists every param the deployed code declares (it is generated)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def config_doc() -> Any:
    spec = importlib.util.spec_from_file_location("config_doc", ROOT / "scripts" / "config_doc.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_doc_is_up_to_date():
    module = config_doc()
    expected = module.render()
    actual = (ROOT / "docs" / "configuration.md").read_text()
    assert actual == expected, (
        "run: functions/venv/bin/python scripts/config_doc.py > docs/configuration.md"
    )


def test_every_param_has_a_description():
    module = config_doc()
    missing = [
        p["name"]
        for p in module.manifest()["params"]
        if p["type"] != "secret" and not p.get("description")
    ]
    assert not missing, f"params without a description: {missing}"


def test_a_provider_deadline_ends_before_the_function_is_killed():
    """Every function that calls a provider outlives PROVIDER_TIMEOUT_SECONDS plus a create
    request (PROVIDER_REQUEST_TIMEOUT_SECONDS) and a download (60 s): a slow generation then
    ends as `provider-timeout` with the prediction canceled, not as a killed instance that
    the sweep reports 15 minutes later."""
    module = config_doc()
    manifest = module.manifest()
    defaults = {p["name"]: p.get("default") for p in manifest["params"]}
    needed = (
        defaults["PROVIDER_TIMEOUT_SECONDS"] + defaults["PROVIDER_REQUEST_TIMEOUT_SECONDS"] + 60
    )
    # "api" functions (callables) bind the keys only to know which model's limits apply
    # (runtime.LIGHT_WITH_PROVIDER_KEYS): they call no provider
    callers = {
        name: int(e["timeoutSeconds"])
        for name, e in manifest["endpoints"].items()
        if e.get("secretEnvironmentVariables") and e["labels"]["service"] != "api"
    }
    assert "handle_video_generation" in callers and "creationworker" in callers
    too_short = {name: t for name, t in callers.items() if t < needed}
    assert not too_short, f"functions killed before the provider deadline ({needed} s): {too_short}"


def test_a_stalled_quality_is_judged_only_after_its_task_could_still_answer():
    """The sweep records `quality-stalled` only after QUALITY_STALL_SECONDS, which must
    cover the `generatequality` queue's whole retry window plus every attempt's timeout:
    until then a live attempt may still settle the quality itself."""
    from core import runtime

    queue = runtime.GENERATE_QUALITY
    window = int(queue.retry.max_retry_seconds or 0)  # type: ignore[arg-type]
    attempts = queue.max_attempts * int(queue.resources["timeout_sec"])
    defaults = {p["name"]: p.get("default") for p in config_doc().manifest()["params"]}
    assert defaults["QUALITY_STALL_SECONDS"] >= window + attempts


def test_a_stalled_asset_is_judged_only_after_its_task_could_still_answer():
    """The sweep records `asset-stalled` only after ASSET_STALL_SECONDS, which must cover
    the `streamassets` queue's attempts from one attempt's start: its own timeout, then
    every retry's backoff and timeout (each attempt writes a new `startedAt`, but one that
    dies before writing it does not)."""
    from core import runtime

    queue = runtime.STREAM_ASSETS
    retry = queue.retry
    low, high = int(retry.min_backoff_seconds or 0), int(retry.max_backoff_seconds or 0)  # type: ignore[arg-type]
    backoffs = [min(low * 2**i, high) for i in range(queue.max_attempts - 1)]
    attempts = queue.max_attempts * int(queue.resources["timeout_sec"])
    defaults = {p["name"]: p.get("default") for p in config_doc().manifest()["params"]}
    assert defaults["ASSET_STALL_SECONDS"] >= attempts + sum(backoffs)
