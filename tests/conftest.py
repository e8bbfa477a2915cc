"""Shared fixtures: the local stack running the real app, and clients that talk to it."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import firebase_admin
import pytest
from google.cloud import firestore, storage
from hypothesis import settings

from core.clients import _EmulatorCredential
from local_stack.stack import LocalStack, StackSettings
from tests.fakes.provider_api import FakeProviderAPI

ROOT = Path(__file__).resolve().parent.parent

# Property-based tests: the test command replays a fixed set of examples (derandomized) so a
# red run always reproduces; cases found while exploring are pinned with @example.
# Explore with new random examples: HYPOTHESIS_PROFILE=explore bash scripts/test.sh
settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
# What the host needs for jobs that name the real Replicate adapter: a (fake) token, an
# explicit default provider (with a token, "auto" would pick Replicate for every job),
# and per-job provider choice switched on. See docs/video-jobs.md.
PROVIDER_OVERRIDE_ENV = {
    "ALLOW_PROVIDER_OVERRIDE": "true",
    "MEDIA_PROVIDER": "local",
    "REPLICATE_API_TOKEN": "r8_local_fake_token",
}


@pytest.fixture(scope="session")
def provider_api() -> Iterator[FakeProviderAPI]:
    """A local HTTP server that answers like Replicate / OpenAI / Veo."""
    with FakeProviderAPI() as api:
        yield api


_PROVIDER_MARK = pytest.StashKey[tuple[int, int]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test that used the fake provider API reports what the provider saw and sent
    during it (predictions, scenarios, callbacks and their answers)."""
    report: pytest.TestReport = yield
    api = getattr(item, "funcargs", {}).get("provider_api")
    if report.failed and isinstance(api, FakeProviderAPI) and _PROVIDER_MARK in item.stash:
        report.sections.append(
            ("the fake provider during this test", api.diagnosis(item.stash[_PROVIDER_MARK]))
        )
    return report


@pytest.fixture(autouse=True)
def _provider_fields_reach_the_model(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that made an adapter send a field the provider silently ignores (an
    input the model's published schema does not have): in production it would never
    reach the model. See tests/fakes/provider_api.py."""
    if "provider_api" not in request.fixturenames:
        yield
        return
    api: FakeProviderAPI = request.getfixturevalue("provider_api")
    api.take_ignored_fields()
    request.node.stash[_PROVIDER_MARK] = api.mark()
    yield
    ignored = api.take_ignored_fields()
    assert not ignored, f"sent fields the provider would silently ignore: {ignored}"


def make_stack_settings(
    project_id: str, state_dir: Path, provider_api: FakeProviderAPI, *, lease_s: int
) -> StackSettings:
    """A local stack for tests: schedules run on demand only, task backoff shrunk, the fake
    provider API wired in, and a job lease of `lease_s` seconds. Nothing is kept across
    restarts (each test session starts empty)."""
    return StackSettings(
        project_id=project_id,
        state_dir=state_dir,
        run_schedules=False,
        persist=False,
        task_backoff_scale=0.02,
        # Jobs use the offline provider by default; a job may name `provider: replicate` to go
        # through the real Replicate adapter against the fake API (override allowed in tests only).
        host_env={
            **provider_api.env(),
            "JOB_LEASE_SECONDS": str(lease_s),
            **PROVIDER_OVERRIDE_ENV,
        },
    )


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, provider_api: FakeProviderAPI
) -> Iterator[LocalStack]:
    """The local stack hosting functions/main.py, shared by the whole test session.

    Providers default to the offline `local` adapter (no keys set). Tests that exercise
    the real adapters point them at the fake API per job (see tests/integration).
    """
    settings = make_stack_settings(
        "demo-media-backend", tmp_path_factory.mktemp("stack"), provider_api, lease_s=900
    )
    with LocalStack(settings) as running, running.env():
        yield running


@pytest.fixture(scope="session")
def db(stack: LocalStack) -> firestore.Client:
    return firestore.Client(project=stack.settings.project_id)


@pytest.fixture(scope="session")
def bucket(stack: LocalStack) -> storage.Bucket:
    return storage.Client(project=stack.settings.project_id).bucket(stack.settings.bucket)


def admin_app(stack: LocalStack) -> firebase_admin.App:
    """A firebase_admin app for this stack (named per project, emulator credentials)."""
    name = f"stack-{stack.settings.project_id}"
    try:
        return firebase_admin.get_app(name)
    except ValueError:
        return firebase_admin.initialize_app(
            _EmulatorCredential(),
            {"projectId": stack.settings.project_id, "storageBucket": stack.settings.bucket},
            name=name,
        )


@pytest.fixture(scope="module")
def provider_override(stack: LocalStack) -> Iterator[None]:
    """The host with PROVIDER_OVERRIDE_ENV (the session stack already runs with it)."""
    with stack.host_params(**PROVIDER_OVERRIDE_ENV):
        yield


@pytest.fixture()
def id_token(stack: LocalStack):
    """ID tokens signed in through the stack's Auth emulator, verified by the host as in
    production."""
    return stack.sign_in


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("SKIP_E2E") == "1":
        skip = pytest.mark.skip(reason="SKIP_E2E=1")
        for item in items:
            if "e2e" in item.keywords:
                item.add_marker(skip)
