"""Server-SDK transactions on the official Firestore emulator with production's lock semantics.

    coordinator = TransactionCoordinator(upstream="127.0.0.1:8080").start()
    coordinator.host      # FIRESTORE_EMULATOR_HOST for google-cloud-firestore / firebase-admin

A gRPC pass-through in front of the official emulator for server SDK traffic. Every call
is forwarded unchanged, as bytes; read-write transactions and plain writes are also
coordinated (design and measurements: docs/local-stack.md):

- Production Firestore locks the documents a server-SDK transaction reads and lets
  contenders wait their turn; the emulator deadlocks them and aborts after a 2 s lock
  timeout, forever in lock-step. Here a transaction's reads of a document wait, first come
  first served, until the transactions ahead of it on that document have committed or
  rolled back, so the emulator never sees two conflicting ones.
- Production lets a plain write (a Commit without a transaction: `update`, `set`, a
  `WriteBatch`; or a BulkWriter's BatchWrite) of a locked document wait; the emulator
  answers it ABORTED "Transaction lock timeout". Here it takes its turn in the same
  queues, for all its documents at once, and holds them while it is forwarded.
- Production expires a transaction that stays idle (its client died): the emulator keeps
  its locks. Here an idle transaction (TX_IDLE_S) is rolled back on the emulator, then its
  locks are released; its late commit fails ABORTED and the client retries.

Anything waiting longer than LOCK_WAIT_S is answered ABORTED (the Python SDK retries a
transaction or a BatchWrite then, not a plain Commit). Reads through queries are
not coordinated (none of our transactions contend through queries); the emulator's own
locking still applies to them. The web SDK talks to the emulator directly and is not
coordinated at all.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.cloud.firestore_v1.types import firestore as fs

log = logging.getLogger("local_stack.firestore_tx")
SERVICE = "/google.firestore.v1.Firestore/"
STREAMING_RESPONSES = {"BatchGetDocuments", "RunQuery", "RunAggregationQuery", "PartitionQuery"}
BIDI = {"Listen", "Write"}
TX_IDLE_S = 10.0  # production: 60 s idle; shorter here so crash tests do not wait long
LOCK_WAIT_S = 30.0  # waiting longer than this is ABORTED (a transaction's client retries)
DROPPED_METADATA = ("user-agent", "grpc-", ":")


def _pb(message: Any) -> Any:
    return type(message.pb(message()))


BeginRequest = _pb(fs.BeginTransactionRequest)
BeginResponse = _pb(fs.BeginTransactionResponse)
BatchGetRequest = _pb(fs.BatchGetDocumentsRequest)
BatchGetResponse = _pb(fs.BatchGetDocumentsResponse)
CommitRequest = _pb(fs.CommitRequest)
BatchWriteRequest = _pb(fs.BatchWriteRequest)
RollbackRequest = _pb(fs.RollbackRequest)


class Aborted(Exception):
    pass


@dataclass
class _Tx:
    database: str
    plain: bool = False  # a plain commit's turn: never idle, nothing to roll back
    locks: set[str] = field(default_factory=set)
    last_active: float = field(default_factory=time.monotonic)
    waiting: bool = False  # waiting for a lock is not idling
    expired: bool = False


class DocumentLocks:
    """First-come-first-served locks on documents, held by transactions and plain commits.

    A transaction takes its documents one read at a time; a plain commit takes all of its
    documents at once (and holds none while it waits), and a transaction that already holds
    a lock goes ahead of waiting plain commits. So a plain commit never waits for a
    transaction that waits for it: plain commits add no deadlock (docs/local-stack.md).
    """

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._owner: dict[str, bytes] = {}
        self._queue: dict[str, deque[bytes]] = {}
        self.txs: dict[bytes, _Tx] = {}

    def begin(self, tx_id: bytes, database: str) -> None:
        with self._cv:
            self.txs[tx_id] = _Tx(database)

    def acquire(
        self,
        tx_id: bytes,
        paths: list[str],
        timeout_s: float = LOCK_WAIT_S,
        alive: Callable[[], bool] = lambda: True,
    ) -> None:
        end = time.monotonic() + timeout_s
        with self._cv:
            tx = self.txs.get(tx_id)
            if tx is None:
                return  # a read-only transaction, or one begun before the coordinator
            for path in sorted(set(paths)):
                if self._owner.get(path) == tx_id:
                    continue
                queue = self._queue.setdefault(path, deque())
                if tx.locks:  # ahead of plain commits, which may be waiting for those locks
                    plain = [i for i, w in enumerate(queue) if self._plain(w)]
                    queue.insert(plain[0] if plain else len(queue), tx_id)
                else:
                    queue.append(tx_id)
                self._wait(tx_id, tx, [path], end, alive)
                self._owner[path] = tx_id
                tx.locks.add(path)
                tx.last_active = time.monotonic()

    def acquire_plain(
        self,
        paths: list[str],
        database: str,
        timeout_s: float = LOCK_WAIT_S,
        alive: Callable[[], bool] = lambda: True,
    ) -> bytes:
        """Wait for the turn of a plain commit of `paths`, take them all; return its lock id."""
        end = time.monotonic() + timeout_s
        turn = b"plain-commit:" + uuid.uuid4().bytes
        wanted = sorted(set(paths))
        with self._cv:
            tx = self.txs[turn] = _Tx(database, plain=True)
            for path in wanted:
                self._queue.setdefault(path, deque()).append(turn)
            try:
                self._wait(turn, tx, wanted, end, alive)
            except Aborted:
                del self.txs[turn]
                raise
            for path in wanted:
                self._owner[path] = turn
            tx.locks.update(wanted)
            return turn

    def _wait(
        self, tx_id: bytes, tx: _Tx, paths: list[str], end: float, alive: Callable[[], bool]
    ) -> None:
        """Wait (under the condition) until `tx_id` is first in line on every one of
        `paths` and none is held; it leaves those queues either way."""
        tx.waiting = True
        try:
            while not all(self._owner.get(p) is None and self._queue[p][0] == tx_id for p in paths):
                if tx.expired:
                    raise Aborted("the transaction expired (idle)")
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise Aborted(f"transaction lock timeout on {', '.join(paths)}")
                if not alive():
                    raise Aborted("the client went away")
                self._cv.wait(min(remaining, 0.5))
        finally:
            tx.waiting = False
            for path in paths:
                queue = self._queue[path]
                queue.remove(tx_id)
                if not queue:
                    self._queue.pop(path, None)
            self._cv.notify_all()  # the next in line may be first now
        if tx.expired:
            raise Aborted("the transaction expired (idle)")

    def waiting_plain(self, path: str) -> int:
        """How many plain commits wait for their turn on `path`."""
        with self._cv:
            return sum(1 for w in self._queue.get(path, ()) if self._plain(w))

    def _plain(self, waiter: bytes) -> bool:
        tx = self.txs.get(waiter)
        return tx is not None and tx.plain

    def touch(self, tx_id: bytes) -> bool:
        """Mark activity; False if the transaction expired."""
        with self._cv:
            tx = self.txs.get(tx_id)
            if tx is None:
                return True
            tx.last_active = time.monotonic()
            return not tx.expired

    def release(self, tx_id: bytes) -> None:
        with self._cv:
            tx = self.txs.pop(tx_id, None)
            if tx is None:
                return
            for path in tx.locks:
                if self._owner.get(path) == tx_id:
                    del self._owner[path]
            self._cv.notify_all()

    def expire_idle(self, idle_s: float) -> list[tuple[bytes, str]]:
        """Mark transactions idle for `idle_s` expired; return (id, database). Their locks
        are kept until `release`, once the emulator has rolled them back: a plain commit
        let through earlier would wait on the emulator's locks."""
        now = time.monotonic()
        with self._cv:
            idle = [
                (tx_id, tx.database)
                for tx_id, tx in self.txs.items()
                if not tx.plain
                and not tx.expired
                and not tx.waiting
                and now - tx.last_active > idle_s
            ]
            for tx_id, _ in idle:
                self.txs[tx_id].expired = True
            return idle


class TransactionCoordinator:
    def __init__(self, upstream: str, port: int = 0, *, tx_idle_s: float = TX_IDLE_S):
        self.upstream = upstream
        self.tx_idle_s = tx_idle_s
        self.locks = DocumentLocks()
        self._channel = grpc.insecure_channel(
            upstream,
            options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)],
        )
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=512, thread_name_prefix="firestore-proxy"),
            handlers=[_Handler(self)],
            options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)],
        )
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        self._stop = threading.Event()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> TransactionCoordinator:
        self._server.start()
        threading.Thread(target=self._expire_loop, name="firestore-tx-expiry", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.stop(grace=1).wait()
        self._channel.close()

    def _expire_loop(self) -> None:
        while not self._stop.wait(1.0):
            for tx_id, database in self.locks.expire_idle(self.tx_idle_s):
                log.info("rolling back an idle transaction (its client stopped)")
                with contextlib.suppress(grpc.RpcError):
                    self.call_unary(
                        "Rollback",
                        RollbackRequest(database=database, transaction=tx_id).SerializeToString(),
                        [("authorization", "Bearer owner")],
                        30,
                    )
                self.locks.release(tx_id)

    def call_unary(
        self, method: str, request: bytes, metadata: list[tuple[str, str]], timeout: float | None
    ) -> bytes:
        call: Callable[..., bytes] = self._channel.unary_unary(SERVICE + method)
        return call(request, metadata=metadata, timeout=timeout)

    def channel(self) -> grpc.Channel:
        return self._channel


def _written(write: Any) -> str | None:
    """The document a google.firestore.v1.Write changes."""
    operation = write.WhichOneof("operation")
    if operation is None:
        return None  # malformed: the emulator refuses it
    if operation == "update":
        return str(write.update.name)
    if operation == "transform":
        return str(write.transform.document)
    return str(getattr(write, operation))  # delete (or verify): the name itself


def _until_cancelled(requests: Iterator[bytes]) -> Iterator[bytes]:
    """A client's request stream, ended quietly when the client goes away (a closed
    listener): grpc would otherwise log "Exception iterating requests!" for each one."""
    try:
        yield from requests
    except grpc.RpcError:
        return


def _metadata(context: grpc.ServicerContext) -> list[tuple[str, str]]:
    return [
        (k, v)
        for k, v in context.invocation_metadata()
        if not k.startswith(DROPPED_METADATA) and isinstance(v, str)
    ]


def _timeout(context: grpc.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None or remaining > 1e6 else max(0.1, remaining)


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, coordinator: TransactionCoordinator):
        self.c = coordinator

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = str(details.method)
        if not method.startswith(SERVICE):
            return None
        name = method[len(SERVICE) :]
        if name in BIDI:
            return grpc.stream_stream_rpc_method_handler(self._bidi(method))
        if name in STREAMING_RESPONSES:
            return grpc.unary_stream_rpc_method_handler(self._server_stream(method, name))
        return grpc.unary_unary_rpc_method_handler(self._unary(method, name))

    # -- forwarding ------------------------------------------------------------------------
    def _unary(self, method: str, name: str) -> Callable[[bytes, grpc.ServicerContext], bytes]:
        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            tx_id: bytes | None = None
            if name == "Commit":
                commit = CommitRequest.FromString(request)
                tx_id = commit.transaction or None
                if tx_id and not self.c.locks.touch(tx_id):
                    context.abort(grpc.StatusCode.ABORTED, "the transaction expired (idle)")
                if not tx_id:
                    tx_id = self._plain_turn(commit.writes, commit.database, context)
            elif name == "BatchWrite":
                batch = BatchWriteRequest.FromString(request)
                tx_id = self._plain_turn(batch.writes, batch.database, context)
            elif name == "Rollback":
                tx_id = RollbackRequest.FromString(request).transaction or None
            try:
                response = self.c.channel().unary_unary(method)(
                    request, metadata=_metadata(context), timeout=_timeout(context)
                )
            except grpc.RpcError as e:
                context.abort(e.code(), e.details() or "")
            finally:
                if tx_id:
                    self.c.locks.release(tx_id)
            if name == "BeginTransaction":
                req = BeginRequest.FromString(request)
                if not req.options.HasField("read_only"):
                    self.c.locks.begin(BeginResponse.FromString(response).transaction, req.database)
            return bytes(response)

        return handle

    def _plain_turn(
        self, writes: Iterable[Any], database: str, context: grpc.ServicerContext
    ) -> bytes | None:
        """Wait for a plain commit's turn on the documents it writes (see DocumentLocks)."""
        paths = [path for w in writes if (path := _written(w))]
        if not paths:
            return None
        remaining = context.time_remaining()
        wait_s = LOCK_WAIT_S if remaining is None else min(LOCK_WAIT_S, remaining)
        try:
            return self.c.locks.acquire_plain(paths, database, wait_s, context.is_active)
        except Aborted as e:
            context.abort(grpc.StatusCode.ABORTED, str(e))
            raise  # context.abort raises; this is for the type checker

    def _server_stream(
        self, method: str, name: str
    ) -> Callable[[bytes, grpc.ServicerContext], Iterator[bytes]]:
        def handle(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
            new_tx_database: str | None = None
            if name == "BatchGetDocuments":
                req = BatchGetRequest.FromString(request)
                if req.transaction:
                    try:
                        self.c.locks.acquire(
                            req.transaction, list(req.documents), alive=context.is_active
                        )
                    except Aborted as e:
                        context.abort(grpc.StatusCode.ABORTED, str(e))
                elif req.HasField("new_transaction") and not req.new_transaction.HasField(
                    "read_only"
                ):
                    new_tx_database = req.database  # locks are taken once the id is known
            call = self.c.channel().unary_stream(method)(
                request, metadata=_metadata(context), timeout=_timeout(context)
            )
            context.add_callback(call.cancel)
            try:
                for response in call:
                    if new_tx_database is not None:
                        tx_id = BatchGetResponse.FromString(response).transaction
                        if tx_id:
                            self.c.locks.begin(tx_id, new_tx_database)
                            new_tx_database = None
                    yield bytes(response)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.CANCELLED:
                    context.abort(e.code(), e.details() or "")
            finally:
                call.cancel()  # never left for the garbage collector to cancel (see _bidi)

        return handle

    def _bidi(
        self, method: str
    ) -> Callable[[Iterator[bytes], grpc.ServicerContext], Iterator[bytes]]:
        def handle(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
            call = self.c.channel().stream_stream(method)(
                _until_cancelled(requests), metadata=_metadata(context)
            )
            context.add_callback(call.cancel)
            try:
                for response in call:
                    yield bytes(response)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.CANCELLED:
                    context.abort(e.code(), e.details() or "")
            finally:
                # An upstream call still open when its generator is dropped is cancelled by
                # grpc's `_Rendezvous.__del__`, from whichever thread the cyclic GC runs in,
                # taking the call's lock then the channel's: once (loaded run 9) that
                # deadlocked every RPC of the process against the channel's spin thread.
                call.cancel()

        return handle
