// The local Firestore-protocol server: @firestore-emulator/server (npm) plus a thin layer
// that closes the gaps our backend depends on, and a change feed for the trigger runner.
//
// Usage: node local_stack/firestore_server.mjs PORT
//
// What this layer adds on top of the package (see docs/local-stack.md):
// 1. Transactions are isolated. The package hands out one dummy transaction id and never
//    checks anything. Here every transaction gets its own id; documents it reads are locked
//    (pessimistically, like production Firestore's server SDK transactions) until it commits
//    or rolls back, so concurrent read-modify-write transactions on one document serialise
//    instead of losing updates. A commit also fails with ABORTED (the client retries) if a
//    document it read was changed by a non-transactional write in the meantime.
// 2. Commits are all-or-nothing with respect to preconditions. The package applies writes one
//    by one and throws at the first failed precondition, leaving earlier writes applied. Here
//    all preconditions (exists / update_time) are checked before any write is applied.
// 3. A change feed: every document create/update/delete is printed to stdout as one JSON line
//    {"kind": "create"|"update"|"delete", "path", "value", "oldValue"} where value/oldValue are
//    base64 google.firestore.v1.Document protobufs (after the whole commit, so server
//    timestamps and transforms are included). The Python stack turns these into CloudEvents.

import { randomBytes } from "node:crypto";
import { FirestoreServer } from "@firestore-emulator/server";

const port = Number(process.argv[2] || 8080);
// A transaction waiting for a lock gives up (ABORTED) after LOCK_TIMEOUT_MS. A transaction
// that neither commits nor rolls back for TX_IDLE_MS (its client died, e.g. a SIGKILLed
// function host) expires: its locks are released and a late commit is ABORTED, as
// production Firestore expires idle transactions.
const LOCK_TIMEOUT_MS = Number(process.env.LOCAL_FIRESTORE_LOCK_TIMEOUT_MS || 30000);
const TX_IDLE_MS = Number(process.env.LOCAL_FIRESTORE_TX_IDLE_MS || 10000);
const STATUS = { NOT_FOUND: 5, ALREADY_EXISTS: 6, FAILED_PRECONDITION: 9, ABORTED: 10 };

const server = new FirestoreServer();
const state = server.state;
const handlers = server.server.handlers; // grpc-js handler table: path -> {func, ...}

// ---------------------------------------------------------------------------------------
// Change feed
// ---------------------------------------------------------------------------------------
const versions = new Map(); // document path -> version counter (bumped on every change)
const lastValue = new Map(); // document path -> last serialized Document (base64)
const pending = new Map(); // document path -> {kind, oldValue} waiting for end of commit

function bump(path) {
  versions.set(path, (versions.get(path) || 0) + 1);
}

function record(kind, document) {
  const path = document.getPath();
  bump(path);
  const prior = pending.get(path);
  if (prior) {
    // Several changes to one document in one commit: keep the first kind (a create stays a create).
    if (kind === "delete" && prior.kind === "create") pending.delete(path);
    else if (kind === "delete") prior.kind = "delete";
    return;
  }
  pending.set(path, { kind, oldValue: lastValue.get(path) || null, document });
  queueMicrotask(flush);
}

function flush() {
  for (const [path, change] of pending) {
    let value = null;
    if (change.kind !== "delete" && change.document.metadata.hasExist) {
      value = Buffer.from(change.document.toV1Document().serializeBinary()).toString("base64");
      lastValue.set(path, value);
    } else {
      lastValue.delete(path);
    }
    process.stdout.write(
      JSON.stringify({ kind: change.kind, path, value, oldValue: change.oldValue }) + "\n",
    );
  }
  pending.clear();
}

state.emitter.on("create-document", ({ document }) => record("create", document));
state.emitter.on("update-document", ({ document }) => record("update", document));
state.emitter.on("delete-document", ({ document }) => record("delete", document));

// ---------------------------------------------------------------------------------------
// Transactions: ids, locks, read sets
// ---------------------------------------------------------------------------------------
const transactions = new Map(); // hex id -> {locks: Set<path>, reads: Map<path, version>, readOnly}
const locks = new Map(); // path -> {owner: hex id, waiters: [{tx, resolve, reject, timer}]}

function newTransaction(readOnly = false) {
  const id = randomBytes(16);
  transactions.set(id.toString("hex"), {
    locks: new Set(),
    reads: new Map(),
    readOnly,
    lastActive: Date.now(),
  });
  return id;
}

function touch(key) {
  const tx = transactions.get(key);
  if (tx) tx.lastActive = Date.now();
}

setInterval(() => {
  const now = Date.now();
  for (const [key, tx] of transactions) {
    if (!tx.waiting && now - tx.lastActive > TX_IDLE_MS) release(key);
  }
}, 1000).unref();

function txKey(bytes) {
  return bytes && bytes.length ? Buffer.from(bytes).toString("hex") : null;
}

function grpcError(code, message) {
  const err = new Error(message);
  err.code = code;
  err.details = message;
  return err;
}

function acquire(key, path) {
  const tx = transactions.get(key);
  if (!tx || tx.readOnly) return Promise.resolve();
  const lock = locks.get(path);
  if (!lock) {
    locks.set(path, { owner: key, waiters: [] });
    tx.locks.add(path);
    return Promise.resolve();
  }
  if (lock.owner === key) return Promise.resolve();
  tx.waiting = (tx.waiting || 0) + 1;
  return new Promise((resolve, reject) => {
    const done = () => {
      tx.waiting -= 1;
      tx.lastActive = Date.now();
    };
    const waiter = {
      key,
      resolve: () => {
        done();
        resolve();
      },
      reject: null,
      timer: null,
    };
    waiter.timer = setTimeout(() => {
      lock.waiters.splice(lock.waiters.indexOf(waiter), 1);
      done();
      reject(grpcError(STATUS.ABORTED, `transaction lock timeout on ${path}`));
    }, LOCK_TIMEOUT_MS);
    lock.waiters.push(waiter);
  });
}

function release(key) {
  const tx = transactions.get(key);
  if (!tx) return;
  transactions.delete(key);
  for (const path of tx.locks) {
    const lock = locks.get(path);
    if (!lock || lock.owner !== key) continue;
    let next = lock.waiters.shift();
    while (next && !transactions.has(next.key)) next = lock.waiters.shift();
    if (!next) {
      locks.delete(path);
      continue;
    }
    clearTimeout(next.timer);
    lock.owner = next.key;
    transactions.get(next.key).locks.add(path);
    next.resolve();
  }
}

function noteRead(key, path) {
  const tx = transactions.get(key);
  if (tx && !tx.reads.has(path)) tx.reads.set(path, versions.get(path) || 0);
}

function wrap(method, makeHandler) {
  const name = `/google.firestore.v1.Firestore/${method}`;
  const entry = handlers.get(name);
  const original = entry.func;
  entry.func = makeHandler(original);
}

wrap("BeginTransaction", (original) => (call, callback) => {
  const readOnly = Boolean(call.request.has_options && call.request.options.has_read_only);
  const id = newTransaction(readOnly);
  original(call, (err, response) => {
    if (response) response.transaction = id;
    callback(err, response);
  });
});

wrap("BatchGetDocuments", (original) => async (call) => {
  let key = txKey(call.request.transaction);
  let replacement = null;
  if (call.request.has_new_transaction) {
    replacement = newTransaction(false);
    key = replacement.toString("hex");
  }
  if (key) {
    try {
      for (const path of [...call.request.documents].sort()) await acquire(key, path);
    } catch (err) {
      call.emit("error", err);
      return;
    }
    for (const path of call.request.documents) noteRead(key, path);
    touch(key);
  }
  const proxy = Object.create(call);
  proxy.write = (message) => {
    if (replacement && message.transaction && message.transaction.length) {
      message.transaction = replacement;
    }
    return call.write(message);
  };
  proxy.end = () => call.end();
  original(proxy);
});

wrap("RunQuery", (original) => (call) => {
  // Query results inside a transaction are recorded in its read set (validated at commit);
  // they are not locked.
  const key = txKey(call.request.transaction);
  const proxy = Object.create(call);
  proxy.write = (message) => {
    const k = key || txKey(message.transaction);
    if (k && message.has_document) noteRead(k, message.document.name);
    return call.write(message);
  };
  proxy.end = () => call.end();
  original(proxy);
});

wrap("Rollback", (original) => (call, callback) => {
  release(txKey(call.request.transaction));
  original(call, callback);
});

function sameTimestamp(date, ts) {
  const seconds = Math.floor(date.getTime() / 1000);
  const nanos = date.getMilliseconds() * 1e6;
  return Number(ts.seconds) === seconds && Number(ts.nanos || 0) === nanos;
}

function checkPreconditions(writes) {
  for (const write of writes) {
    if (!write.has_current_document) continue;
    const path = write.has_delete ? write.delete : write.update.name;
    const doc = state.getDocument(path);
    const pre = write.current_document;
    if (pre.has_exists) {
      if (pre.exists && !doc.metadata.hasExist) {
        return grpcError(STATUS.NOT_FOUND, `no entity to update: ${path}`);
      }
      if (!pre.exists && doc.metadata.hasExist) {
        return grpcError(STATUS.ALREADY_EXISTS, `entity already exists: ${path}`);
      }
    }
    if (pre.has_update_time) {
      if (!doc.metadata.hasExist || !sameTimestamp(doc.metadata.updatedAt, pre.update_time)) {
        return grpcError(STATUS.FAILED_PRECONDITION, `the document was modified: ${path}`);
      }
    }
  }
  return null;
}

wrap("Commit", (original) => (call, callback) => {
  const key = txKey(call.request.transaction);
  if (key) {
    const tx = transactions.get(key);
    if (!tx) {
      callback(grpcError(STATUS.ABORTED, "transaction expired or unknown"));
      return;
    }
    {
      for (const [path, version] of tx.reads) {
        if ((versions.get(path) || 0) !== version) {
          release(key);
          callback(grpcError(STATUS.ABORTED, `transaction aborted: ${path} changed`));
          return;
        }
      }
    }
  }
  const failed = checkPreconditions(call.request.writes);
  if (failed) {
    if (key) release(key);
    callback(failed);
    return;
  }
  original(call, (err, response) => {
    if (key) release(key);
    callback(err, response);
  });
});

await server.start(port);
process.stderr.write(`firestore server listening on 127.0.0.1:${port}\n`);
process.on("SIGTERM", () => {
  server.stop();
  process.exit(0);
});
