"""The local stack's Firestore: the official emulator when one is installed, else the npm server.

    backend = choose_firestore(settings.firestore)      # "auto" | "official" | "npm"
    backend.start(children, port=..., project_id=..., functions_emulator=..., state_dir=...)
    backend.register_triggers(project_id)                # official: one catch-all trigger
    backend.describe()                                   # for the start-up line

Both report every committed document change as a `FirestoreChange` (kind, full document
name, serialized `DocumentEventData` with the value after and before), the data a
Firestore CloudEvent carries; the stack matches it against the manifest's patterns.

- `OfficialFirestore`: the Cloud Firestore emulator (Java) from the gcloud component
  `cloud-firestore-emulator`, or a jar firebase-tools downloaded. It evaluates
  firestore.rules for web-SDK traffic (Admin/server SDK traffic bypasses rules) and
  serves the web SDK. Changes come from its own trigger protocol: the stack registers one
  2nd-gen trigger for every document (`{path=**}`, `written`) and the emulator POSTs a
  CloudEvent per change to the stack's control server
  (`/functions/projects/{project}/triggers/{key}`, body = base64 DocumentEventData).
  Data persists across restarts through the emulator's export API and `--seed_from_export`.
- `NpmFirestore`: `@firestore-emulator/server` behind local_stack/firestore_server.mjs
  (gRPC only: no web SDK, no rules, data in memory), the fallback where no official
  emulator exists. Its change feed is one JSON line per change on stdout.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from local_stack import events
from local_stack.processes import Children, wait_port

log = logging.getLogger("local_stack.firestore")
ROOT = Path(__file__).resolve().parent.parent
GCLOUD_COMPONENT = Path("/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator")
MAIN_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"
TRIGGER_KEY = "local-stack-all-documents"
EXPORT_NAME = "firestore_export"


@dataclass(frozen=True)
class FirestoreChange:
    kind: str  # "create" | "update" | "delete"
    full_name: str  # projects/P/databases/D/documents/a/b
    data: bytes  # serialized google.events.cloud.firestore.v1.DocumentEventData


OnChange = Callable[[FirestoreChange], None]


@dataclass(frozen=True)
class StartOptions:
    port: int
    project_id: str
    functions_emulator: str  # host:port the official emulator POSTs trigger events to
    state_dir: Path
    persist: bool  # keep the data in state_dir across restarts (official emulator)
    fresh: bool  # start empty even if data was kept
    on_change: OnChange  # called for every committed document change (npm feed)


def change_from_event(headers: dict[str, str], body: bytes) -> FirestoreChange:
    """A FirestoreChange from one CloudEvent the official emulator POSTed (binary mode)."""
    from google.events.cloud.firestore_v1.types import DocumentEventData

    h = {k.lower(): v for k, v in headers.items()}
    data = base64.b64decode(body) if "protobuf" in h.get("content-type", "") else body
    parsed = DocumentEventData.deserialize(data)
    has_value, had_value = bool(parsed.value.name), bool(parsed.old_value.name)
    kind = "update" if has_value and had_value else "create" if has_value else "delete"
    full_name = (
        f"projects/{h['ce-project']}/databases/{h.get('ce-database', '(default)')}"
        f"/documents/{h['ce-document']}"
    )
    return FirestoreChange(kind, full_name, data)


# ---------------------------------------------------------------------------------------
# the official emulator
# ---------------------------------------------------------------------------------------
def _component_version(component_dir: Path) -> str:
    snapshot = component_dir.parent.parent / ".install" / "cloud-firestore-emulator.snapshot.json"
    try:
        comp = json.loads(snapshot.read_text())["components"][0]
        return str(comp["version"]["version_string"])
    except (OSError, KeyError, IndexError, ValueError):
        return "unknown version"


def find_official_emulator() -> tuple[list[str], str] | None:
    """(java command prefix, description) of an installed official emulator, or None.

    Looked for, in order: LOCAL_STACK_FIRESTORE_JAR; the gcloud component (Debian package
    google-cloud-cli-firestore-emulator, or under `gcloud`'s SDK); a jar firebase-tools
    cached in ~/.cache/firebase/emulators. Java (17 is enough for the jar) must be on PATH.
    """
    java = shutil.which("java")
    if java is None:
        return None
    jvm = [java, "-Duser.language=en"]
    explicit = os.environ.get("LOCAL_STACK_FIRESTORE_JAR")
    if explicit:
        return [
            *jvm,
            "-cp",
            explicit,
            MAIN_CLASS,
        ], f"official Cloud Firestore emulator ({explicit})"
    dirs = [GCLOUD_COMPONENT]
    gcloud = shutil.which("gcloud")
    if gcloud:
        dirs.append(Path(gcloud).resolve().parent.parent / "platform" / "cloud-firestore-emulator")
    for d in dirs:
        jar = d / "cloud-firestore-emulator.jar"
        if jar.exists():
            return (
                [*jvm, "-cp", str(jar), MAIN_CLASS],
                f"official Cloud Firestore emulator {_component_version(d)} (gcloud component)",
            )
    cached = sorted(
        (Path.home() / ".cache" / "firebase" / "emulators").glob("cloud-firestore-emulator-v*.jar")
    )
    if cached:
        return [
            *jvm,
            "-jar",
            str(cached[-1]),
        ], f"official Cloud Firestore emulator ({cached[-1].name})"
    return None


class OfficialFirestore:
    kind = "official"
    serves_web_sdk = True
    evaluates_rules = True

    def __init__(self, command: list[str], description: str, *, rules: Path | None):
        self.command = command
        self.description = description
        self.rules = rules
        self.host = ""
        self.project_id = ""
        self.startup_s = 0.0
        self._export_dir: Path | None = None
        self._dirty = threading.Event()
        self._export_lock = threading.Lock()  # the periodic export and the one at stop
        self._http = requests.Session()

    def describe(self) -> str:
        rules = f"firestore.rules loaded ({self.rules.name})" if self.rules else "no rules file"
        return f"{self.description}, {rules}"

    def start(self, children: Children, opts: StartOptions) -> None:
        port, project_id = opts.port, opts.project_id
        self.host, self.project_id = f"127.0.0.1:{port}", project_id
        export_dir = opts.state_dir / "firestore"
        if opts.fresh and export_dir.exists():
            shutil.rmtree(export_dir)
        args = [
            "start",
            "--host=127.0.0.1",
            f"--port={port}",
            f"--project_id={project_id}",
            "--single_project_mode=true",
            f"--functions_emulator={opts.functions_emulator}",
        ]
        if self.rules:
            args.append(f"--rules={self.rules}")
        seed = export_dir / EXPORT_NAME / f"{EXPORT_NAME}.overall_export_metadata"
        if opts.persist and seed.exists():
            args.append(f"--seed_from_export={seed}")
        self._export_dir = export_dir if opts.persist else None
        started = time.monotonic()
        proc = children.start("firestore", [*self.command, *args], stdout=subprocess.DEVNULL)
        _wait_http(
            f"http://{self.host}/", proc, what="the official Firestore emulator", timeout_s=90
        )
        self.startup_s = time.monotonic() - started

    def register_triggers(self) -> None:
        """One 2nd-gen `written` trigger for every document: the stack does the matching."""
        r = self._http.post(
            f"http://{self.host}/emulator/v1/projects/{self.project_id}/eventarcTrigger",
            params={"eventarcTriggerId": TRIGGER_KEY},
            json={
                "eventType": "google.cloud.firestore.document.v1.written",
                "database": "(default)",
                "namespace": "(default)",
                "document": {"value": "{path=**}", "matchType": "PATH_PATTERN"},
            },
            timeout=30,
        )
        r.raise_for_status()

    def changed(self) -> None:
        self._dirty.set()

    def export(self, *, always: bool = False) -> None:
        """Write the data to <state_dir>/firestore (replacing the last export) if it changed.

        `always` is for the export at stop: a write acknowledged just before the signal may
        not have reached us as a change event yet, so the dirty flag cannot be trusted then.
        """
        with self._export_lock:
            self._export(always)

    def _export(self, always: bool) -> None:
        if self._export_dir is None or not (always or self._dirty.is_set()):
            return
        self._dirty.clear()
        tmp = self._export_dir.with_name("firestore.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        r = self._http.post(
            f"http://{self.host}/emulator/v1/projects/{self.project_id}:export",
            json={
                "database": f"projects/{self.project_id}/databases/(default)",
                "export_directory": str(tmp),
                "export_name": EXPORT_NAME,
            },
            timeout=120,
        )
        r.raise_for_status()
        old = self._export_dir.with_name("firestore.old")
        shutil.rmtree(old, ignore_errors=True)
        if self._export_dir.exists():
            self._export_dir.rename(old)
        tmp.rename(self._export_dir)
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# the fallback: @firestore-emulator/server (npm)
# ---------------------------------------------------------------------------------------
class NpmFirestore:
    kind = "npm"
    serves_web_sdk = False
    evaluates_rules = False

    def __init__(self, *, tx_idle_ms: int = 10000):
        self.tx_idle_ms = tx_idle_ms
        self.host = ""
        self.startup_s = 0.0

    def describe(self) -> str:
        return (
            "fallback @firestore-emulator/server (npm; no official emulator installed): "
            "gRPC only (no web SDK), rules NOT evaluated, data in memory"
        )

    def start(self, children: Children, opts: StartOptions) -> None:
        port = opts.port
        self.host = f"127.0.0.1:{port}"
        node = shutil.which("node") or "node"
        started = time.monotonic()
        proc = children.start(
            "firestore",
            [node, str(ROOT / "local_stack" / "firestore_server.mjs"), str(port)],
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "LOCAL_FIRESTORE_TX_IDLE_MS": str(self.tx_idle_ms)},
        )
        wait_port(port, proc, what="the npm Firestore server")
        self.startup_s = time.monotonic() - started
        threading.Thread(
            target=self._feed, args=(proc, opts.on_change), name="firestore-feed", daemon=True
        ).start()

    @staticmethod
    def _feed(proc: subprocess.Popen[bytes], on_change: OnChange) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.strip():
                continue
            try:
                c = json.loads(line)
                data = events.document_event_data(c.get("value"), c.get("oldValue"))
                on_change(FirestoreChange(c["kind"], c["path"], data))
            except Exception:
                log.exception("bad firestore change line")

    def register_triggers(self) -> None:
        """Nothing to register: the change feed reports every document."""

    def changed(self) -> None:
        """Data is in memory only."""

    def export(self, *, always: bool = False) -> None:
        """Data is in memory only."""


FirestoreBackend = OfficialFirestore | NpmFirestore


def choose_firestore(
    wanted: str, *, rules: Path | None, tx_idle_ms: int = 10000
) -> FirestoreBackend:
    """`auto`: the official emulator when installed, else the npm server; or force one."""
    if wanted not in ("auto", "official", "npm"):
        raise ValueError(f"unknown Firestore backend {wanted!r}: use auto, official or npm")
    if wanted != "npm":
        found = find_official_emulator()
        if found is not None:
            return OfficialFirestore(found[0], found[1], rules=rules)
        if wanted == "official":
            raise RuntimeError(
                "the official Firestore emulator is not installed (gcloud component "
                "cloud-firestore-emulator, or LOCAL_STACK_FIRESTORE_JAR) or java is missing"
            )
    return NpmFirestore(tx_idle_ms=tx_idle_ms)


def _wait_http(url: str, proc: subprocess.Popen[bytes], *, what: str, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; see .local/stack/*.log")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer at {url} within {timeout_s}s")


__all__ = [
    "FirestoreBackend",
    "FirestoreChange",
    "NpmFirestore",
    "OfficialFirestore",
    "StartOptions",
    "change_from_event",
    "choose_firestore",
    "find_official_emulator",
]
