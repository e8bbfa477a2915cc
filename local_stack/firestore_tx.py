"""Server-SDK transactions on the official Firestore emulator with production's lock semantics.

    coordinator = TransactionCoordinator(upstream="127.0.0.1:8080").start()
    coordinator.host      # FIRESTORE_EMULATOR_HOST for google-cloud-firestore / firebase-admin

A gRPC pass-through in front of the official emulator for server SDK traffic (the web
SDK talks to the emulator directly). Every call is forwarded unchanged, as bytes; only
read-write transactions are also coordinated:

- Production Firestore locks the documents a server-SDK transaction reads (pessimistic)
  and lets contenders wait their turn, so 50 concurrent read-modify-write transactions
  on one balance all commit. The emulator instead lets every contender take a shared
  lock, deadlocks them at commit, and breaks the deadlock by aborting after a 2 s lock
  timeout; contenders retrying in lock-step then abort forever (measured: 1 of 20
  concurrent decrements committed in 100 s). Here a transaction's reads of a document
  wait, first come first served, until the transactions ahead of it on that document
  have committed or rolled back, so the emulator never sees two conflicting ones.
- Production expires a transaction that stays idle (its client died): the emulator keeps
  its locks. Here an idle transaction (TX_IDLE_S) is rolled back on the emulator and its
  locks are released; its late commit then fails ABORTED and the client retries.

Reads inside a transaction through queries are not coordinated (none of our transactions
contend through queries); the emulator's own locking still applies to them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
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
LOCK_WAIT_S = 30.0  # a transaction waiting longer than this is ABORTED (the client retries)
DROPPED_METADATA = ("user-agent", "grpc-", ":")


def _pb(message: Any) -> Any:
    return type(message.pb(message()))


BeginRequest = _pb(fs.BeginTransactionRequest)
BeginResponse = _pb(fs.BeginTransactionResponse)
BatchGetRequest = _pb(fs.BatchGetDocumentsRequest)
BatchGetResponse = _pb(fs.BatchGetDocumentsResponse)
CommitRequest = _pb(fs.CommitRequest)
RollbackRequest = _pb(fs.RollbackRequest)


class Aborted(Exception):
    pass


@dataclass
class _Tx:
    database: str
    locks: set[str] = field(default_factory=set)
    last_active: float = field(default_factory=time.monotonic)
    waiting: bool = False  # waiting for a lock is not idling
    expired: bool = False


class DocumentLocks:
    """First-come-first-served locks on documents, held by transaction ids."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._owner: dict[str, bytes] = {}
        self._queue: dict[str, deque[bytes]] = {}
        self.txs: dict[bytes, _Tx] = {}

    def begin(self, tx_id: bytes, database: str) -> None:
        with self._cv:
            self.txs[tx_id] = _Tx(database)

    def acquire(self, tx_id: bytes, paths: list[str], timeout_s: float = LOCK_WAIT_S) -> None:
        end = time.monotonic() + timeout_s
        with self._cv:
            tx = self.txs.get(tx_id)
            if tx is None:
                return  # a read-only transaction, or one begun before the coordinator
            for path in sorted(set(paths)):
                if self._owner.get(path) == tx_id:
                    continue
                queue = self._queue.setdefault(path, deque())
                queue.append(tx_id)
                tx.waiting = True
                try:
                    while self._owner.get(path) is not None or queue[0] != tx_id:
                        if tx.expired:
                            raise Aborted("the transaction expired (idle)")
                        remaining = end - time.monotonic()
                        if remaining <= 0:
                            raise Aborted(f"transaction lock timeout on {path}")
                        self._cv.wait(min(remaining, 0.5))
                finally:
                    tx.waiting = False
                    queue.remove(tx_id)
                    if not queue:
                        self._queue.pop(path, None)
                if tx.expired:
                    raise Aborted("the transaction expired (idle)")
                self._owner[path] = tx_id
                tx.locks.add(path)
                tx.last_active = time.monotonic()

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
        """Expire transactions idle for `idle_s` (their locks go); return (id, database)."""
        now = time.monotonic()
        with self._cv:
            idle = [
                (tx_id, tx.database)
                for tx_id, tx in self.txs.items()
                if not tx.expired and not tx.waiting and now - tx.last_active > idle_s
            ]
            for tx_id, _ in idle:
                tx = self.txs[tx_id]
                tx.expired = True
                for path in tx.locks:
                    if self._owner.get(path) == tx_id:
                        del self._owner[path]
                tx.locks.clear()
            if idle:
                self._cv.notify_all()
            return idle

    def forget(self, tx_id: bytes) -> None:
        with self._cv:
            self.txs.pop(tx_id, None)


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

    def call_unary(
        self, method: str, request: bytes, metadata: list[tuple[str, str]], timeout: float | None
    ) -> bytes:
        call: Callable[..., bytes] = self._channel.unary_unary(SERVICE + method)
        return call(request, metadata=metadata, timeout=timeout)

    def channel(self) -> grpc.Channel:
        return self._channel


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
                tx_id = CommitRequest.FromString(request).transaction or None
                if tx_id and not self.c.locks.touch(tx_id):
                    self.c.locks.forget(tx_id)
                    context.abort(grpc.StatusCode.ABORTED, "the transaction expired (idle)")
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

    def _server_stream(
        self, method: str, name: str
    ) -> Callable[[bytes, grpc.ServicerContext], Iterator[bytes]]:
        def handle(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
            new_tx_database: str | None = None
            if name == "BatchGetDocuments":
                req = BatchGetRequest.FromString(request)
                if req.transaction:
                    try:
                        self.c.locks.acquire(req.transaction, list(req.documents))
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

        return handle
