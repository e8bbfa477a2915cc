"""How a generation ends, chosen in one place (providers/registry.py `callbacks`, `polled`):
by a callback, by short task attempts, or polled in-process."""

from __future__ import annotations

import pytest

from providers import registry
from providers.local import LocalProvider
from providers.replicate_provider import ReplicateProvider
from providers.veo_provider import VeoProvider

HOOK = "https://us-central1-demo.cloudfunctions.net/providerwebhook"


def replicate() -> ReplicateProvider:
    return ReplicateProvider("r8_x", "black-forest-labs/flux-schnell", "bytedance/seedance-1-lite")


def veo() -> VeoProvider:
    return VeoProvider("gm_x", "veo-3.0-fast-generate-001")


@pytest.mark.parametrize(
    ("env", "make", "mode"),
    [
        ({}, replicate, "in-process"),  # no webhook URL: poll as before
        ({"PROVIDER_WEBHOOK_URL": HOOK}, replicate, "callback"),
        ({"PROVIDER_WEBHOOK_URL": HOOK}, lambda: LocalProvider(), "in-process"),
        ({}, veo, "tasks"),
        ({"POLL_FROM_TASKS": "false"}, veo, "in-process"),
        ({"PROVIDER_WEBHOOK_URL": HOOK}, veo, "tasks"),
    ],
)
def test_how_a_generation_ends(monkeypatch: pytest.MonkeyPatch, env, make, mode) -> None:
    monkeypatch.delenv("PROVIDER_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("POLL_FROM_TASKS", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    provider = make()
    chosen = (
        "callback"
        if registry.callbacks(provider) is not None
        else "tasks"
        if registry.polled(provider) is not None
        else "in-process"
    )
    assert chosen == mode
