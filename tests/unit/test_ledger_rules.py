"""Unit-level checks of the token economy's rules: pricing, validation, ids, cursors, error
mapping, HTTP routing, retry policy; and of every security rule's intent as documented in
docs/security-rules.md (the rules files are parsed and compared with the docs' tables).
No stack needed."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from firebase_functions import https_fn
from google.api_core import exceptions as gapi_exceptions

from core import ledger
from core.errors import ContentPolicyError, InvalidInput, TransientProviderError
from handlers import creation_worker, creations, http_api
from handlers.creations import (
    BadRequest,
    CreateRequest,
    Forbidden,
    InsufficientTokens,
    ListRequest,
    NotFound,
    Unauthenticated,
    WrongState,
)
from local_stack.tasks import QueueConfig

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------
# pricing and requests
# --------------------------------------------------------------------------------------
def test_cost_table_is_ten_tokens_per_second_by_default():
    assert {d: creations.cost_of(d) for d in creations.DURATIONS} == {4: 40, 6: 60, 8: 80}
    assert creations.cost_of(8, tokens_per_second=3) == 24
    estimates = [creations.estimated_seconds(d) for d in creations.DURATIONS]
    assert estimates == sorted(estimates) and estimates[0] > 0


def test_create_request_defaults_and_trimming():
    req = creations.parse(CreateRequest, {"prompt": "  a fox in snow  "})
    assert (req.prompt, req.aspectRatio, req.duration, req.idempotencyKey) == (
        "a fox in snow",
        "9:16",
        8,
        None,
    )
    req = creations.parse(
        CreateRequest,
        {"prompt": "x", "aspectRatio": "16:9", "duration": 6, "idempotencyKey": "k-1"},
    )
    assert (req.aspectRatio, req.duration, req.idempotencyKey) == ("16:9", 6, "k-1")


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": " \n\t "}, "prompt"),
        ({"prompt": "x" * (creations.MAX_PROMPT_CHARS + 1)}, "prompt"),
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
        creations.parse(CreateRequest, payload)
    assert exc.value.message.startswith(f"{field}:")
    assert exc.value.details == {"fields": [field]}


def test_request_data_must_be_an_object():
    with pytest.raises(BadRequest, match="object"):
        creations.parse(CreateRequest, ["prompt"])
    assert creations.parse(ListRequest, None).limit == creations.PAGE_DEFAULT
    with pytest.raises(BadRequest, match="limit"):
        creations.parse(ListRequest, {"limit": creations.PAGE_MAX + 1})
    with pytest.raises(BadRequest, match="status"):
        creations.parse(ListRequest, {"status": "published"})


def test_creation_ids_are_deterministic_per_user_and_key_and_task_id_safe():
    a = creations.creation_id_for("alice", "key-1")
    assert a == creations.creation_id_for("alice", "key-1")
    assert a != creations.creation_id_for("bob", "key-1")
    assert a != creations.creation_id_for("alice", "key-2")
    assert creations.creation_id_for("alice", None) != creations.creation_id_for("alice", None)
    for cid in (a, creations.creation_id_for("alice", None)):
        assert re.fullmatch(r"[0-9a-f]{32}", cid), "a document id and a Cloud Tasks task id"


# --------------------------------------------------------------------------------------
# ledger arithmetic
# --------------------------------------------------------------------------------------
def test_balances_never_go_negative_and_amounts_are_nonzero_integers():
    assert ledger.next_balance(100, -40) == 60
    assert ledger.next_balance(0, 40) == 40
    assert ledger.next_balance(40, -40) == 0
    for bad in (0, 1.5, True):
        with pytest.raises(ledger.LedgerError):
            ledger.next_balance(100, bad)  # type: ignore[arg-type]
    with pytest.raises(ledger.LedgerError, match="cannot cover"):
        ledger.next_balance(39, -40)
    assert ledger.balance_of(None) == 0 and ledger.balance_of({"balance": 7}) == 7
    assert ledger.balance_of({"balance": "7"}) == 0


def test_entry_ids_are_deterministic_so_retries_cannot_double_count():
    assert ledger.debit_entry_id("c1") == "debit-c1"
    assert ledger.refund_entry_id("c1") == "refund-c1"


@pytest.mark.parametrize("amount", [0, -5, ledger.MAX_GRANT + 1, 2.5, True])
def test_grants_must_be_positive_bounded_integers(amount):
    with pytest.raises(ledger.LedgerError):
        ledger.grant("alice", amount)  # refused before any database access


# --------------------------------------------------------------------------------------
# cursors and views
# --------------------------------------------------------------------------------------
def test_cursor_round_trip_and_garbage():
    t = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    cursor = creations.encode_cursor(t, ["a", "b"])
    assert creations.decode_cursor(cursor) == (t, ["a", "b"])
    for bad in ("garbage", "", creations.encode_cursor(t, ["x"])[:-3] + "!!!"):
        with pytest.raises(BadRequest, match="cursor"):
            creations.decode_cursor(bad)
    naive = json.dumps({"t": "2030-01-01T00:00:00", "s": []}).encode()
    import base64

    with pytest.raises(BadRequest):
        creations.decode_cursor(base64.urlsafe_b64encode(naive).decode())


def test_public_view_hides_internal_fields_and_formats_times():
    t = datetime(2030, 1, 1, tzinfo=UTC)
    view = creations.public_view(
        "c1",
        {"userId": "u", "status": "draft", "createdAt": t, "claimId": "task-1", "leaseExpiresAt": t,
         "debitEntryId": "debit-c1", "error": {"code": "x", "message": "y"}},
    )  # fmt: skip
    assert view == {"id": "c1", "userId": "u", "status": "draft", "createdAt": "2030-01-01T00:00:00Z",
                    "error": {"code": "x", "message": "y"}}  # fmt: skip


# --------------------------------------------------------------------------------------
# errors per transport
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "error, callable_status, callable_http, api_http",
    [
        (BadRequest("x"), "INVALID_ARGUMENT", 400, 400),
        (Unauthenticated("x"), "UNAUTHENTICATED", 401, 401),
        (InsufficientTokens("x", {"required": 40, "balance": 0}), "RESOURCE_EXHAUSTED", 429, 402),
        (Forbidden("x"), "PERMISSION_DENIED", 403, 403),
        (NotFound("x"), "NOT_FOUND", 404, 404),
        (WrongState("x"), "FAILED_PRECONDITION", 400, 400),
    ],
)
def test_each_error_maps_to_a_callable_code_and_an_http_status(
    error, callable_status, callable_http, api_http
):
    https = error.to_https_error()
    assert https.code.name == callable_status
    assert https._http_error_code.status == callable_http  # what the callable protocol answers
    assert error.http_status == api_http
    body = error.to_json()["error"]
    assert body["status"] == callable_status and body["message"] == "x"
    assert body.get("details") == error.details


# --------------------------------------------------------------------------------------
# HTTP routing
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "method, path, expected",
    [
        ("POST", "/api/generate/video", ("create", {})),
        ("GET", "/api/generate/drafts", ("list", {})),
        ("GET", "/api/generate/video/abc123", ("get", {"id": "abc123"})),
        ("DELETE", "/api/generate/video/abc123", ("delete", {"id": "abc123"})),
        ("POST", "/api/generate/video/abc123/publish", ("publish", {"id": "abc123"})),
        ("POST", "/demo/us-central1/generateapi/api/generate/video", ("create", {})),
        ("GET", "/demo/us-central1/generateapi/drafts", ("list", {})),
        ("GET", "/drafts", ("list", {})),
    ],
)
def test_routes(method, path, expected):
    assert http_api.resolve(method, path) == expected


def test_unknown_routes_and_methods():
    with pytest.raises(http_api.MethodNotAllowed):
        http_api.resolve("PUT", "/api/generate/video")
    with pytest.raises(http_api.RouteNotFound):
        http_api.resolve("GET", "/api/generate/nothing")
    with pytest.raises(http_api.RouteNotFound):
        http_api.resolve("GET", "/api/generate/video/../../etc")


# --------------------------------------------------------------------------------------
# the worker's retry policy
# --------------------------------------------------------------------------------------
def test_retry_policy_waits_about_60_120_240_seconds_for_four_attempts():
    r = creation_worker.RETRY
    cfg = QueueConfig(
        max_attempts=int(r.max_attempts),  # type: ignore[arg-type]
        min_backoff_s=float(r.min_backoff_seconds),  # type: ignore[arg-type]
        max_backoff_s=float(r.max_backoff_seconds),  # type: ignore[arg-type]
        max_doublings=int(r.max_doublings),  # type: ignore[arg-type]
    )
    assert cfg.max_attempts == creation_worker.MAX_ATTEMPTS == 4
    assert [cfg.backoff(i) for i in range(3)] == [60, 120, 240]


def test_which_failures_are_retried():
    assert creation_worker.as_job_error(TransientProviderError("429")).retryable
    assert not creation_worker.as_job_error(ContentPolicyError("no")).retryable
    assert not creation_worker.as_job_error(InvalidInput("bad")).retryable
    assert creation_worker.as_job_error(gapi_exceptions.ServiceUnavailable("down")).retryable
    bug = creation_worker.as_job_error(ValueError("bug"))
    assert bug.code == "internal" and not bug.retryable


def test_callable_wrapper_refuses_signed_out_callers():
    req = https_fn.CallableRequest(raw_request=None, data={"prompt": "x"}, auth=None)  # type: ignore[arg-type]
    with pytest.raises(https_fn.HttpsError) as exc:
        creations.call(creations.create_video_generation, req)
    assert exc.value.code == https_fn.FunctionsErrorCode.UNAUTHENTICATED


# --------------------------------------------------------------------------------------
# security rules: every rule against its documented intent
# --------------------------------------------------------------------------------------
_TOKEN = re.compile(r"match\s+(\S+)\s*\{|allow\s+([a-z,\s]+?)\s*:\s*if\s+([^;]+);|\{|\}")


def parse_rules(text: str) -> dict[str, dict[str, str]]:
    """{match path (joined, relative to the root match): {operation: condition}}."""
    text = re.sub(r"//[^\n]*", "", text)
    stack: list[str | None] = []
    rules: dict[str, dict[str, str]] = {}
    for m in _TOKEN.finditer(text):
        if m.group(1):
            stack.append(m.group(1))
        elif m.group(2):
            path = "/".join(p.strip("/") for p in stack if p)
            for op in (o.strip() for o in m.group(2).split(",")):
                ops = ["create", "update", "delete"] if op == "write" else [op]
                for o in ops:
                    rules.setdefault(path, {})[o] = " ".join(m.group(3).split())
        elif m.group(0) == "{":
            stack.append(None)
        else:
            stack.pop()
    assert not stack, "unbalanced braces"
    return rules


def functions_of(text: str) -> dict[str, str]:
    return {
        m.group(1): " ".join(m.group(2).split())
        for m in re.finditer(r"function\s+(\w+)\([^)]*\)\s*\{(.*?)\n\s*\}", text, re.S)
    }


def doc_table(section: str) -> dict[str, dict[str, str]]:
    doc = (ROOT / "docs" / "security-rules.md").read_text()
    body = doc.split(section, 1)[1].split("\n## ", 1)[0]
    rows: dict[str, dict[str, str]] = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("`"):
            path = cells[0].strip("`")
            rows[path] = dict(zip(("read", "create", "update", "delete"), cells[1:5], strict=True))
    return rows


OWNER_MARKERS = ("isUser(", "ownsExisting()", "ownerOrMissing()", "storyboardOwner()", "newJob(")


def check_cell(path: str, op: str, cell: str, cond: str | None) -> None:
    who = cell.split(" (")[0]
    assert cond is not None, f"{path}: no rule for {op} (docs say {cell!r})"
    if who == "nobody":
        assert cond == "false", f"{path} {op}: docs say nobody, rule is {cond!r}"
    elif who == "anyone":
        assert cond == "true", f"{path} {op}: docs say anyone, rule is {cond!r}"
    elif who == "owner":
        assert any(m in cond for m in OWNER_MARKERS), f"{path} {op}: not an owner check: {cond!r}"
    elif who == "signed-in":
        assert "signedIn()" in cond or "isUser(" in cond, f"{path} {op}: {cond!r}"
    else:
        raise AssertionError(f"{path} {op}: unknown audience {who!r} in the docs")


@pytest.mark.parametrize(
    "rules_file, root, section",
    [
        (
            "firestore.rules",
            "databases/{database}/documents",
            "## Firestore: every rule and its intent",
        ),
        ("storage.rules", "b/{bucket}/o", "## Storage: every rule and its intent"),
    ],
)
def test_every_rule_matches_its_documented_intent(rules_file, root, section):
    rules = parse_rules((ROOT / rules_file).read_text())
    table = doc_table(section)
    assert table, "the docs table is empty"
    documented = {f"{root}/{p}".replace("/**", "/{path=**}") for p in table}
    declared = {p for p in rules if p != root}
    assert documented == declared, f"rules vs docs differ: {documented ^ declared}"
    for path, cells in table.items():
        declared_ops = rules[f"{root}/{path}".replace("/**", "/{path=**}")]
        for op, cell in cells.items():
            check_cell(path, op, cell, declared_ops.get(op))
        assert set(declared_ops) <= {"read", "create", "update", "delete"}


def test_money_and_status_are_never_client_writable():
    text = (ROOT / "firestore.rules").read_text()
    rules = parse_rules(text)
    base = "databases/{database}/documents"
    ledger_rules = rules[f"{base}/users/{{uid}}/ledger/{{entryId}}"]
    assert all(ledger_rules[o] == "false" for o in ("create", "update", "delete"))
    user = rules[f"{base}/users/{{uid}}"]
    for op in ("create", "update"):
        assert "hasOnly(['displayName', 'photoURL'])" in user[op] and "balance" not in user[op]
    creation = rules[f"{base}/creations/{{creationId}}"]
    assert creation["create"] == creation["update"] == "false"
    assert "resource.data.status in ['draft', 'failed']" in creation["delete"]
    fns = functions_of(text)
    assert "data.status == 'pending'" in fns["newJob"]
    assert "data.user_id == request.auth.uid" in fns["newJob"]
    assert "hasOnly(" in fns["newJob"] and "request.time" in fns["newJob"]
    for coll in (
        "image_generation_jobs",
        "video_generation_jobs",
        "multi_video_jobs",
        "composition_jobs",
    ):
        job = rules[f"{base}/{coll}/{{jobId}}"]
        assert job["create"].startswith("newJob(jobId,"), coll
        assert job["update"] == job["delete"] == "false", coll
        allowed = re.search(r"newJob\(jobId, \[([^\]]*)\]", job["create"])
        assert allowed and not {"progress", "error", "claimId", "provider"} & set(
            re.findall(r"'(\w+)'", allowed.group(1))
        ), coll
    always_true = {p for p, ops in rules.items() for o, c in ops.items() if c == "true"}
    assert always_true == {f"{base}/feed/{{creationId}}"}, "only the feed is public"


def test_uploads_are_limited_to_the_uploaders_path_type_and_size():
    text = (ROOT / "storage.rules").read_text()
    rules = parse_rules(text)
    uploads = rules["b/{bucket}/o/uploads/{uid}/{path=**}"]
    assert uploads["create"] == "isUser(uid) && allowedUpload()"
    body = functions_of(text)["allowedUpload"]
    assert "request.resource.size" in body and "request.resource.contentType" in body
    assert "size <= mib(1024)" in body and "size > 0" in body
    public = {p for p, ops in rules.items() if ops.get("read") == "true"}
    assert public == {"b/{bucket}/o/streams/{path=**}"}


# --------------------------------------------------------------------------------------
# indexes
# --------------------------------------------------------------------------------------
def test_indexes_cover_the_drafts_query_and_every_swept_collection():
    import main  # noqa: F401  (every module registers its collections with the sweep)

    from handlers import sweep

    data = json.loads((ROOT / "firestore.indexes.json").read_text())
    have = {
        (i["collectionGroup"], tuple((f["fieldPath"], f["order"]) for f in i["fields"]))
        for i in data["indexes"]
    }
    assert (
        "creations",
        (("userId", "ASCENDING"), ("status", "ASCENDING"), ("createdAt", "DESCENDING")),
    ) in have
    assert sweep.JOB_COLLECTIONS["creations"].created_field == "queuedAt"
    for name, coll in sweep.JOB_COLLECTIONS.items():
        assert (name, (("status", "ASCENDING"), ("leaseExpiresAt", "ASCENDING"))) in have, name
        if coll.pending:
            assert (name, (("status", "ASCENDING"), (coll.created_field, "ASCENDING"))) in have, (
                name
            )
    assert {"videos", "videoJobs", "creations", "image_generation_jobs"} <= set(
        sweep.JOB_COLLECTIONS
    )
