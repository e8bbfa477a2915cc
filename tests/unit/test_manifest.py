"""The manifest the Firebase CLI reads at deploy time, produced by the SDK's own discovery.

Runs `serving.get_functions()` + `functions_as_yaml()` (what `/__/functions.yaml` serves to
the CLI) in a fresh interpreter, with no emulator or secret in the environment, and checks
every function's trigger and options.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from local_stack.manifest import sdk_manifest

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
FIRESTORE_CREATED = "google.cloud.firestore.document.v1.created"
STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"

# name -> (trigger kind, detail) ; detail is the document pattern for Firestore triggers
EXPECTED = {
    "handle_image_generation": ("firestore", "image_generation_jobs/{job_id}"),
    "sweep_stuck_jobs": ("schedule", "every 5 minutes"),
    "triggerlongformvideojob": ("callable", None),
    "replaylongformvideojob": ("callable", None),
    "longformstep": ("task", None),
    "handle_video_generation": ("firestore", "video_generation_jobs/{job_id}"),
    "handle_multi_video_generation": ("firestore", "multi_video_jobs/{job_id}"),
    "multivideostep": ("task", None),
    "handle_composition": ("firestore", "composition_jobs/{job_id}"),
    "createvideogeneration": ("callable", None),
    "listdrafts": ("callable", None),
    "getcreation": ("callable", None),
    "deletecreation": ("callable", None),
    "publishcreation": ("callable", None),
    "generateapi": ("https", None),
    "providerwebhook": ("https", None),
    "providerpoll": ("task", None),
    "reconcileprediction": ("task", None),
    "creationworker": ("task", None),
    "cleanup_deleted_creation": ("firestore_deleted", "creations/{creation_id}"),
    "handle_video_upload": ("storage", None),
    "streamcontinue": ("task", None),
    "generatequality": ("task", None),
    "redrivework": ("task", None),
    "streamassets": ("task", None),
}


@pytest.fixture(scope="module")
def manifest() -> dict:
    return sdk_manifest()


def test_every_function_is_discovered_with_its_trigger(manifest: dict):
    endpoints = manifest["endpoints"]
    missing = set(EXPECTED) - set(endpoints)
    assert not missing, f"functions not in the manifest: {missing}"
    for name, (kind, detail) in EXPECTED.items():
        ep = endpoints[name]
        if kind == "firestore":
            assert ep["eventTrigger"]["eventType"] == FIRESTORE_CREATED
            assert ep["eventTrigger"]["eventFilterPathPatterns"]["document"] == detail
            assert ep["eventTrigger"]["retry"] is False
        elif kind == "firestore_deleted":
            assert ep["eventTrigger"]["eventType"] == "google.cloud.firestore.document.v1.deleted"
            assert ep["eventTrigger"]["eventFilterPathPatterns"]["document"] == detail
        elif kind == "storage":
            assert ep["eventTrigger"]["eventType"] == STORAGE_FINALIZED
        elif kind == "schedule":
            assert ep["scheduleTrigger"]["schedule"] == detail
        elif kind == "task":
            assert "taskQueueTrigger" in ep
        elif kind == "callable":
            assert "callableTrigger" in ep
        elif kind == "https":
            assert "httpsTrigger" in ep


def test_every_function_has_explicit_resources_and_cost_labels(manifest: dict):
    for name, ep in manifest["endpoints"].items():
        assert ep["labels"]["app"] == "media-backend", name
        assert ep["labels"]["service"], name
        assert isinstance(ep["availableMemoryMb"], int), name
        assert ep["cpu"] != "gcf_gen1" and float(ep["cpu"]) >= 1, (
            f"{name} must not run on a fraction of a CPU"
        )
        assert ep["timeoutSeconds"] > 0 and ep["maxInstances"] > 0, name
        assert ep["platform"] == "gcfv2" and ep["region"] == ["us-central1"], name
        if "eventTrigger" in ep:
            assert ep["timeoutSeconds"] <= 540, f"{name}: event functions are capped at 540 s"


def test_generation_functions_bind_provider_secrets(manifest: dict):
    ep = manifest["endpoints"]["handle_image_generation"]
    keys = {s["key"] for s in ep["secretEnvironmentVariables"]}
    assert {"REPLICATE_API_TOKEN", "OPENAI_API_KEY", "GEMINI_API_KEY"} <= keys
    declared = {p["name"] for p in manifest["params"]}
    assert {
        "MEDIA_PROVIDER",
        "COMPOSITE_METHOD",
        "JOB_LEASE_SECONDS",
        "BACKGROUND_QUALITIES",
    } <= declared


def test_import_is_cheap():
    """Deploy and every cold start import main.py: no network, no secret reads, fast."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST")}
    env["PYTHONPATH"] = str(FUNCTIONS)
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", "import main"], cwd=FUNCTIONS, env=env, check=True, timeout=60
    )
    assert time.monotonic() - started < 20


def test_only_the_callback_binds_the_webhook_secret(manifest: dict):
    """The signing secret reaches the one function that verifies callbacks."""
    binding = {
        name
        for name, ep in manifest["endpoints"].items()
        if "REPLICATE_WEBHOOK_SECRET"
        in {s["key"] for s in ep.get("secretEnvironmentVariables", [])}
    }
    assert binding == {"providerwebhook"}
    reconciler = {
        s["key"] for s in manifest["endpoints"]["reconcileprediction"]["secretEnvironmentVariables"]
    }
    assert "REPLICATE_API_TOKEN" in reconciler, "the reconciler asks Replicate about lost callbacks"
    sweep = manifest["endpoints"]["sweep_stuck_jobs"].get("secretEnvironmentVariables") or []
    assert sweep == [], "the sweep only queues: it asks no provider itself"
