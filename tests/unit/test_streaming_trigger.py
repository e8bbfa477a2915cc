"""The finalize trigger's head start (streaming/trigger.py): the upload's probe and the live
encoder for the expected upload start as soon as the event arrives, before the claim; only
the delivery that wins the claim streams with the encoder, and every other path stops it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from firebase_functions import storage_fn

from streaming import trigger

UID = "user1"
PATH = f"uploads/{UID}/clip.mp4"
SRC = "http://storage.test/uploads/user1/clip.mp4"


class FakeEncode:
    """Stands in for media.hls.segmenter.RunningEncode: records start and stop."""

    started: list[FakeEncode] = []

    def __init__(self, args: list[str], out: Path, *, timeout_s: float) -> None:
        self.args, self.out, self.timeout_s = list(args), Path(out), timeout_s
        self.stops = 0
        FakeEncode.started.append(self)
        _EVENTS.append("encode started")

    def stop(self) -> None:
        self.stops += 1
        _EVENTS.append("encode stopped")


_EVENTS: list[str] = []


class FakeRun:
    def __init__(self, *, resumed: bool = False) -> None:
        self.resumed, self.attempts, self.video_id = resumed, 2 if resumed else 1, "clip"

    def log(self, message: str, **fields: Any) -> None:
        pass


def _obj(size: int = 5_000_000) -> storage_fn.StorageObjectData:
    return trigger._source_object(
        {"path": PATH, "bucket": "b", "contentType": "video/mp4", "generation": "7", "size": size},
        {},
    )


@pytest.fixture
def stubs(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The trigger with a fake encoder, a claim the test decides and a recorded stream."""
    FakeEncode.started = []
    _EVENTS.clear()
    seen: dict[str, Any] = {"claim": FakeRun(), "streamed": []}

    def fake_claim(obj: Any, upload: Any, event_id: str, started_at: Any) -> Any:
        _EVENTS.append("claim")
        seen["started_at"] = started_at
        result = seen["claim"]
        if isinstance(result, Exception):
            raise result
        return result

    def fake_probe(src: str, size: int) -> str:
        seen["probed"] = (src, size)
        return "the probe's answer"

    def fake_stream(run: Any, obj: Any, started: float, head: Any) -> None:
        encode = None if head is None else head.encode
        seen["streamed"].append(encode)
        if head is not None:
            assert head.probed()[0] == "the probe's answer"
        if encode is not None:
            assert encode.stops == 0, "the winner gets a running encoder"
        _EVENTS.append("streamed")

    monkeypatch.setattr(trigger, "RunningEncode", FakeEncode)
    monkeypatch.setattr(trigger, "claim", fake_claim)
    monkeypatch.setattr(trigger, "_stream_upload", fake_stream)
    monkeypatch.setattr(trigger, "probe_source", fake_probe)
    monkeypatch.setattr(trigger, "failing", lambda run: contextlib.nullcontext())
    monkeypatch.setattr(trigger.storage, "source_url", lambda path: SRC)
    yield seen


def test_the_claim_winner_streams_with_the_encoder_started_before_the_claim(
    stubs: dict[str, Any],
) -> None:
    trigger.handle(_obj(), "event-1")
    (encode,) = FakeEncode.started
    assert stubs["streamed"] == [encode] and SRC in encode.args
    assert stubs["probed"] == (SRC, 5_000_000)  # probed from the same URL, on arrival
    assert _EVENTS == ["encode started", "claim", "streamed", "encode stopped"]
    assert stubs["started_at"] is not None  # the document's processingStartedAt


def test_a_duplicate_delivery_stops_the_encoder_and_streams_nothing(
    stubs: dict[str, Any],
) -> None:
    stubs["claim"] = None
    trigger.handle(_obj(), "event-1")
    (encode,) = FakeEncode.started
    assert encode.stops >= 1 and stubs["streamed"] == []


def test_a_takeover_resumes_without_the_encoder(stubs: dict[str, Any]) -> None:
    stubs["claim"] = FakeRun(resumed=True)
    trigger.handle(_obj(), "event-2")
    (encode,) = FakeEncode.started
    assert stubs["streamed"] == [None] and encode.stops >= 1
    assert _EVENTS.index("encode stopped") < _EVENTS.index("streamed")


def test_a_failing_claim_stops_the_encoder(stubs: dict[str, Any]) -> None:
    stubs["claim"] = RuntimeError("firestore unavailable")
    with pytest.raises(RuntimeError):
        trigger.handle(_obj(), "event-1")
    (encode,) = FakeEncode.started
    assert encode.stops >= 1


def test_a_takeover_uses_the_probe_started_on_arrival(stubs: dict[str, Any]) -> None:
    stubs["claim"] = FakeRun(resumed=True)
    trigger.handle(_obj(), "event-2")
    assert stubs["probed"] == (SRC, 5_000_000)  # fake_stream read it from the head start


def test_without_the_early_encoder_the_probe_still_starts_on_arrival(
    stubs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAM_EARLY_START", "false")
    trigger.handle(_obj(), "event-1")
    assert FakeEncode.started == [] and stubs["streamed"] == [None]
    assert stubs["probed"] == (SRC, 5_000_000)


@pytest.mark.parametrize("size", [0, 10**15])
def test_no_head_start_for_a_size_the_checks_refuse(stubs: dict[str, Any], size: int) -> None:
    trigger.handle(_obj(size), "event-1")
    assert FakeEncode.started == [] and stubs["streamed"] == [None]
    assert "probed" not in stubs


def test_a_redrive_starts_nothing_before_its_claim(
    stubs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Snap:
        exists = True

        def to_dict(self) -> dict[str, Any]:
            return {"source": {"path": PATH, "generation": "7", "size": 5_000_000}}

    class Ref:
        id = "clip"

        def get(self) -> Snap:
            return Snap()

    stubs["claim"] = FakeRun(resumed=True)
    trigger.handle_redrive(Ref(), "redrive-1")  # type: ignore[arg-type]
    assert FakeEncode.started == [] and stubs["streamed"] == [None]
    assert "probed" not in stubs  # probed after its claim, by the stream itself
