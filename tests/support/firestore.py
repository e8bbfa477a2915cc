"""An in-memory Firestore for unit tests of code that reads and writes documents.

It answers the calls the backend makes (documents, `@firestore.transactional`
transactions, equality and range filters, ordering and limits) without a server, so the
lifecycle, the ownership check, the sweep and the video document's transitions can be
tested in milliseconds. `use_fake_firestore(monkeypatch)` makes `core.clients.db()` return
it. Transactions apply their writes at commit; there is no concurrency to isolate.
"""

from __future__ import annotations

import copy
import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from google.api_core.exceptions import AlreadyExists
from google.cloud.firestore_v1.transforms import Sentinel

from core import clients

_ids = itertools.count(1)


class FakeSnapshot:
    def __init__(self, ref: FakeDocument, data: dict[str, Any] | None):
        self.reference = ref
        self.id = ref.id
        self._data = copy.deepcopy(data)
        self.exists = data is not None
        self.create_time = ref.created

    def to_dict(self) -> dict[str, Any] | None:
        return copy.deepcopy(self._data)


class FakeDocument:
    def __init__(self, db: FakeFirestore, path: str):
        self._db = db
        self.path = path
        self.id = path.rsplit("/", 1)[-1]
        self.created: datetime | None = db.created.get(path)

    @property
    def parent(self) -> FakeCollection:
        return FakeCollection(self._db, self.path.rsplit("/", 1)[0])

    def collection(self, name: str) -> FakeCollection:
        return FakeCollection(self._db, f"{self.path}/{name}")

    def get(self, transaction: FakeTransaction | None = None) -> FakeSnapshot:
        return FakeSnapshot(self, self._db.docs.get(self.path))

    def set(self, data: dict[str, Any], merge: bool = False) -> None:
        self._db.apply([("set", self, data, merge)])

    def create(self, data: dict[str, Any]) -> None:
        self._db.apply([("create", self, data, False)])

    def update(self, data: dict[str, Any]) -> None:
        self._db.apply([("update", self, data, False)])

    def delete(self) -> None:
        self._db.apply([("delete", self, {}, False)])


class FakeQuery:
    def __init__(self, db: FakeFirestore, path: str, filters: tuple = (), order: tuple = ()):
        self._db, self._path, self._filters, self._order = db, path, filters, order
        self._limit: int | None = None

    def where(self, *, filter: Any) -> FakeQuery:
        return FakeQuery(self._db, self._path, (*self._filters, filter), self._order)

    def order_by(self, field: str, direction: str = "ASCENDING") -> FakeQuery:
        return FakeQuery(self._db, self._path, self._filters, (*self._order, (field, direction)))

    def limit(self, n: int) -> FakeQuery:
        query = FakeQuery(self._db, self._path, self._filters, self._order)
        query._limit = n
        return query

    def stream(self) -> Iterator[FakeSnapshot]:
        prefix = self._path + "/"
        rows = [
            (path, data)
            for path, data in sorted(self._db.docs.items())
            if path.startswith(prefix) and "/" not in path[len(prefix) :]
        ]
        rows = [(p, d) for p, d in rows if all(_matches(d, f) for f in self._filters)]
        for field, direction in reversed(self._order):
            rows.sort(key=lambda r, f=field: r[1].get(f), reverse=direction == "DESCENDING")
        for path, _ in rows[: self._limit]:
            yield FakeDocument(self._db, path).get()


class FakeCollection(FakeQuery):
    def __init__(self, db: FakeFirestore, path: str):
        super().__init__(db, path)

    @property
    def id(self) -> str:
        return self._path.rsplit("/", 1)[-1]

    def document(self, doc_id: str | None = None) -> FakeDocument:
        return FakeDocument(self._db, f"{self._path}/{doc_id or f'auto{next(_ids)}'}")


class FakeTransaction:
    """What `@firestore.transactional` drives: begin, run the function, commit."""

    _read_only = False

    def __init__(self, db: FakeFirestore, max_attempts: int = 5):
        self._db = db
        self._max_attempts = max_attempts
        self._writes: list[tuple[str, FakeDocument, dict[str, Any], bool]] = []
        self._id: bytes | None = None

    def _clean_up(self) -> None:
        self._writes = []

    def _begin(self, retry_id: bytes | None = None) -> None:
        self._id = b"fake"

    def _commit(self) -> list[Any]:
        self._db.apply(self._writes)
        self._writes = []
        return []

    def _rollback(self) -> None:
        self._writes = []

    def set(self, ref: FakeDocument, data: dict[str, Any], merge: bool = False) -> None:
        self._writes.append(("set", ref, data, merge))

    def create(self, ref: FakeDocument, data: dict[str, Any]) -> None:
        self._writes.append(("create", ref, data, False))

    def update(self, ref: FakeDocument, data: dict[str, Any]) -> None:
        self._writes.append(("update", ref, data, False))

    def delete(self, ref: FakeDocument) -> None:
        self._writes.append(("delete", ref, {}, False))


class FakeFirestore:
    """The client: `collection`, `document`, `transaction`, `batch`-free."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.created: dict[str, datetime] = {}
        self.commits = 0  # commits that wrote something

    def collection(self, name: str) -> FakeCollection:
        return FakeCollection(self, name)

    def document(self, path: str) -> FakeDocument:
        return FakeDocument(self, path)

    def transaction(self, max_attempts: int = 5) -> FakeTransaction:
        return FakeTransaction(self, max_attempts)

    def apply(self, writes: list[tuple[str, FakeDocument, dict[str, Any], bool]]) -> None:
        if not writes:
            return
        staged = copy.deepcopy(self.docs)
        for kind, ref, data, merge in writes:
            current = staged.get(ref.path)
            if kind == "create" and current is not None:
                raise AlreadyExists(f"{ref.path} already exists")
            if kind == "update" and current is None:
                raise AssertionError(f"{ref.path} does not exist")
            if kind == "delete":
                staged.pop(ref.path, None)
                continue
            base = dict(current or {}) if kind == "update" or merge else {}
            base.update({k: _stored(v) for k, v in copy.deepcopy(data).items()})
            staged[ref.path] = base
            self.created.setdefault(ref.path, datetime.now(UTC))
        self.docs = staged
        self.commits += 1

    # helpers for tests
    def put(self, path: str, data: dict[str, Any]) -> FakeDocument:
        self.apply([("set", self.document(path), data, False)])
        return self.document(path)

    def data(self, path: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.docs.get(path))


def _stored(value: Any) -> Any:
    return datetime.now(UTC) if isinstance(value, Sentinel) else value


def _field(data: dict[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):  # a dotted path reaches into maps, as in Firestore
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _matches(data: dict[str, Any], flt: Any) -> bool:
    value, op, want = _field(data, flt.field_path), flt.op_string, flt.value
    if op == "==":
        return bool(value == want)
    if op == "in":
        return value in want
    if value is None:
        return False
    return bool(
        {"<": value < want, "<=": value <= want, ">": value > want, ">=": value >= want}[op]
    )


def use_fake_firestore(monkeypatch: pytest.MonkeyPatch) -> FakeFirestore:
    """Make `core.clients.db()` return a fresh in-memory Firestore for this test."""
    fake = FakeFirestore()
    key = ("firestore", os.environ.get("FIRESTORE_EMULATOR_HOST"), clients.project_id())
    monkeypatch.setitem(clients._clients, key, fake)
    return fake
