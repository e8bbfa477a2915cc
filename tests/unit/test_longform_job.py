"""The long-form job document (longform/job.py): requests and the stored job follow the
same rules, and a stored value the backend does not accept is refused, not replaced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.errors import InvalidInput
from core.operations import BadRequest, parse_request
from longform.job import LongFormRequest, stored_job


def job(**overrides: Any) -> dict[str, Any]:
    doc = {
        "userId": "u1",
        "prompts": ["A kite", "It climbs"],
        "segmentSeconds": 2.0,
        "aspectRatio": "9:16",
        "resolution": "1080p",
        "status": "generating",  # lifecycle fields are ignored here
        "segments": [],
    }
    return {**doc, **overrides}


def test_a_stored_job_asks_the_provider_for_what_was_requested() -> None:
    spec = stored_job(job())
    request = spec.segment_request(1, Path("/tmp/seed.png"))
    assert (request.prompt, request.duration_s) == ("It climbs", 2.0)
    assert (request.aspect_ratio, request.resolution) == ("9:16", "1080p")
    assert request.image == Path("/tmp/seed.png")


@pytest.mark.parametrize(
    ("field", "value"),
    [("aspectRatio", "4:3"), ("resolution", "4k"), ("segmentSeconds", 60), ("prompts", [])],
)
def test_a_stored_value_the_backend_does_not_accept_is_refused(field: str, value: Any) -> None:
    with pytest.raises(InvalidInput) as refused:
        stored_job(job(**{field: value}))
    assert refused.value.code == "invalid-argument" and field in refused.value.message


def test_the_request_and_the_stored_job_share_their_rules() -> None:
    with pytest.raises(BadRequest, match="aspectRatio"):
        parse_request(LongFormRequest, {"prompts": ["x"], "aspectRatio": "4:3"})
    with pytest.raises(BadRequest, match="colour"):
        parse_request(LongFormRequest, {"prompts": ["x"], "colour": "red"})
    accepted = parse_request(LongFormRequest, {"prompts": ["  x  "]})
    assert (accepted.prompts, accepted.aspectRatio, accepted.resolution) == (["x"], "16:9", "720p")
