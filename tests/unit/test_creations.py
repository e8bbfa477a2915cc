"""The creation document and requests (creations/document.py, creations/create.py):
pricing, validation, ids, cursors and the view clients get. No stack needed."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime

import pytest

from core.operations import BadRequest, parse_request
from creations import document
from creations.create import CreateRequest
from creations.drafts import ListRequest


def test_cost_table_is_ten_tokens_per_second_by_default():
    assert {d: document.cost_of(d) for d in document.DURATIONS} == {4: 40, 6: 60, 8: 80}
    assert document.cost_of(8, tokens_per_second=3) == 24
    estimates = [document.estimated_seconds(d) for d in document.DURATIONS]
    assert estimates == sorted(estimates) and estimates[0] > 0


def test_create_request_defaults_and_trimming():
    req = parse_request(CreateRequest, {"prompt": "  a fox in snow  "})
    assert (req.prompt, req.aspectRatio, req.duration, req.idempotencyKey) == (
        "a fox in snow",
        "9:16",
        8,
        None,
    )
    req = parse_request(
        CreateRequest,
        {"prompt": "x", "aspectRatio": "16:9", "duration": 6, "idempotencyKey": "k-1"},
    )
    assert (req.aspectRatio, req.duration, req.idempotencyKey) == ("16:9", 6, "k-1")


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": " \n\t "}, "prompt"),
        ({"prompt": "x" * (document.MAX_PROMPT_CHARS + 1)}, "prompt"),
        ({"prompt": 42}, "prompt"),
        ({}, "prompt"),
        ({"prompt": "x", "aspectRatio": "1:1"}, "aspectRatio"),
        ({"prompt": "x", "duration": 5}, "duration"),
        ({"prompt": "x", "duration": "8"}, "duration"),
        ({"prompt": "x", "duration": True}, "duration"),
        ({"prompt": "x", "idempotencyKey": ""}, "idempotencyKey"),
        ({"prompt": "x", "idempotencyKey": "k" * 129}, "idempotencyKey"),
        ({"prompt": "x", "aspect_ratio": "16:9"}, "aspect_ratio"),
    ],
)
def test_invalid_create_requests_name_the_field(payload, field):
    with pytest.raises(BadRequest) as exc:
        parse_request(CreateRequest, payload)
    assert exc.value.message.startswith(f"{field}:")
    assert exc.value.details == {"fields": [field]}


def test_request_data_must_be_an_object():
    with pytest.raises(BadRequest, match="object"):
        parse_request(CreateRequest, ["prompt"])
    assert parse_request(ListRequest, None).limit == document.PAGE_DEFAULT
    with pytest.raises(BadRequest, match="limit"):
        parse_request(ListRequest, {"limit": document.PAGE_MAX + 1})
    with pytest.raises(BadRequest, match="status"):
        parse_request(ListRequest, {"status": "published"})


def test_creation_ids_are_deterministic_per_user_and_key_and_task_id_safe():
    a = document.creation_id_for("alice", "key-1")
    assert a == document.creation_id_for("alice", "key-1")
    assert a != document.creation_id_for("bob", "key-1")
    assert a != document.creation_id_for("alice", "key-2")
    assert document.creation_id_for("alice", None) != document.creation_id_for("alice", None)
    for cid in (a, document.creation_id_for("alice", None)):
        assert re.fullmatch(r"[0-9a-f]{32}", cid), "a document id and a Cloud Tasks task id"


def test_cursor_round_trip_and_garbage():
    t = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    cursor = document.encode_cursor(t, ["a", "b"])
    assert document.decode_cursor(cursor) == (t, ["a", "b"])
    for bad in ("garbage", "", document.encode_cursor(t, ["x"])[:-3] + "!!!"):
        with pytest.raises(BadRequest, match="cursor"):
            document.decode_cursor(bad)
    naive = json.dumps({"t": "2030-01-01T00:00:00", "s": []}).encode()
    with pytest.raises(BadRequest):
        document.decode_cursor(base64.urlsafe_b64encode(naive).decode())


def test_public_view_hides_internal_fields_and_formats_times():
    t = datetime(2030, 1, 1, tzinfo=UTC)
    view = document.public_view(
        "c1",
        {"userId": "u", "status": "draft", "createdAt": t, "claimId": "task-1", "leaseExpiresAt": t,
         "debitEntryId": "debit-c1", "error": {"code": "x", "message": "y"}},
    )  # fmt: skip
    assert view == {"id": "c1", "userId": "u", "status": "draft", "createdAt": "2030-01-01T00:00:00Z",
                    "error": {"code": "x", "message": "y"}}  # fmt: skip
