"""Creations and tokens end to end on the local stack, driven like a frontend does:
callables over HTTP with local ID tokens, the HTTP API, Firestore listeners.

Balances are granted through core.ledger.grant (the backend path). Prompts use the local
provider's markers ([fail:content-policy], [fail:transient], [fail:slow=N]) to make
failures deterministic; those creations never render a video, which keeps the file fast.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from firebase_admin import exceptions as admin_exceptions
from firebase_admin import functions as admin_functions
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from PIL import Image

from core import ledger
from devtools import ledger_audit
from local_stack.stack import LocalStack
from media.probe import probe
from tests.conftest import admin_app
from tests.support.stack import task_attempts
from tests.watch import DocWatcher, wait_until

pytestmark = pytest.mark.stack

FINAL = ("draft", "failed", "published")


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def new_user(tokens: int = 0) -> str:
    uid = f"u-{uuid.uuid4().hex[:12]}"
    if tokens:
        ledger.grant(uid, tokens, reason="test")
    return uid


def call(stack: LocalStack, name: str, data: Any, uid: str | None) -> requests.Response:
    headers = {}
    if uid is not None:
        headers["Authorization"] = f"Bearer {stack.sign_in(uid)}"
    return requests.post(
        stack.function_url(name), json={"data": data}, headers=headers, timeout=120
    )


def ok(r: requests.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    return r.json()["result"]


def error_of(r: requests.Response) -> dict[str, Any]:
    return r.json()["error"]


def create(stack: LocalStack, uid: str, **data: Any) -> dict[str, Any]:
    return ok(call(stack, "createvideogeneration", {"duration": 4, **data}, uid))


def wait_final(db: firestore.Client, cid: str, timeout_s: float = 90) -> dict[str, Any]:
    with DocWatcher(db.collection("creations").document(cid)) as watch:
        return watch.wait_for(lambda d: d.get("status") in FINAL, timeout_s)


def user_creations(db: firestore.Client, uid: str) -> list[firestore.DocumentSnapshot]:
    return list(db.collection("creations").where(filter=FieldFilter("userId", "==", uid)).stream())


def entries_by_type(uid: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {"grant": [], "debit": [], "refund": []}
    for e in ledger_audit.entries(uid):
        out[e["type"]].append(e)
    return out


def assert_balanced(uid: str, expected: int) -> None:
    balance, total = ledger_audit.audit(uid)
    assert (balance, total) == (expected, expected), "the ledger must add up to the balance"


# --------------------------------------------------------------------------------------
# the happy path
# --------------------------------------------------------------------------------------
def test_create_generates_a_draft_mp4_then_publish_puts_it_in_the_feed(stack, db, tmp_path: Path):
    uid = new_user(100)
    result = create(stack, uid, prompt="A paper boat sailing down a rainy street")
    cid = result["creationId"]
    assert result["cost"] == 40 and result["status"] == "pending" and result["balance"] == 60
    assert isinstance(result["estimatedTime"], int) and result["estimatedTime"] > 0

    with DocWatcher(db.collection("creations").document(cid)) as watch:
        final = watch.wait_for(lambda d: d.get("status") in FINAL, 90)
        statuses = watch.statuses()
        progress = watch.values("progress")
    assert final["status"] == "draft", final.get("error")
    assert statuses in (["pending", "processing", "draft"], ["processing", "draft"])
    assert progress == sorted(progress) and progress[-1] == 100
    assert final["attempts"] == 1 and final["refunded"] is False and final["error"] is None
    assert final["modelUsed"] == "local-kenburns" and final["provider"] == "local"
    assert final["generationTime"] > 0
    assert final["mediaPath"] == f"users/{uid}/creations/{cid}.mp4"

    # the media is a real MP4 of the requested shape and length
    mp4 = tmp_path / "creation.mp4"
    mp4.write_bytes(requests.get(final["mediaUrl"], timeout=30).content)
    info = probe(mp4)
    assert info.video is not None and info.video.codec == "h264"
    assert (info.video.width, info.video.height) == (720, 1280), "default aspect ratio is 9:16"
    assert abs(info.duration_s - 4.0) < 0.1
    assert info.audio is not None and info.audio.codec == "aac"
    thumb = tmp_path / "thumb.jpg"
    thumb.write_bytes(requests.get(final["thumbnailUrl"], timeout=30).content)
    with Image.open(thumb) as img:
        assert img.format == "JPEG" and img.width == 360 and img.height == 640

    # the money: one grant, one debit naming the creation, and the sum is the balance
    by_type = entries_by_type(uid)
    assert [e["amount"] for e in by_type["debit"]] == [-40] and not by_type["refund"]
    assert by_type["debit"][0]["creationId"] == cid and by_type["debit"][0]["balanceAfter"] == 60
    assert_balanced(uid, 60)

    drafts = ok(call(stack, "listdrafts", {}, uid))
    assert [c["id"] for c in drafts["creations"]] == [cid] and drafts["nextCursor"] is None
    got = ok(call(stack, "getcreation", {"creationId": cid}, uid))
    assert (
        got["status"] == "draft" and got["mediaUrl"] == final["mediaUrl"] and "claimId" not in got
    )

    published = ok(call(stack, "publishcreation", {"creationId": cid}, uid))
    assert published["status"] == "published" and published["feedId"] == cid
    feed = db.collection("feed").document(cid).get().to_dict()
    assert feed["mediaUrl"] == final["mediaUrl"] and feed["userId"] == uid
    assert feed["prompt"] == "A paper boat sailing down a rainy street"
    assert ok(call(stack, "listdrafts", {}, uid))["creations"] == [], "published is not a draft"
    again = ok(call(stack, "publishcreation", {"creationId": cid}, uid))
    assert again["status"] == "published", "publishing twice is harmless"
    r = call(stack, "deletecreation", {"creationId": cid}, uid)
    assert r.status_code == 400 and error_of(r)["status"] == "FAILED_PRECONDITION"
    assert db.collection("creations").document(cid).get().exists


# --------------------------------------------------------------------------------------
# refusals
# --------------------------------------------------------------------------------------
def test_insufficient_tokens_create_nothing_and_charge_nothing(stack, db):
    uid = new_user(30)
    r = call(stack, "createvideogeneration", {"prompt": "A long one", "duration": 8}, uid)
    assert r.status_code == 429, r.text
    err = error_of(r)
    assert err["status"] == "RESOURCE_EXHAUSTED"
    assert err["details"] == {"reason": "insufficient-tokens", "required": 80, "balance": 30}
    assert user_creations(db, uid) == []
    assert [e["type"] for e in ledger_audit.entries(uid)] == ["grant"]
    assert_balanced(uid, 30)

    nobody = new_user(0)  # no user document at all
    r = call(stack, "createvideogeneration", {"prompt": "Anything", "duration": 4}, nobody)
    assert error_of(r)["details"] == {"reason": "insufficient-tokens", "required": 40, "balance": 0}
    assert user_creations(db, nobody) == [] and ledger_audit.entries(nobody) == []


@pytest.mark.parametrize(
    "data, field",
    [
        ({"prompt": "   "}, "prompt"),
        ({}, "prompt"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({"prompt": "ok", "aspectRatio": "1:1"}, "aspectRatio"),
        ({"prompt": "ok", "duration": 5}, "duration"),
        ({"prompt": "ok", "idempotencyKey": "has spaces"}, "idempotencyKey"),
    ],
)
def test_invalid_requests_are_refused_with_the_reason(stack, db, data, field):
    uid = new_user(100)
    r = call(stack, "createvideogeneration", {"duration": 4, **data}, uid)
    assert r.status_code == 400, r.text
    err = error_of(r)
    assert err["status"] == "INVALID_ARGUMENT" and field in err["message"]
    assert err["details"]["fields"] == [field]
    assert user_creations(db, uid) == []
    assert_balanced(uid, 100)


def test_signed_out_callers_are_refused(stack):
    for name, data in [
        ("createvideogeneration", {"prompt": "x"}),
        ("listdrafts", {}),
        ("getcreation", {"creationId": "abc"}),
        ("deletecreation", {"creationId": "abc"}),
        ("publishcreation", {"creationId": "abc"}),
    ]:
        r = call(stack, name, data, None)
        assert r.status_code == 401 and error_of(r)["status"] == "UNAUTHENTICATED", name
    r = requests.post(
        stack.function_url("createvideogeneration"),
        json={"data": {"prompt": "x"}},
        headers={"Authorization": "Bearer not-a-token"},
        timeout=30,
    )
    assert r.status_code == 401


# --------------------------------------------------------------------------------------
# failures and refunds
# --------------------------------------------------------------------------------------
def test_content_policy_failure_is_final_at_once_and_refunded_once(stack, db):
    uid = new_user(40)
    cid = create(stack, uid, prompt="[fail:content-policy] something the filter refuses")[
        "creationId"
    ]
    final = wait_final(db, cid, 30)
    assert final["status"] == "failed" and final["error"]["code"] == "content-policy"
    assert final["refunded"] is True and final["attempts"] == 1
    assert [h["status"] for h in task_attempts(stack, cid)] == [200], (
        "no retry for a policy refusal"
    )
    by_type = entries_by_type(uid)
    assert [(e["id"], e["amount"]) for e in by_type["refund"]] == [(f"refund-{cid}", 40)]
    assert_balanced(uid, 40)

    # a second refund attempt (e.g. a late sweep or a replayed failure) changes nothing
    ref = db.collection("creations").document(cid)

    @firestore.transactional
    def again(tx: firestore.Transaction) -> dict[str, Any]:
        data = ref.get(transaction=tx).to_dict() or {}
        return ledger.refund(tx, ref, {**data, "refunded": False}, reason="test")

    assert again(db.transaction()) == {"refunded": True, "refundEntryId": f"refund-{cid}"}
    assert stack.run_scheduled("sweep_stuck_jobs") == 200
    assert ref.get().to_dict()["status"] == "failed"
    assert len(entries_by_type(uid)["refund"]) == 1
    assert_balanced(uid, 40)


def test_transient_failure_is_retried_with_backoff_then_refunded_once(stack, db):
    uid = new_user(40)
    cid = create(stack, uid, prompt="[fail:transient] the provider keeps timing out")["creationId"]
    with DocWatcher(db.collection("creations").document(cid)) as watch:
        final = watch.wait_for(lambda d: d.get("status") in FINAL, 60)
        statuses = watch.statuses()
    assert final["status"] == "failed" and final["error"]["code"] == "provider-unavailable"
    assert "4 attempts" in final["error"]["message"] and final["attempts"] == 4
    # back to pending between attempts (each wait is >= 1.2 s here, so a listener sees it)
    assert statuses[-1] == "failed" and statuses.count("pending") >= 3 and "processing" in statuses
    assert final["refunded"] is True
    attempts = task_attempts(stack, cid)
    assert [h["attempt"] for h in attempts] == [1, 2, 3, 4]
    assert [h["status"] for h in attempts] == [503, 503, 503, 200], "retried by Cloud Tasks"
    assert len(entries_by_type(uid)["refund"]) == 1
    assert_balanced(uid, 40)


def test_worker_killed_mid_generation_is_re_driven_by_the_sweep_and_charged_once(
    stack, db, tmp_path: Path
):
    stack.wait_idle(120)  # let earlier tests' tasks finish before the host is killed
    uid = new_user(40)
    cid = create(stack, uid, prompt="[fail:slow=8] a generation whose worker dies")["creationId"]
    ref = db.collection("creations").document(cid)
    with DocWatcher(ref) as watch:
        watch.wait_for(lambda d: d.get("status") == "processing", 30)
    try:
        stack.kill_host()
    finally:
        stack.start_host()
    # Cloud Tasks retries the dropped attempt; the creation is still under its lease, so
    # the retry leaves it alone (the worker may only be dead, not the generation).
    task_attempts(stack, cid, timeout_s=60)  # the task's retries ended
    data = ref.get().to_dict()
    assert data["status"] == "processing" and data["attempts"] == 1
    expire_lease(db, ref)
    with DocWatcher(ref) as watch:
        assert stack.run_scheduled("sweep_stuck_jobs") == 200
        final = watch.wait_for(lambda d: d.get("status") in FINAL, 90)
    # re-driven, not failed: the user gets the video, charged once, nothing refunded
    assert final["status"] == "draft", final.get("error")
    assert final["attempts"] == 2 and final["redrives"] == 1
    assert final["lastAttemptEnded"] == "lease-expired" and final["claimId"] == "redrive-1"
    mp4 = tmp_path / "redriven.mp4"
    mp4.write_bytes(requests.get(final["mediaUrl"], timeout=30).content)
    assert abs(probe(mp4).duration_s - 4.0) < 0.1, "the re-driven run made the whole video"
    assert stack.run_scheduled("sweep_stuck_jobs") == 200
    assert ref.get().to_dict()["updatedAt"] == final["updatedAt"], "a later sweep leaves it"
    assert len(entries_by_type(uid)["debit"]) == 1 and not entries_by_type(uid)["refund"]
    assert_balanced(uid, 0)


def expire_lease(db: firestore.Client, ref: firestore.DocumentReference) -> None:
    """Back-date the lease, as if its worker had been gone for a minute."""

    @firestore.transactional
    def write(tx: firestore.Transaction) -> None:
        ref.get(transaction=tx)
        tx.update(ref, {"leaseExpiresAt": datetime.now(UTC) - timedelta(minutes=1)})

    write(db.transaction())


def test_a_creation_never_picked_up_is_failed_and_refunded_by_the_sweep(stack, db):
    """As if the create had committed and crashed before enqueueing its task."""
    uid = new_user(40)
    cid = uuid.uuid4().hex
    backend = ledger.db()
    old = datetime.now(UTC) - timedelta(hours=1)

    @firestore.transactional
    def charge(tx: firestore.Transaction) -> None:
        balance = ledger.read_balance(tx, uid)
        ledger.write_change(
            tx,
            uid,
            balance=balance,
            amount=-40,
            type="debit",
            entry_id=f"debit-{cid}",
            creation_id=cid,
        )
        tx.create(
            backend.collection("creations").document(cid),
            {"userId": uid, "prompt": "lost", "aspectRatio": "9:16", "duration": 4, "cost": 40,
             "status": "pending", "refunded": False, "createdAt": old, "queuedAt": old},
        )  # fmt: skip

    charge(backend.transaction())
    assert_balanced(uid, 0)
    assert stack.run_scheduled("sweep_stuck_jobs") == 200
    data = db.collection("creations").document(cid).get().to_dict()
    assert data["status"] == "failed" and data["error"]["code"] == "not-started"
    assert data["refunded"] is True
    assert_balanced(uid, 40)


# --------------------------------------------------------------------------------------
# duplicates, idempotency, concurrency
# --------------------------------------------------------------------------------------
def test_duplicate_task_delivery_generates_once_and_delete_removes_the_media(stack, db, bucket):
    uid = new_user(40)
    cid = create(stack, uid, prompt="[fail:slow=2] A lighthouse, delivered twice")["creationId"]
    ref = db.collection("creations").document(cid)
    worker = stack.function_url("creationworker")

    def deliver(retry_count: int) -> requests.Response:
        headers = {"X-CloudTasks-TaskRetryCount": str(retry_count), "X-CloudTasks-TaskName": cid}
        return requests.post(
            worker, json={"data": {"creationId": cid}}, headers=headers, timeout=60
        )

    with DocWatcher(ref) as watch:
        watch.wait_for(lambda d: d.get("status") == "processing", 30)
        assert deliver(0).status_code == 200, "same attempt delivered again"
        assert deliver(1).status_code == 200, "a retry while the first is still working"
        final = watch.wait_for(lambda d: d.get("status") in FINAL, 60)
    assert final["status"] == "draft" and final["attempts"] == 1
    blob = bucket.get_blob(f"users/{uid}/creations/{cid}.mp4")
    generation = blob.generation
    assert deliver(0).status_code == 200, "a late duplicate after the draft"
    after = ref.get().to_dict()
    assert after["attempts"] == 1 and after["updatedAt"] == final["updatedAt"]
    assert bucket.get_blob(f"users/{uid}/creations/{cid}.mp4").generation == generation
    assert sorted(b.name for b in bucket.list_blobs(prefix=f"users/{uid}/creations/")) == [
        f"users/{uid}/creations/{cid}.jpg",
        f"users/{uid}/creations/{cid}.mp4",
    ]
    assert len(entries_by_type(uid)["debit"]) == 1

    queue = admin_functions.task_queue("creationworker", app=admin_app(stack))
    with pytest.raises(admin_exceptions.AlreadyExistsError):
        queue.enqueue({"data": {"creationId": cid}}, admin_functions.TaskOptions(task_id=cid))

    deleted = ok(call(stack, "deletecreation", {"creationId": cid}, uid))
    assert deleted["creationId"] == cid and deleted["deleted"] is True
    assert not ref.get().exists
    assert list(bucket.list_blobs(prefix=f"users/{uid}/creations/{cid}")) == []
    r = call(stack, "deletecreation", {"creationId": cid}, uid)
    assert r.status_code == 404 and error_of(r)["status"] == "NOT_FOUND"
    assert_balanced(uid, 0)


def test_deleting_the_document_directly_also_removes_the_media(stack, db, bucket):
    """Security rules let an owner delete a draft/failed creation: a trigger cleans up."""
    uid, cid = new_user(0), uuid.uuid4().hex
    for ext in ("mp4", "jpg"):
        bucket.blob(f"users/{uid}/creations/{cid}.{ext}").upload_from_string(
            b"x", content_type="video/mp4"
        )
    other = bucket.blob(f"users/{uid}/creations/{cid}x.mp4")  # another creation's prefix
    other.upload_from_string(b"x", content_type="video/mp4")
    ref = db.collection("creations").document(cid)
    ref.set({"userId": uid, "status": "failed", "createdAt": datetime.now(UTC)})
    ref.delete()
    wait_until(
        lambda: not list(bucket.list_blobs(prefix=f"users/{uid}/creations/{cid}.")),
        timeout_s=20,
        what="media removed",
    )
    assert other.exists()


def test_idempotent_create_charges_once(stack, db):
    uid = new_user(100)
    key = f"key-{uuid.uuid4().hex}"
    data = {"prompt": "[fail:content-policy] idempotent", "duration": 4, "idempotencyKey": key}
    with ThreadPoolExecutor(6) as pool:
        results = [
            ok(r)
            for r in pool.map(lambda _: call(stack, "createvideogeneration", data, uid), range(6))
        ]
    ids = {r["creationId"] for r in results}
    assert len(ids) == 1 and sum(not r["replayed"] for r in results) == 1
    cid = ids.pop()
    debits = entries_by_type(uid)["debit"]
    assert [(e["creationId"], e["balanceAfter"]) for e in debits] == [(cid, 60)]
    assert len(user_creations(db, uid)) == 1

    wait_final(db, cid, 30)
    later = create(stack, uid, **data)
    assert later["creationId"] == cid and later["replayed"] and later["status"] == "failed"
    assert len(entries_by_type(uid)["debit"]) == 1 and len(entries_by_type(uid)["refund"]) == 1
    assert_balanced(uid, 100)

    r = call(stack, "createvideogeneration", {**data, "prompt": "another prompt"}, uid)
    assert r.status_code == 400 and "idempotencyKey" in error_of(r)["message"]


def test_fifty_simultaneous_creates_against_a_balance_for_twenty(stack, db):
    """No lost updates: exactly 20 creations, balance 0, ledger == balance; then 20 refunds."""
    uid = new_user(20 * 40)
    # the workers wait 30 s, then the provider refuses: all 20 are refunded afterwards (the
    # balance is audited before: on a loaded machine 50 creates took more than 8 s, and a
    # refund between the two reads of the audit made it look unbalanced)
    data = {"prompt": "[fail:slow=30] [fail:content-policy] a race", "duration": 4}
    with ThreadPoolExecutor(50) as pool:
        responses = list(
            pool.map(lambda _: call(stack, "createvideogeneration", data, uid), range(50))
        )
    accepted = [r.json()["result"] for r in responses if r.status_code == 200]
    refused = [error_of(r) for r in responses if r.status_code != 200]
    assert len(accepted) == 20 and len(refused) == 30, [r.status_code for r in responses]
    assert all(
        e["details"] == {"reason": "insufficient-tokens", "required": 40, "balance": 0}
        for e in refused
    )
    assert_balanced(uid, 0)
    debits = entries_by_type(uid)["debit"]
    assert sorted(e["balanceAfter"] for e in debits) == list(range(0, 800, 40))
    docs = user_creations(db, uid)
    assert sorted(d.id for d in docs) == sorted(a["creationId"] for a in accepted)

    def all_failed() -> bool:
        return all((d.to_dict() or {}).get("status") == "failed" for d in user_creations(db, uid))

    wait_until(all_failed, timeout_s=90, interval_s=0.5, what="all 20 refunded")
    assert all((d.to_dict() or {}).get("refunded") is True for d in user_creations(db, uid))
    assert len(entries_by_type(uid)["refund"]) == 20
    assert_balanced(uid, 800)


# --------------------------------------------------------------------------------------
# ownership, drafts
# --------------------------------------------------------------------------------------
def test_another_users_creation_is_invisible_and_untouchable(stack, db):
    owner, intruder = new_user(40), new_user(40)
    cid = create(stack, owner, prompt="[fail:content-policy] mine")["creationId"]
    wait_final(db, cid, 30)
    assert ok(call(stack, "listdrafts", {}, intruder))["creations"] == []
    for name in ("getcreation", "deletecreation", "publishcreation"):
        r = call(stack, name, {"creationId": cid}, intruder)
        assert r.status_code == 403 and error_of(r)["status"] == "PERMISSION_DENIED", name
        assert "prompt" not in r.text and "mine" not in r.text
    assert db.collection("creations").document(cid).get().to_dict()["status"] == "failed"
    r = call(stack, "getcreation", {"creationId": uuid.uuid4().hex}, intruder)
    assert r.status_code == 404 and error_of(r)["status"] == "NOT_FOUND"
    assert [c["id"] for c in ok(call(stack, "listdrafts", {}, owner))["creations"]] == [cid]
    assert_balanced(owner, 40)
    assert_balanced(intruder, 40)


def test_drafts_are_paged_newest_first_across_equal_timestamps(stack, db):
    uid = new_user(0)
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    # written by the backend; three share one timestamp, one is published (not a draft)
    layout = [
        (0, "draft"),
        (1, "failed"),
        (1, "draft"),
        (1, "pending"),
        (2, "processing"),
        (3, "published"),
    ]
    for i, (dt, status) in enumerate(layout):
        db.collection("creations").document(f"{uid}-{i}").set(
            {
                "userId": uid,
                "status": status,
                "prompt": f"p{i}",
                "createdAt": t0 + timedelta(seconds=dt),
            }
        )
    expected = [f"{uid}-4", *sorted(f"{uid}-{i}" for i in (1, 2, 3)), f"{uid}-0"]

    def pages(**extra: Any) -> list[list[str]]:
        out, cursor = [], None
        while True:
            page = ok(
                call(
                    stack,
                    "listdrafts",
                    {"limit": 1, **({"cursor": cursor} if cursor else {}), **extra},
                    uid,
                )
            )
            out.append([c["id"] for c in page["creations"]])
            cursor = page["nextCursor"]
            if cursor is None:
                return out

    got = pages()
    flat = [cid for page in got for cid in page]
    assert len(flat) == 5 and len(set(flat)) == 5 and all(len(p) == 1 for p in got)
    assert flat[0] == expected[0] and flat[-1] == expected[-1]
    assert sorted(flat[1:4]) == expected[1:4], "the three equal timestamps, none lost or repeated"
    whole = [c["id"] for c in ok(call(stack, "listdrafts", {"limit": 50}, uid))["creations"]]
    assert sorted(whole) == sorted(expected) and whole[0] == expected[0]
    assert [cid for p in pages(status="draft") for cid in p] == [f"{uid}-2", f"{uid}-0"]
    r = call(stack, "listdrafts", {"cursor": "garbage"}, uid)
    assert r.status_code == 400 and "cursor" in error_of(r)["message"]


# --------------------------------------------------------------------------------------
# the HTTP API
# --------------------------------------------------------------------------------------
def test_http_api_routes_and_status_codes(stack, db):
    base = stack.function_url("generateapi") + "/api/generate"
    owner, other = new_user(40), new_user(0)

    def auth(uid: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {stack.sign_in(uid)}"}

    r = requests.post(f"{base}/video", json={"prompt": "x"}, timeout=30)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    r = requests.post(
        f"{base}/video", json={"prompt": "x"}, headers={"Authorization": "Bearer nope"}, timeout=30
    )
    assert r.status_code == 401
    r = requests.post(f"{base}/video", json={"prompt": ""}, headers=auth(owner), timeout=30)
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
    r = requests.post(f"{base}/video", data="{not json", headers=auth(owner), timeout=30)
    assert r.status_code == 400
    r = requests.post(
        f"{base}/video", json={"prompt": "x", "duration": 4}, headers=auth(other), timeout=30
    )
    assert r.status_code == 402
    assert r.json()["error"]["details"] == {
        "reason": "insufficient-tokens",
        "required": 40,
        "balance": 0,
    }

    key = uuid.uuid4().hex
    body: dict[str, Any] = {"prompt": "[fail:content-policy] over http", "duration": 4}
    r = requests.post(
        f"{base}/video", json=body, headers={**auth(owner), "Idempotency-Key": key}, timeout=30
    )
    assert r.status_code == 202, r.text
    created = r.json()
    cid = created["creationId"]
    assert created["cost"] == 40 and created["status"] == "pending"
    assert r.headers["Location"] == f"/api/generate/video/{cid}"
    r = requests.post(
        f"{base}/video", json=body, headers={**auth(owner), "Idempotency-Key": key}, timeout=30
    )
    assert r.status_code == 202 and r.json()["creationId"] == cid and r.json()["replayed"]

    assert requests.get(f"{base}/video/{cid}", headers=auth(owner), timeout=30).json()["id"] == cid
    assert requests.get(f"{base}/video/{cid}", headers=auth(other), timeout=30).status_code == 403
    assert (
        requests.get(
            f"{base}/video/{uuid.uuid4().hex}", headers=auth(owner), timeout=30
        ).status_code
        == 404
    )
    drafts = requests.get(f"{base}/drafts", params={"limit": 5}, headers=auth(owner), timeout=30)
    assert drafts.status_code == 200 and [c["id"] for c in drafts.json()["creations"]] == [cid]
    assert (
        requests.get(
            f"{base}/drafts", params={"limit": "x"}, headers=auth(owner), timeout=30
        ).status_code
        == 400
    )

    wait_final(db, cid, 30)
    r = requests.post(f"{base}/video/{cid}/publish", headers=auth(owner), timeout=30)
    assert r.status_code == 400 and r.json()["error"]["status"] == "FAILED_PRECONDITION"
    assert (
        requests.delete(f"{base}/video/{cid}", headers=auth(other), timeout=30).status_code == 403
    )
    r = requests.delete(f"{base}/video/{cid}", headers=auth(owner), timeout=30)
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert requests.get(f"{base}/video/{cid}", headers=auth(owner), timeout=30).status_code == 404
    assert requests.put(f"{base}/video", headers=auth(owner), timeout=30).status_code == 405
    assert requests.get(f"{base}/nothing-here", headers=auth(owner), timeout=30).status_code == 404
    preflight = requests.options(
        f"{base}/video",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        timeout=30,
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] in ("*", "https://app.example")
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"].upper()
    assert_balanced(owner, 40)
