"""The ownership check (core/ownership.py): a write happens only while the work is ours."""

from __future__ import annotations

import pytest

from core.ownership import LostClaim, holds_claim, write_as_owner, write_if_owner
from tests.support.firestore import FakeFirestore, use_fake_firestore


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeFirestore:
    return use_fake_firestore(monkeypatch)


def test_holds_claim_needs_our_claim_id_and_a_leased_status() -> None:
    owns = holds_claim("c1")
    assert owns({"claimId": "c1", "status": "processing"})
    assert not owns({"claimId": "c2", "status": "processing"}), "another delivery"
    assert not owns({"claimId": "c1", "status": "failed"}), "the sweep ended it"
    assert not owns({"status": "processing"})
    assert holds_claim("c1", ("processing", "ready"))({"claimId": "c1", "status": "ready"})


def test_the_owner_writes_and_gets_the_document_as_written(fake: FakeFirestore) -> None:
    ref = fake.put("jobs/j1", {"claimId": "c1", "status": "processing", "progress": 10})
    written = write_if_owner(
        ref, holds_claim("c1"), lambda tx, doc: {"progress": doc["progress"] + 5}
    )
    assert written == {"claimId": "c1", "status": "processing", "progress": 15}
    assert fake.data("jobs/j1") == written


def test_a_late_worker_writes_nothing(fake: FakeFirestore) -> None:
    ref = fake.put("jobs/j1", {"claimId": "newer", "status": "processing"})
    calls: list[str] = []

    def change(tx, doc):
        calls.append("called")
        return {"status": "completed"}

    assert write_if_owner(ref, holds_claim("old"), change) is None
    assert calls == [], "the change is not even computed"
    assert fake.data("jobs/j1") == {"claimId": "newer", "status": "processing"}
    with pytest.raises(LostClaim):
        write_as_owner(ref, holds_claim("old"), change)
    assert write_if_owner(fake.document("jobs/gone"), holds_claim("c1"), change) is None


def test_other_documents_are_written_in_the_same_transaction(fake: FakeFirestore) -> None:
    ref = fake.put("jobs/j1", {"claimId": "c1", "status": "processing"})
    scene = fake.document("scenes/s1")

    def change(tx, doc):
        tx.set(scene, {"url": "u"}, merge=True)
        return {"status": "completed"}

    write_if_owner(ref, holds_claim("c1"), change)
    assert fake.data("scenes/s1") == {"url": "u"}
    before = fake.commits
    write_if_owner(ref, holds_claim("c1"), change)  # not `processing` any more: no write
    assert fake.commits == before


def test_nothing_to_change_writes_nothing(fake: FakeFirestore) -> None:
    ref = fake.put("jobs/j1", {"claimId": "c1", "status": "processing"})
    assert write_if_owner(ref, holds_claim("c1"), lambda tx, doc: None) == {
        "claimId": "c1",
        "status": "processing",
    }
