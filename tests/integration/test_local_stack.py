"""The local stack itself: every kind of delivery, checked with a small probe app.

These tests run the stack against tests/fixtures/stack_app/main.py (not the product), so
they pin down delivery semantics the product relies on: CloudEvents the SDK parses,
wildcards, duplicate delivery, Cloud Tasks ids / retries / rate limits, callable auth,
schedules, Storage finalize (also for uploads through the Firebase Storage web API),
transactions under contention, and a function host that dies being started again.

Every test runs on the official Firestore emulator and, as the smoke test of the
fallback, on the npm server (LOCAL_STACK_FIRESTORE=npm).
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from firebase_admin import exceptions as admin_exceptions
from firebase_admin import functions as admin_functions
from google.cloud import firestore, storage
from google.cloud.firestore_v1.base_query import FieldFilter

from local_stack.firestore import find_official_emulator
from local_stack.firestore_tx import TransactionCoordinator
from local_stack.stack import LocalStack, StackSettings
from tests.conftest import admin_app
from tests.support.stack import duplicate_events
from tests.watch import wait_until

pytestmark = pytest.mark.stack
APP = Path(__file__).resolve().parents[1] / "fixtures" / "stack_app"


@pytest.fixture(scope="module", params=["official", "npm"])
def probe_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    if request.param == "official" and find_official_emulator() is None:
        pytest.skip("the official Firestore emulator is not installed")
    settings = StackSettings(
        project_id=f"demo-stack-probe-{request.param}",  # firebase_admin apps are per project
        firestore=request.param,
        functions_dir=APP,
        state_dir=tmp_path_factory.mktemp("probe-stack"),
        run_schedules=False,
        persist=False,
        task_backoff_scale=0.25,
        firestore_tx_idle_ms=1500,
    )
    stack = LocalStack(settings).start()
    with stack.env():
        db = firestore.Client(project=settings.project_id)
        gcs = storage.Client(project=settings.project_id)
    stack.db = db  # type: ignore[attr-defined]
    stack.gcs = gcs  # type: ignore[attr-defined]
    yield stack
    stack.stop()


def results(stack: LocalStack, **where: object) -> list[dict]:
    q = stack.db.collection("probe_results")  # type: ignore[attr-defined]
    docs = [d.to_dict() for d in q.stream()]
    return [d for d in docs if all(d.get(k) == v for k, v in where.items())]


def test_manifest_lists_every_function_with_its_trigger(probe_stack: LocalStack):
    kinds = {e.name: e.kind for e in probe_stack.endpoints}
    assert kinds == {
        "on_probe_created": "event",
        "on_nested_created": "event",
        "on_probe_upload": "event",
        "probetask": "task",
        "probecall": "callable",
        "probeschedule": "schedule",
    }


def test_document_create_is_delivered_as_a_cloudevent_the_sdk_parses(probe_stack: LocalStack):
    doc_id = uuid.uuid4().hex
    probe_stack.db.collection("probe_docs").document(doc_id).set(  # type: ignore[attr-defined]
        {"n": 7, "at": firestore.SERVER_TIMESTAMP, "tags": ["a", "b"], "nested": {"k": "v"}}
    )
    found = wait_until(lambda: results(probe_stack, fn="created", doc=doc_id), what="created event")
    assert len(found) == 1
    value = found[0]["value"]
    assert value["n"] == 7 and value["tags"] == ["a", "b"] and value["nested"] == {"k": "v"}
    assert value["at"] is not None, "server timestamp resolved before the event was built"
    subject = f"probe_docs/{doc_id}"
    delivered = wait_until(lambda: [d for d in probe_stack.deliveries if d.subject == subject])
    assert len(delivered) == 1 and delivered[0].status == 204
    # an update is not a create
    probe_stack.db.collection("probe_docs").document(doc_id).update({"n": 8})  # type: ignore[attr-defined]
    time.sleep(0.5)
    assert len([d for d in probe_stack.deliveries if d.subject == subject]) == 1


def test_nested_wildcards_match(probe_stack: LocalStack):
    uid, item = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    probe_stack.db.document(f"probe_users/{uid}/items/{item}").set({"x": 1})  # type: ignore[attr-defined]
    found = wait_until(lambda: results(probe_stack, fn="nested", uid=uid), what="nested event")
    assert found[0]["item"] == item


def test_duplicate_delivery_sends_the_same_event_id_twice(probe_stack: LocalStack):
    doc_id = uuid.uuid4().hex
    with duplicate_events(probe_stack):
        probe_stack.db.collection("probe_docs").document(doc_id).set({"n": 1})  # type: ignore[attr-defined]
        found = wait_until(
            lambda: (
                len(results(probe_stack, fn="created", doc=doc_id)) == 2
                and results(probe_stack, fn="created", doc=doc_id)
            )
        )
    assert found[0]["event_id"] == found[1]["event_id"]


def test_storage_finalize_for_any_client_upload(probe_stack: LocalStack):
    name = f"probe/{uuid.uuid4().hex}.bin"
    blob = probe_stack.gcs.bucket(probe_stack.settings.bucket).blob(name)  # type: ignore[attr-defined]
    blob.upload_from_string(b"x" * 1234, content_type="application/octet-stream")
    found = wait_until(
        lambda: results(probe_stack, fn="finalized", name=name), what="finalize event"
    )
    assert found[0]["size"] == 1234 and found[0]["content_type"] == "application/octet-stream"


def test_storage_finalize_for_a_unicode_object_name(probe_stack: LocalStack):
    """Attribute headers are percent-encoded on the wire and decoded by the host."""
    name = f"probe/é 漢字 🙂 {uuid.uuid4().hex[:6]}%.bin"
    blob = probe_stack.gcs.bucket(probe_stack.settings.bucket).blob(name)  # type: ignore[attr-defined]
    blob.upload_from_string(b"abc", content_type="application/octet-stream")
    found = wait_until(
        lambda: results(probe_stack, fn="finalized", name=name), what="finalize event"
    )
    assert found[0]["size"] == 3


def _queue(stack: LocalStack):
    with stack.env():
        return admin_functions.task_queue("probetask", app=admin_app(stack))


def test_task_ids_are_deduplicated_and_failures_retried_per_retry_config(probe_stack: LocalStack):
    q = _queue(probe_stack)
    key = uuid.uuid4().hex
    q.enqueue(
        {"data": {"key": key, "fail_times": 2}}, admin_functions.TaskOptions(task_id=f"t-{key}")
    )
    with pytest.raises(admin_exceptions.AlreadyExistsError):
        q.enqueue({"data": {"key": key}}, admin_functions.TaskOptions(task_id=f"t-{key}"))
    attempts = wait_until(
        lambda: (
            sorted(
                d.get("attempt")
                for d in probe_stack.db.collection("probe_tasks")
                .where(filter=FieldFilter("key", "==", key))
                .stream()
            )  # type: ignore[attr-defined]
            if probe_stack.tasks.pending() == 0
            else None
        ),
        timeout_s=30,
    )
    assert attempts == [0, 1, 2], "two failures then success: three attempts"
    statuses = [h["status"] for h in probe_stack.tasks.settled_attempts(f"t-{key}")]
    assert statuses[:2] == [500, 500] and statuses[2] == 200


def test_task_gives_up_after_max_attempts(probe_stack: LocalStack):
    q = _queue(probe_stack)
    key = uuid.uuid4().hex
    q.enqueue(
        {"data": {"key": key, "fail_times": 99}}, admin_functions.TaskOptions(task_id=f"t-{key}")
    )
    attempts = probe_stack.tasks.settled_attempts(f"t-{key}")
    assert len(attempts) == 3 and all(a["status"] == 500 for a in attempts)


def test_rate_limit_bounds_concurrency_and_schedule_time_is_honoured(probe_stack: LocalStack):
    q = _queue(probe_stack)
    key = uuid.uuid4().hex
    for _ in range(6):
        q.enqueue({"data": {"key": key, "sleep": 0.3}})
    wait_until(lambda: probe_stack.tasks.pending() == 0, timeout_s=30)
    seen = [
        d.to_dict()["concurrent"]
        for d in probe_stack.db.collection("probe_tasks")
        .where(filter=FieldFilter("key", "==", key))
        .stream()
    ]  # type: ignore[attr-defined]
    assert len(seen) == 6 and max(seen) <= 2
    delayed = uuid.uuid4().hex
    q.enqueue({"data": {"key": delayed}}, admin_functions.TaskOptions(schedule_delay_seconds=2))

    t0 = time.time()
    rows = wait_until(
        lambda: [
            d.to_dict()
            for d in probe_stack.db.collection("probe_tasks")
            .where(filter=FieldFilter("key", "==", delayed))
            .stream()
        ],
        timeout_s=10,
    )  # type: ignore[attr-defined]
    assert rows[0]["at"] - t0 >= 1.5


def test_callable_accepts_emulator_tokens_and_refuses_missing_ones(probe_stack: LocalStack):
    url = probe_stack.function_url("probecall")
    r = requests.post(url, json={"data": {"hello": 1}}, timeout=10)
    assert r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED"
    token = probe_stack.sign_in("user-1")
    r = requests.post(
        url, json={"data": {"hello": 1}}, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert r.status_code == 200 and r.json()["result"] == {"uid": "user-1", "echo": {"hello": 1}}
    r = requests.post(
        url, json={"data": {}}, headers={"Authorization": "Bearer not-a-token"}, timeout=10
    )
    assert r.status_code == 401


def test_scheduled_function_runs_on_demand(probe_stack: LocalStack):
    before = len(results(probe_stack, fn="scheduled"))
    assert probe_stack.run_scheduled("probeschedule") == 200
    assert len(results(probe_stack, fn="scheduled")) == before + 1


def add_in_transaction(
    db: firestore.Client, ref: firestore.DocumentReference, field: str, delta: int
) -> None:
    """A read-modify-write transaction: ref's `field` += delta."""

    @firestore.transactional
    def run(tx: firestore.Transaction) -> None:
        snap = ref.get(transaction=tx)
        tx.update(ref, {field: snap.get(field) + delta})

    run(db.transaction())


def test_transactions_are_isolated_and_batches_atomic(probe_stack: LocalStack):
    db = probe_stack.db  # type: ignore[attr-defined]
    ref = db.collection("probe_accounts").document(uuid.uuid4().hex)
    ref.set({"balance": 100})
    threads = [
        threading.Thread(target=add_in_transaction, args=(db, ref, "balance", -1))
        for _ in range(20)
    ]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert ref.get().get("balance") == 80

    other = db.collection("probe_accounts").document(uuid.uuid4().hex)
    batch = db.batch()
    batch.set(other, {"a": 1})
    batch.create(ref, {"clobber": True})  # fails: ref exists
    with pytest.raises(Exception, match="exists"):
        batch.commit()
    assert not other.get().exists, "a failed batch must apply none of its writes"


def test_integers_are_64_bit_like_production(probe_stack: LocalStack):
    """Firestore integers are int64: values beyond +-2^53 round-trip exactly, sort, and
    increments saturate at the limits (the npm server alone refused them: patches/)."""
    db = probe_stack.db  # type: ignore[attr-defined]
    col = db.collection(f"probe_ints_{uuid.uuid4().hex[:8]}")
    values = [-(2**63), -(2**53) - 1, 0, 2**53, 2**53 + 1, 2**63 - 1]
    for i, v in enumerate(values):
        col.document(f"d{i}").set({"v": v})
    assert [col.document(f"d{i}").get().get("v") for i in range(len(values))] == values
    found = [d.get("v") for d in col.where(filter=FieldFilter("v", ">", 2**53)).stream()]
    assert found == [2**53 + 1, 2**63 - 1]
    ordered = [d.get("v") for d in col.order_by("v", direction="DESCENDING").stream()]
    assert ordered == sorted(values, reverse=True)

    ref = col.document("counter")
    ref.set({"n": 2**53})
    ref.update({"n": firestore.Increment(3)})
    assert ref.get().get("n") == 2**53 + 3
    ref.update({"n": firestore.Increment(2**63 - 1)})
    assert ref.get().get("n") == 2**63 - 1, "increments saturate at the int64 limit"


def test_locks_of_a_dead_client_are_released(probe_stack: LocalStack):
    """A client killed inside a transaction must not block the document forever."""
    import subprocess
    import sys

    db = probe_stack.db  # type: ignore[attr-defined]
    ref = db.collection("probe_accounts").document(uuid.uuid4().hex)
    ref.set({"balance": 5})
    code = f"""
import os
from google.cloud import firestore
db = firestore.Client(project={probe_stack.settings.project_id!r})
tx = db.transaction()
tx._begin()
db.document({ref.path!r}).get(transaction=tx)
print("locked", flush=True)
os._exit(9)
"""
    env = {**os.environ, **probe_stack.client_env()}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert "locked" in out.stdout, out.stderr[-2000:]
    started = time.monotonic()
    add_in_transaction(db, ref, "balance", -1)
    assert ref.get().get("balance") == 4
    assert time.monotonic() - started < 15


def _coordinated(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> TransactionCoordinator:
    """The stack's transaction coordinator, with idle expiry far off: these tests hold
    transactions open on purpose (the module's stack expires them after 1.5 s)."""
    if stack.tx_coordinator is None:
        pytest.skip("the npm server has no coordinator: a plain write does not wait there")
    coordinator: TransactionCoordinator = stack.tx_coordinator
    monkeypatch.setattr(coordinator, "tx_idle_s", 120.0)
    return coordinator


def _document_name(stack: LocalStack, ref: firestore.DocumentReference) -> str:
    return f"projects/{stack.settings.project_id}/databases/(default)/documents/{ref.path}"


@pytest.mark.parametrize("writer", ["update", "bulk_writer"])
def test_a_plain_write_waits_for_the_transaction_that_read_its_document(
    probe_stack: LocalStack, monkeypatch: pytest.MonkeyPatch, writer: str
):
    """Production lets a plain write of a document a transaction holds wait its turn; the
    bare emulator answered it ABORTED "Transaction lock timeout" instead."""
    coordinator = _coordinated(probe_stack, monkeypatch)
    db = probe_stack.db  # type: ignore[attr-defined]
    ref = db.collection("probe_accounts").document(uuid.uuid4().hex)
    ref.set({"writes": []})
    have_read, may_commit = threading.Event(), threading.Event()
    attempts: list[int] = []

    @firestore.transactional
    def hold(tx: firestore.Transaction) -> None:
        attempts.append(1)
        ref.get(transaction=tx)
        have_read.set()
        assert may_commit.wait(60)
        tx.update(ref, {"writes": firestore.ArrayUnion(["transaction"])})

    def plain_write() -> None:
        change = {"writes": firestore.ArrayUnion(["plain"])}
        if writer == "update":
            ref.update(change)
        else:  # BatchWrite
            bulk = db.bulk_writer()
            bulk.update(ref, change)
            bulk.flush()  # close() alone: its retries would fail on the closed writer
            bulk.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        held = pool.submit(hold, db.transaction())
        assert have_read.wait(60)
        plain = pool.submit(plain_write)
        wait_until(
            lambda: (
                plain.done() or coordinator.locks.waiting_plain(_document_name(probe_stack, ref))
            ),
            what="the plain write waiting for its turn",
        )
        assert not plain.done(), f"the plain write did not wait: {plain.exception()!r}"
        may_commit.set()
        held.result(timeout=60)
        plain.result(timeout=60)
    assert ref.get().get("writes") == ["transaction", "plain"]
    assert len(attempts) == 1, "the transaction was not aborted by the plain write"


def test_transactions_and_plain_writes_of_one_document_all_succeed(
    probe_stack: LocalStack, monkeypatch: pytest.MonkeyPatch
):
    """20 read-modify-write increments and 20 plain writes (updates, and batches that also
    write a second document) of one document at once: every call succeeds, none is lost."""
    _coordinated(probe_stack, monkeypatch)
    db = probe_stack.db  # type: ignore[attr-defined]
    ref = db.collection("probe_accounts").document(uuid.uuid4().hex)
    other = db.collection("probe_accounts").document(uuid.uuid4().hex)
    ref.set({"count": 0})

    def plain_write(i: int) -> None:
        if i % 2:
            batch = db.batch()
            batch.set(other, {f"b{i}": i}, merge=True)
            batch.update(ref, {f"plain.f{i}": i})
            batch.commit()
        else:
            ref.update({f"plain.f{i}": i})

    with ThreadPoolExecutor(max_workers=40) as pool:
        calls = []
        for i in range(20):
            calls += [
                pool.submit(add_in_transaction, db, ref, "count", 1),
                pool.submit(plain_write, i),
            ]
        failures = [repr(e) for f in calls if (e := f.exception(timeout=120))]
    assert failures == []
    doc = ref.get().to_dict()
    assert doc["count"] == 20
    assert doc["plain"] == {f"f{i}": i for i in range(20)}
    assert other.get().to_dict() == {f"b{i}": i for i in range(1, 20, 2)}


def test_the_stack_runs_the_firestore_it_says(probe_stack: LocalStack):
    wanted = probe_stack.settings.firestore
    assert probe_stack.firestore.kind == wanted
    line = probe_stack.describe().splitlines()[0]
    assert ("official Cloud Firestore emulator" in line) == (wanted == "official")
    assert ("firestore.rules loaded" in line) == (wanted == "official")
    assert "storage.rules are NOT evaluated" in probe_stack.describe()


def test_a_function_host_that_dies_is_started_again(probe_stack: LocalStack):
    old = probe_stack.children.get("host")
    assert old is not None
    restarts = probe_stack.host_restarts
    os.kill(old.pid, 9)  # not kill_host(): the instance crashes on its own
    wait_until(
        lambda: probe_stack.host_restarts == restarts + 1,
        timeout_s=90,
        what="a new function host",
    )
    new = probe_stack.children.get("host")
    assert new is not None and new.pid != old.pid and new.poll() is None
    doc_id = uuid.uuid4().hex
    probe_stack.db.collection("probe_docs").document(doc_id).set({"n": 1})  # type: ignore[attr-defined]
    wait_until(
        lambda: results(probe_stack, fn="created", doc=doc_id), what="a trigger on the new host"
    )


# ---------------------------------------------------------------------------------------
# the Firebase Storage web API (/v0), spoken the way the web SDK speaks it
# ---------------------------------------------------------------------------------------
def _v0(stack: LocalStack) -> str:
    return f"http://{stack.client_env()['FIREBASE_STORAGE_EMULATOR_HOST']}/v0/b/{stack.settings.bucket}/o"


def test_a_multipart_upload_is_the_same_object_and_fires_finalize(probe_stack: LocalStack):
    """uploadBytes: multipart/related (JSON metadata, then the bytes)."""
    name = f"probe/web-{uuid.uuid4().hex}.bin"
    data = bytes(range(256)) * 40
    boundary = "b0undary"
    body = (
        (
            f"--{boundary}\r\nContent-Type: application/json; charset=utf-8\r\n\r\n"
            + json.dumps(
                {"name": name, "contentType": "application/x-probe", "metadata": {"k": "v"}}
            )
            + f"\r\n--{boundary}\r\nContent-Type: application/x-probe\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--".encode()
    )
    r = requests.post(
        _v0(probe_stack),
        params={"name": name},
        data=body,
        headers={
            "X-Goog-Upload-Protocol": "multipart",
            "Content-Type": f"multipart/related; boundary={boundary}",
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text
    meta = r.json()
    assert meta["name"] == name and meta["size"] == str(len(data))
    assert meta["contentType"] == "application/x-probe" and meta["metadata"] == {"k": "v"}
    assert meta["downloadTokens"]
    # the same object through the GCS API
    blob = probe_stack.gcs.bucket(probe_stack.settings.bucket).get_blob(name)  # type: ignore[attr-defined]
    assert blob.download_as_bytes() == data and str(blob.generation) == meta["generation"]
    found = wait_until(lambda: results(probe_stack, fn="finalized", name=name), what="finalize")
    assert found[0]["size"] == len(data)
    # downloads: with the token, a byte range; a wrong token is refused
    url = f"{_v0(probe_stack)}/{urllib.parse.quote(name, safe='')}"
    full = requests.get(url, params={"alt": "media", "token": meta["downloadTokens"]}, timeout=30)
    assert full.status_code == 200 and full.content == data
    part = requests.get(url, params={"alt": "media"}, headers={"Range": "bytes=10-19"}, timeout=30)
    assert part.status_code == 206 and part.content == data[10:20]
    bad = requests.get(url, params={"alt": "media", "token": "not-the-token"}, timeout=30)
    assert bad.status_code == 403


def test_a_resumable_upload_in_chunks_and_metadata_of_a_server_side_object(probe_stack: LocalStack):
    """uploadBytesResumable: start, upload chunks at offsets, query, finalize."""
    name = f"probe/resumable-{uuid.uuid4().hex}.bin"
    data = os.urandom(3 * 256 * 1024 + 123)
    start = requests.post(
        _v0(probe_stack),
        params={"name": name},
        json={"name": name, "contentType": "application/octet-stream"},
        headers={
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": str(len(data)),
            "X-Goog-Upload-Header-Content-Type": "application/octet-stream",
        },
        timeout=30,
    )
    assert start.status_code == 200 and start.headers["X-Goog-Upload-Status"] == "active"
    session = start.headers["X-Goog-Upload-URL"]
    chunk = 256 * 1024
    for offset in range(0, len(data), chunk):
        last = offset + chunk >= len(data)
        r = requests.post(
            session,
            data=data[offset : offset + chunk],
            headers={
                "X-Goog-Upload-Command": "upload, finalize" if last else "upload",
                "X-Goog-Upload-Offset": str(offset),
            },
            timeout=30,
        )
        assert r.status_code == 200, r.text
        if not last:
            q = requests.post(session, headers={"X-Goog-Upload-Command": "query"}, timeout=30)
            assert q.headers["X-Goog-Upload-Size-Received"] == str(offset + chunk)
    assert r.headers["X-Goog-Upload-Status"] == "final" and r.json()["size"] == str(len(data))
    blob = probe_stack.gcs.bucket(probe_stack.settings.bucket).get_blob(name)  # type: ignore[attr-defined]
    assert blob.download_as_bytes() == data
    wait_until(lambda: results(probe_stack, fn="finalized", name=name), what="finalize")

    # an object written server-side gets a download token when a client asks for it
    other = f"probe/server-{uuid.uuid4().hex}.txt"
    probe_stack.gcs.bucket(probe_stack.settings.bucket).blob(other).upload_from_string(b"hi")  # type: ignore[attr-defined]
    meta = requests.get(
        f"{_v0(probe_stack)}/{urllib.parse.quote(other, safe='')}", timeout=30
    ).json()
    assert meta["name"] == other and meta["size"] == "2" and meta["downloadTokens"]
