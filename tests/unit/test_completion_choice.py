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


@pytest.mark.parametrize(
    ("env", "make", "hands_off"),
    [
        ({}, replicate, False),
        ({"PROVIDER_WEBHOOK_URL": HOOK}, replicate, True),
        ({"PROVIDER_WEBHOOK_URL": HOOK}, lambda: LocalProvider(), False),
        ({}, veo, True),
        ({"POLL_FROM_TASKS": "false"}, veo, False),
    ],
)
def test_hands_off_is_either_way_without_an_instance(monkeypatch, env, make, hands_off) -> None:
    monkeypatch.delenv("PROVIDER_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("POLL_FROM_TASKS", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert registry.hands_off(make()) is hands_off


def test_a_polled_slot_gets_one_poll_chain_per_prediction(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scene (slot) on Veo: its operation is recorded and one `providerpoll` chain is
    queued; a re-run of the step queues no second chain, a prediction made again its own."""
    from core import tasks
    from core.lifecycle import Job
    from providers.base import VideoRequest
    from tests.support.firestore import use_fake_firestore

    monkeypatch.delenv("POLL_FROM_TASKS", raising=False)
    fake = use_fake_firestore(monkeypatch)
    queued: list[str] = []
    monkeypatch.setattr(tasks, "enqueue", lambda q, p, *, task_id, delay_s=None: (
        queued.append(f"{q.name}:{task_id}:{p['slot']}") or True))  # fmt: skip
    provider = veo()
    operations = iter(["op-1", "op-2"])
    monkeypatch.setattr(provider, "begin_video", lambda request: next(operations))
    request = VideoRequest(image=None, prompt="a calm sea", duration_s=4.0)

    def step() -> Job:
        data = fake.data("multi_video_jobs/j1") or {}
        return Job(ref=fake.document("multi_video_jobs/j1"), data=data, claim_id="c1", attempts=1)

    fake.put("multi_video_jobs/j1", {"status": "processing", "claimId": "c1", "user_id": "u"})
    for _ in range(2):  # the step, then a redelivery of it
        assert registry.hand_off_video(step(), provider, request, chain="1", slot="2")
    record = (fake.data("multi_video_jobs/j1") or {})["slot_predictions"]["2"]
    assert record["state"] == "waiting" and record["id"] == "op-1" and record["provider"] == "veo"
    assert queued == ["providerpoll:j1-poll-2-1-0:2"] * 2, "the same task id: one chain"
    fake.put("multi_video_jobs/j1", {**(fake.data("multi_video_jobs/j1") or {}),
             "slot_predictions": {"2": {**record, "state": "failed"}}})  # fmt: skip
    assert registry.hand_off_video(step(), provider, request, chain="1", slot="2")
    assert queued[-1] == "providerpoll:j1-poll-2-1-1:2" and len(queued) == 3
