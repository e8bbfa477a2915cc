"""A fake of the generation providers' HTTP APIs, good enough for their official SDKs.

One threaded stdlib HTTP server on 127.0.0.1 answers like:

- Replicate: ``POST /v1/models/{owner}/{name}/predictions``, ``POST /v1/predictions``
  (by version), ``GET /v1/predictions/{id}``, ``POST /v1/predictions/{id}/cancel``.
  A prediction goes starting -> processing -> succeeded after ``polls_until_done``
  polls; its output URLs are served by this server (``/files/...``) and return a real
  PNG (Pillow) or a real H.264/AAC MP4 (ffmpeg).
- OpenAI: ``POST /v1/images/generations`` (``b64_json``, or ``url`` when asked).
- Veo through google-genai in Vertex express mode (api key):
  ``POST /v1beta1/publishers/google/models/{model}:predictLongRunning`` and
  ``POST /v1beta1/.../models/{model}:fetchPredictOperation`` (video bytes inline).
- Plain helpers for URL-fetching tests: ``/blob?size=N[&nolength=1]`` (N bytes),
  ``/redirect?to=URL[&code=302]``, ``/status/{code}``, ``/files/...``.

Scenarios. A marker in the prompt applies to that request (and its prediction or
operation); ``api.fail_next(name, times=1)`` applies to the next ``times`` create
requests whatever their prompt. Names:

- ``nsfw``       Replicate: the prediction fails with an NSFW error; OpenAI: 400
                 content_policy_violation; Veo: the operation ends with every video
                 filtered by the safety filters.
- ``429``        the create request answers 429 with ``Retry-After: 1``.
- ``500``        the create request answers 500.
- ``hang``       the create request answers only after ``hang_s`` seconds (longer than
                 the client's timeout).
- ``slow``       Replicate / Veo: the prediction or operation never finishes (until a
                 Replicate prediction is canceled).
- ``malformed``  the create request answers 200/201 with a body that is not JSON.
- ``expired``    the output URL answers 404 (Replicate / OpenAI url output).
- ``aborted``    Replicate: the prediction ends with status ``aborted``.
- ``fail``       Replicate: the prediction fails with a model error; Veo: the
                 operation ends with ``error {code: 13}``.

In the prompt, write ``[api:NAME]`` (e.g. ``"a cat [api:nsfw]"``).

Published schemas. Every create request is checked against the published schema of the
model it names (providers/model_schemas.py; the Replicate create envelope below) before
any scenario: a violation gets the provider's real error answer (tests/fakes/schema_check.py:
Replicate 422 problem details, OpenAI 400 ``invalid_request_error``, Vertex 400
``INVALID_ARGUMENT``), a model without a schema gets the provider's "not found". A field the
provider would silently ignore (an unknown Replicate input, a Vertex parameter) is accepted,
as in production, and recorded in ``api.ignored_fields``: the test fixtures fail a test
that sent one (``api.take_ignored_fields()``), since in production it would never reach
the model.

Prediction events. A Replicate prediction moves starting -> processing -> a terminal
status as it is polled (``advance``); each step is published to the listeners added with
``api.on_prediction_event(listener)`` as Replicate's webhook events ("start", "logs",
"output", "completed") with the prediction JSON a webhook would carry, and the create
request's ``webhook`` / ``webhook_events_filter`` are kept on the prediction: what a
sender of signed webhook callbacks needs.

Signed callbacks (docs/webhooks.md). A Replicate prediction created with a ``webhook``
runs by itself (no polling needed) and, once it ends, is POSTed to that URL as Replicate
does: the prediction JSON, signed with the Standard Webhooks scheme (``webhook-id``,
``webhook-timestamp``, ``webhook-signature``) under ``api.webhook_secret`` (also served at
``GET /v1/webhooks/default/secret``), retried with the same ``webhook-id`` while the
receiver fails or cannot be reached. Callback scenarios (prompt markers, as above):

- ``twice``      the callback is delivered twice (same ``webhook-id``).
- ``late``       the callback is sent ``late_s`` seconds after the prediction ended.
- ``never``      the prediction ends but no callback is ever sent (the reconciler's case).
- ``hold``       the prediction keeps running until ``api.release(prompt)``.
- ``slow-create`` the prediction is created at once but the create request is answered
                 only after ``hang_s`` seconds (a caller that dies meanwhile never learns its id).

Every callback attempt is recorded in ``api.callbacks`` (webhook id, URL, HTTP status).

Every request is recorded (method, path, query, json, headers) in ``api.requests``.

    with FakeProviderAPI() as api:
        api.base_url        # http://127.0.0.1:PORT
        api.env()           # LOCAL_PROVIDER_HOSTS / *_BASE_URL for the SDKs
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image, ImageDraw
from standardwebhooks.webhooks import Webhook

from providers.model_schemas import ModelSchema, schema_for
from tests.fakes import schema_check

_MARKER = re.compile(r"\[api:([a-z0-9-]+)\]")
_ASPECTS = {"16:9": (256, 144), "9:16": (144, 256), "1:1": (192, 192)}
_VIDEO_CACHE: dict[tuple[int, int, float], bytes] = {}
_VIDEO_LOCK = threading.Lock()
_TERMINAL = ("succeeded", "failed", "canceled", "aborted")
# The create-prediction body (Replicate's OpenAPI `schemas_prediction_request`: unknown
# top-level properties are refused since 2024-05, see
# https://replicate.com/changelog/2024-05-01-improved-validation-for-api-prediction-payloads).
_EVENTS = ["start", "output", "logs", "completed"]
REPLICATE_CREATE: dict[str, Any] = {
    "type": "object",
    "required": ["input"],
    "additionalProperties": False,
    "properties": {
        "input": {"type": "object"},
        "stream": {"type": "boolean"},
        "webhook": {"type": "string", "format": "uri"},
        "webhook_completed": {"type": "string", "format": "uri"},
        "webhook_events_filter": {"type": "array", "items": {"type": "string", "enum": _EVENTS}},
    },
}
REPLICATE_CREATE_BY_VERSION = {
    **REPLICATE_CREATE,
    "required": ["version", "input"],
    "properties": {**REPLICATE_CREATE["properties"], "version": {"type": "string"}},
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    json: Any
    headers: dict[str, str]


@dataclass(frozen=True)
class IgnoredField:
    """A field a provider accepts and silently ignores (it would never reach the model)."""

    api: str
    model: str
    field: str


@dataclass
class FakePrediction:
    """A Replicate prediction or a Veo operation."""

    id: str
    kind: str  # "image" | "video"
    scenario: str | None
    model: str
    input: dict[str, Any]
    schema: ModelSchema | None = None
    polls: int = 0
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    completed_at: str | None = None  # fixed the first time it is seen finished, as Replicate's
    canceled: bool = False
    status: str = "starting"
    webhook: str | None = None
    webhook_events_filter: list[str] | None = None
    released: threading.Event = field(default_factory=threading.Event)  # for ``hold``
    answered: threading.Event = field(default_factory=threading.Event)  # create answered
    started: float = field(default_factory=time.monotonic)
    # set once the output media exists: a prediction is not reported finished before, so no
    # answer (a poll, a download) waits for ffmpeg, however busy the machine is
    rendered: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class CallbackAttempt:
    """One POST of a signed callback to a prediction's webhook."""

    webhook_id: str
    url: str
    prediction_id: str
    status: int  # the receiver's HTTP status; 0 when it could not be reached
    seconds: float = 0.0  # how long the receiver took to answer


@dataclass(frozen=True)
class PredictionEvent:
    """One of Replicate's webhook events for a prediction, with the body a webhook carries."""

    name: str  # "start" | "logs" | "output" | "completed"
    prediction: FakePrediction
    body: dict[str, Any]


def make_png(width: int, height: int, text: str = "") -> bytes:
    img = Image.new("RGB", (width, height), (30, 90, 160))
    draw = ImageDraw.Draw(img)
    draw.ellipse((width * 0.2, height * 0.2, width * 0.8, height * 0.8), fill=(240, 180, 40))
    if text:
        draw.text((4, 4), text[:30], fill=(255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def make_mp4(width: int = 160, height: int = 90, duration_s: float = 1.0) -> bytes:
    """A real H.264 + AAC MP4 (cached: made once per size per process)."""
    key = (width, height, duration_s)
    with _VIDEO_LOCK:
        if key not in _VIDEO_CACHE:
            from media.process import run_ffmpeg

            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "v.mp4"
                run_ffmpeg(
                    [
                        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=24",
                        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
                        "-t", str(duration_s), "-c:v", "libx264", "-preset", "ultrafast",
                        "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2",
                        "-movflags", "+faststart", str(out),
                    ],
                    timeout_s=60,
                )  # fmt: skip
                _VIDEO_CACHE[key] = out.read_bytes()
        return _VIDEO_CACHE[key]


class FakeProviderAPI:
    def __init__(
        self,
        *,
        polls_until_done: int = 2,
        hang_s: float = 5.0,
        video_size: tuple[int, int] = (160, 90),
        video_duration_s: float | None = None,
        late_s: float = 3.0,
        run_s: float = 0.0,
        callback_retry_s: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0),
    ) -> None:
        self.polls_until_done = polls_until_done
        self.late_s = late_s
        self.run_s = run_s  # a prediction runs at least this long (the benchmark's stand-in)
        self.callback_retry_s = callback_retry_s
        self.webhook_secret = "whsec_" + base64.b64encode(uuid.uuid4().bytes * 2).decode()
        self.callbacks: list[CallbackAttempt] = []
        self.hang_s = hang_s
        self.video_size = video_size
        self.video_duration_s = video_duration_s  # None: as long as the request asks
        self.requests: list[RecordedRequest] = []
        self.ignored_fields: list[IgnoredField] = []
        self._jobs: dict[str, FakePrediction] = {}
        self._listeners: list[Callable[[PredictionEvent], None]] = []
        self._forced: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> FakeProviderAPI:
        api = self

        class Handler(_Handler):
            fake = api

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeProviderAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}"

    def env(self) -> dict[str, str]:
        """Environment that points the SDKs and safe_fetch at this server."""
        return {
            "LOCAL_PROVIDER_HOSTS": self.host,
            "REPLICATE_BASE_URL": self.base_url,
            "OPENAI_BASE_URL": f"{self.base_url}/v1",
            "GEMINI_BASE_URL": self.base_url,
        }

    # --- scenario controls -------------------------------------------------------------
    def fail_next(self, scenario: str, times: int = 1) -> None:
        with self._lock:
            self._forced.extend([scenario] * times)

    def clear(self) -> None:
        with self._lock:
            self._forced.clear()
            self.requests.clear()
            self.ignored_fields.clear()

    def release(self, prompt: str) -> None:
        """Let the ``hold`` predictions for this prompt end."""
        for job in self.predictions_for(prompt):
            job.released.set()

    def creates_for(self, prompt: str) -> int:
        """How many predictions were created for this prompt (what the provider bills)."""
        return len(self.predictions_for(prompt))

    def callbacks_for(self, prediction_id: str) -> list[CallbackAttempt]:
        with self._lock:
            return [c for c in self.callbacks if c.prediction_id == prediction_id]

    def mark(self) -> tuple[int, int]:
        """Where the records stand now (for `diagnosis` of what happened since)."""
        with self._lock:
            return len(self._jobs), len(self.callbacks)

    def diagnosis(self, since: tuple[int, int] = (0, 0)) -> str:
        """The predictions created and the callbacks sent since `since` (a `mark`), and the
        forced scenarios still queued: what a failed test's report shows."""
        with self._lock:
            jobs = list(self._jobs.values())[since[0] :]
            callbacks = self.callbacks[since[1] :]
            forced = list(self._forced)
        lines = [f"prediction {j.id} {j.kind} scenario={j.scenario} status={j.status} "
                 f"answered={j.answered.is_set()} webhook={bool(j.webhook)} "
                 f"prompt={(_prompt_of(j) or '')[:60]!r}" for j in jobs]  # fmt: skip
        lines += [f"callback {c.prediction_id} {c.webhook_id} -> {c.status} "
                  f"in {c.seconds:.2f} s" for c in callbacks]  # fmt: skip
        lines.append(f"forced scenarios still queued: {forced}")
        return "\n".join(lines)

    def take_ignored_fields(self) -> list[IgnoredField]:
        """The ignored fields recorded since the last call (and forget them)."""
        with self._lock:
            taken, self.ignored_fields = self.ignored_fields, []
        return taken

    def on_prediction_event(self, listener: Callable[[PredictionEvent], None]) -> None:
        """Call `listener` for every webhook event of every prediction (see the docstring)."""
        with self._lock:
            self._listeners.append(listener)

    def advance(self, job: FakePrediction, body: dict[str, Any]) -> None:
        """Publish the events of a prediction whose JSON is now `body` (status changes)."""
        events: list[str] = []
        if job.status == "starting" and body["status"] != "starting":
            events.append("start")
        if body.get("logs") and body["status"] == "processing" and job.status != "processing":
            events.append("logs")
        if body["status"] in _TERMINAL and job.status not in _TERMINAL:
            events += ["output", "completed"] if body.get("output") else ["completed"]
        job.status = str(body["status"])
        with self._lock:
            listeners = list(self._listeners)
        for name in events:
            for listener in listeners:
                listener(PredictionEvent(name, job, body))

    def requests_to(self, path_part: str, method: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if path_part in r.path and (method is None or r.method == method)
            ]

    def predictions_for(self, prompt: str) -> list[FakePrediction]:
        """The predictions / operations created for this prompt (canceled or not)."""
        with self._lock:
            return [j for j in self._jobs.values() if _prompt_of(j) == prompt]

    def finish_slow(self, marker: str) -> int:
        """Let the `slow` predictions whose prompt contains `marker` finish (at their next
        poll); how many there were."""
        with self._lock:
            slow = [
                j for j in self._jobs.values()
                if j.scenario == "slow" and marker in (_prompt_of(j) or "")
            ]  # fmt: skip
            for job in slow:
                job.scenario = None
        return len(slow)

    def _scenario_for_create(self, prompt: str) -> str | None:
        with self._lock:
            if self._forced:
                return self._forced.pop(0)
        m = _MARKER.search(prompt or "")
        return m.group(1) if m else None

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(req)

    def _record_ignored(self, schema: ModelSchema, fields: list[str]) -> None:
        with self._lock:
            self.ignored_fields += [IgnoredField(schema.api, schema.model, f) for f in fields]

    def _new_job(
        self, schema: ModelSchema, scenario: str | None, inp: dict[str, Any], **extra: Any
    ) -> FakePrediction:
        job = FakePrediction(
            id=uuid.uuid4().hex[:20], kind=schema.kind, scenario=scenario, model=schema.model,
            input=inp, schema=schema, **extra,
        )  # fmt: skip
        with self._lock:
            self._jobs[job.id] = job
        if job.kind == "video" and scenario not in ("fail", "nsfw", "aborted"):
            threading.Thread(target=self._render, args=(job,), daemon=True).start()
        else:
            job.rendered.set()
        return job

    def _render(self, job: FakePrediction) -> None:
        try:
            self.video_bytes(_requested_seconds(job))
        finally:
            job.rendered.set()

    def video_bytes(self, requested_s: float) -> bytes:
        w, h = self.video_size
        return make_mp4(w, h, self.video_duration_s or requested_s)

    # --- webhook predictions: they run by themselves and call back ----------------------------
    def _run_with_callback(self, job: FakePrediction) -> None:
        job.rendered.wait()
        job.answered.wait(self.hang_s + 30)  # never before its creator could know the id
        self._sleep(job.started + self.run_s - time.monotonic())
        while job.scenario == "hold" and not job.released.wait(0.2):
            if self._stop.is_set():
                return
        job.polls = max(job.polls, self.polls_until_done)
        body = self.prediction_json(job)
        self.advance(job, body)
        if job.scenario == "never" or job.webhook is None:
            return
        if job.webhook_events_filter and "completed" not in job.webhook_events_filter:
            return
        if job.scenario == "late":
            self._sleep(self.late_s)
        webhook_id = f"msg_{uuid.uuid4().hex}"
        copies = 2 if job.scenario == "twice" else 1
        for _ in range(copies):
            self._post_callback(job, webhook_id, body)

    def _post_callback(self, job: FakePrediction, webhook_id: str, body: dict[str, Any]) -> None:
        """POST one signed callback, retried (same webhook id) while the receiver fails."""
        assert job.webhook is not None
        data = json.dumps(body)
        for wait in (*self.callback_retry_s, None):
            if self._stop.is_set():
                return
            signature = Webhook(self.webhook_secret).sign(webhook_id, datetime.now(UTC), data)
            headers = {
                "Content-Type": "application/json",
                "webhook-id": webhook_id,
                "webhook-timestamp": str(int(time.time())),
                "webhook-signature": signature,
            }
            req = urllib.request.Request(job.webhook, data=data.encode(), headers=headers)
            sent = time.monotonic()
            try:
                with urllib.request.urlopen(req, timeout=120) as resp:
                    status = int(resp.status)
            except urllib.error.HTTPError as err:
                status = int(err.code)
            except OSError:
                status = 0
            with self._lock:
                self.callbacks.append(CallbackAttempt(webhook_id, job.webhook, job.id, status,
                                                      time.monotonic() - sent))  # fmt: skip
            if 200 <= status < 300 or 400 <= status < 500 or wait is None:
                return
            self._sleep(wait)

    def prediction_json(self, job: FakePrediction) -> dict[str, Any]:
        """The prediction as Replicate would report it now."""
        base = self.base_url
        versions = job.schema.versions if job.schema else ()
        pred: dict[str, Any] = {
            "id": job.id,
            "model": job.model,
            "version": versions[0] if versions else "",
            "input": job.input,
            "logs": "",
            "output": None,
            "data_removed": False,
            "error": None,
            "status": "starting",
            "created_at": job.created_at,
            "urls": {
                "cancel": f"{base}/v1/predictions/{job.id}/cancel",
                "get": f"{base}/v1/predictions/{job.id}",
                "web": f"https://replicate.com/p/{job.id}",
            },
        }
        if job.canceled:
            pred["status"] = "canceled"
            return pred
        if job.polls == 0:
            return pred
        if (
            job.polls < self.polls_until_done
            or job.scenario == "slow"
            or (job.scenario == "hold" and not job.released.is_set())
            or time.monotonic() - job.started < self.run_s
            or not job.rendered.is_set()
        ):
            pred["status"] = "processing"
            pred["logs"] = "Using seed: 42\n 50%|█████     | 2/4\n"
            return pred
        if job.completed_at is None:
            job.completed_at = time.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        pred["completed_at"] = job.completed_at
        if job.scenario == "nsfw":
            pred["status"] = "failed"
            pred["error"] = (
                "NSFW content detected. Try running it again, or try a different prompt."
            )
            return pred
        if job.scenario == "fail":
            pred["status"] = "failed"
            pred["error"] = "CUDA error: an illegal memory access was encountered"
            return pred
        if job.scenario == "aborted":
            pred["status"] = "aborted"
            return pred
        pred["status"] = "succeeded"
        pred["metrics"] = {"predict_time": 0.42, "total_time": 0.5}
        tag = f"{job.id}-{job.scenario or 'ok'}"
        if job.kind == "video":
            url = f"{base}/files/{tag}-{int(job.input.get('duration', 5))}s.mp4"
        else:
            aspect = str(job.input.get("aspect_ratio", "1:1"))
            url = f"{base}/files/{tag}-{aspect.replace(':', 'x')}.png"
        pred["output"] = [url] if job.schema and job.schema.output == "uri-list" else url
        return pred

    def _job(self, job_id: str) -> FakePrediction | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stop.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeProviderAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def handle(self) -> None:
        # clients time out or drop keep-alive connections on purpose in these tests
        with contextlib.suppress(ConnectionResetError, BrokenPipeError, TimeoutError):
            super().handle()

    # --- plumbing ---------------------------------------------------------------------
    def _read_json(self) -> Any:
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return {"_raw": raw.decode(errors="replace")}

    def _send(
        self,
        status: int,
        body: bytes | str | Any,
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        if isinstance(body, str):
            data = body.encode()
        elif isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query)
        body = self._read_json() if self.command in ("POST", "PUT", "PATCH") else None
        self.fake._record(
            RecordedRequest(
                method=self.command,
                path=path,
                query=query,
                json=body,
                headers={k.lower(): v for k, v in self.headers.items()},
            )
        )
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._route(path, query, body)

    do_GET = _handle
    do_POST = _handle
    do_HEAD = _handle

    def _route(self, path: str, query: dict[str, list[str]], body: Any) -> None:
        m = re.fullmatch(r"/v1/models/([^/]+)/([^/]+)/predictions", path)
        if m and self.command == "POST":
            return self._replicate_create(f"{m.group(1)}/{m.group(2)}", body)
        if path == "/v1/predictions" and self.command == "POST":
            return self._replicate_create(None, body)
        m = re.fullmatch(r"/v1/predictions/([^/]+)/cancel", path)
        if m and self.command == "POST":
            return self._replicate_cancel(m.group(1))
        m = re.fullmatch(r"/v1/predictions/([^/]+)", path)
        if m and self.command == "GET":
            return self._replicate_get(m.group(1))
        if path == "/v1/webhooks/default/secret" and self.command == "GET":
            return self._send(200, {"key": self.fake.webhook_secret})
        if path == "/v1/images/generations" and self.command == "POST":
            return self._openai_generate(body)
        m = re.fullmatch(r"/v1beta1/(?:.*/)?models/([^/:]+):predictLongRunning", path)
        if m and self.command == "POST":
            return self._veo_create(m.group(1), body)
        m = re.fullmatch(r"/v1beta1/(?:.*/)?models/([^/:]+):fetchPredictOperation", path)
        if m and self.command == "POST":
            return self._veo_get(body)
        m = re.fullmatch(r"/files/([^/]+)\.(png|mp4)", path)
        if m:
            return self._file(m.group(1), m.group(2))
        if path == "/blob":
            return self._blob(query)
        if path == "/redirect":
            to = (query.get("to") or [""])[0]
            code = int((query.get("code") or ["302"])[0])
            return self._send(code, b"", content_type="text/plain", headers={"Location": to})
        m = re.fullmatch(r"/status/(\d{3})", path)
        if m:
            code = int(m.group(1))
            headers = {"Retry-After": "2"} if code in (429, 503) else None
            return self._send(code, {"status": code}, headers=headers)
        return self._send(404, {"detail": f"no route for {self.command} {path}"})

    # --- common failure answers -------------------------------------------------------------
    def _create_failure(self, scenario: str | None, flavour: str) -> bool:
        """Answer a create request per scenario; True if answered."""
        if scenario == "429":
            if flavour == "replicate":
                detail = "Request was throttled. Your rate limit resets in ~1s."
                body: Any = {"title": "Request was throttled", "detail": detail, "status": 429}
            elif flavour == "veo":
                body = {"error": {"code": 429, "message": "Resource exhausted.",
                                  "status": "RESOURCE_EXHAUSTED"}}  # fmt: skip
            else:
                body = {"error": {"message": "Rate limit reached for images", "type": "requests",
                                  "param": None, "code": "rate_limit_exceeded"}}  # fmt: skip
            self._send(429, body, headers={"Retry-After": "1"})
        elif scenario == "500":
            if flavour == "replicate":
                body = {
                    "title": "Internal server error",
                    "detail": "Something broke",
                    "status": 500,
                }
            else:
                body = {"error": {"message": "The server had an error.", "code": 500,
                                  "status": "INTERNAL", "type": "server_error"}}  # fmt: skip
            self._send(500, body)
        elif scenario == "hang":
            self.fake._sleep(self.fake.hang_s)
            self._send(503, {"detail": "too late"})
        elif scenario == "malformed":
            self._send(201 if flavour == "replicate" else 200, '{"id": "abc", "status": "star')
        else:
            return False
        return True

    # --- Replicate ------------------------------------------------------------------------
    def _replicate_create(self, model: str | None, body: Any) -> None:
        body = body if isinstance(body, dict) else {}
        envelope = REPLICATE_CREATE if model else REPLICATE_CREATE_BY_VERSION
        problems = schema_check.check(body, envelope).violations
        if problems:
            return self._send(422, schema_check.replicate_problem(problems))
        schema = schema_for(model or str(body["version"]))
        if schema is None or schema.api != "replicate":
            if model is None:
                return self._send(422, {
                    "title": "Invalid version or not permitted", "status": 422,
                    "detail": "The specified version does not exist (or perhaps you don't "
                    "have permission to use it?)",
                })  # fmt: skip
            return self._send(404, {"title": "Not found", "status": 404,
                                    "detail": f"Model {model} not found."})  # fmt: skip
        inp = dict(body["input"])
        report = schema_check.check(inp, schema.schema, ("input",))
        if report.violations:
            return self._send(422, schema_check.replicate_problem(report.violations))
        self.fake._record_ignored(schema, report.ignored)
        scenario = self.fake._scenario_for_create(str(inp.get("prompt", "")))
        if self._create_failure(scenario, "replicate"):
            return
        job = self.fake._new_job(
            schema, scenario, inp,
            webhook=body.get("webhook"), webhook_events_filter=body.get("webhook_events_filter"),
        )  # fmt: skip
        if job.webhook:
            threading.Thread(target=self.fake._run_with_callback, args=(job,), daemon=True).start()
        if scenario == "slow-create":  # created, but the answer comes late (kill the caller)
            self.fake._sleep(self.fake.hang_s)
        try:
            self._send(201, self._prediction_json(job))
        finally:
            job.answered.set()

    def _replicate_get(self, job_id: str) -> None:
        job = self.fake._job(job_id)
        if job is None:
            return self._send(404, {"title": "Not found", "detail": "Not found.", "status": 404})
        job.polls += 1
        pred = self._prediction_json(job)
        self.fake.advance(job, pred)
        self._send(200, pred)

    def _replicate_cancel(self, job_id: str) -> None:
        job = self.fake._job(job_id)
        if job is None:
            return self._send(404, {"detail": "Not found.", "status": 404})
        job.canceled = True
        pred = self._prediction_json(job)
        self.fake.advance(job, pred)
        self._send(200, pred)

    def _prediction_json(self, job: FakePrediction) -> dict[str, Any]:
        return self.fake.prediction_json(job)

    def _file(self, tag: str, ext: str) -> None:
        if tag.split("-")[1:2] == ["expired"]:
            return self._send(404, "<Error><Code>NoSuchKey</Code></Error>",
                              content_type="application/xml")  # fmt: skip
        if ext == "mp4":
            seconds = float(tag.rsplit("-", 1)[-1].rstrip("s"))
            return self._send(200, self.fake.video_bytes(seconds), content_type="video/mp4")
        aspect = tag.rsplit("-", 1)[-1].replace("x", ":")
        w, h = _ASPECTS.get(aspect, (192, 192))
        self._send(200, make_png(w, h, tag), content_type="image/png")

    # --- OpenAI ---------------------------------------------------------------------------
    def _openai_generate(self, body: Any) -> None:
        body = body if isinstance(body, dict) else {}
        model = str(body.get("model") or "dall-e-2")
        schema = schema_for(model)
        if schema is None or schema.api != "openai":
            err = {"message": f"The model `{model}` does not exist or you do not have access "
                   "to it.", "type": "invalid_request_error", "param": None,
                   "code": "model_not_found"}  # fmt: skip
            return self._send(404, {"error": err})
        report = schema_check.check(body, schema.schema)
        if report.violations:
            return self._send(400, schema_check.openai_error(report.violations[0]))
        prompt = str(body.get("prompt", ""))
        scenario = self.fake._scenario_for_create(prompt)
        if scenario == "nsfw":
            model = str(body.get("model", ""))
            code = (
                "moderation_blocked"
                if model.startswith("gpt-image")
                else "content_policy_violation"
            )
            err = {
                "message": "Your request was rejected as a result of our safety system.",
                "type": "image_generation_user_error",
                "param": None,
                "code": code,
            }
            return self._send(400, {"error": err})
        if self._create_failure(scenario, "openai"):
            return
        size = str(body.get("size") or "1024x1024")
        try:
            w, h = (int(x) for x in size.split("x"))
        except ValueError:
            w, h = 1024, 1024
        png = make_png(max(1, w // 8), max(1, h // 8), prompt)
        item: dict[str, Any] = {"revised_prompt": None}
        if body.get("response_format") == "url":
            tag = f"{uuid.uuid4().hex[:12]}-{scenario or 'ok'}"
            item["url"] = f"{self.fake.base_url}/files/{tag}-1x1.png"
        else:
            item["b64_json"] = base64.b64encode(png).decode()
        answer = {
            "created": int(time.time()),
            "data": [item],
            "usage": {
                "input_tokens": 10,
                "input_tokens_details": {"image_tokens": 0, "text_tokens": 10},
                "output_tokens": 100,
                "total_tokens": 110,
            },
        }
        self._send(200, answer, headers={"x-request-id": "req_fake"})

    # --- Veo (google-genai, Vertex express mode) -------------------------------------------
    def _veo_create(self, model: str, body: Any) -> None:
        body = body if isinstance(body, dict) else {}
        schema = schema_for(model)
        if schema is None or schema.api != "veo":
            name = f"projects/fake/locations/us-central1/publishers/google/models/{model}"
            err = {"code": 404, "message": f"Publisher Model `{name}` not found.",
                   "status": "NOT_FOUND"}  # fmt: skip
            return self._send(404, {"error": err})
        report = schema_check.check(body, schema.schema)
        if report.violations:
            return self._send(400, schema_check.veo_error(report.violations))
        self.fake._record_ignored(schema, report.ignored)
        prompt = str(body["instances"][0].get("prompt", ""))
        scenario = self.fake._scenario_for_create(prompt)
        if self._create_failure(scenario, "veo"):
            return
        job = self.fake._new_job(schema, scenario, body)
        prefix = "projects/fake/locations/us-central1/publishers/google/models"
        name = f"{prefix}/{model}/operations/{job.id}"
        self._send(200, {"name": name})

    def _veo_get(self, body: Any) -> None:
        name = str((body or {}).get("operationName", ""))
        job = self.fake._job(name.rsplit("/", 1)[-1])
        if job is None:
            err = {"code": 404, "message": "Operation not found", "status": "NOT_FOUND"}
            return self._send(404, {"error": err})
        job.polls += 1
        if (
            job.polls < self.fake.polls_until_done
            or job.scenario == "slow"
            or not job.rendered.is_set()
        ):
            return self._send(200, {"name": name, "done": False})
        if job.scenario == "fail":
            err = {"code": 13, "message": "Internal error while generating the video."}
            return self._send(200, {"name": name, "done": True, "error": err})
        response: dict[str, Any] = {
            "@type": "type.googleapis.com/cloud.ai.large_models.vision.GenerateVideoResponse"
        }
        if job.scenario == "nsfw":
            response["raiMediaFilteredCount"] = 1
            response["raiMediaFilteredReasons"] = [
                "Your prompt violates our usage guidelines (safety filter)."
            ]
        else:
            mp4 = self.fake.video_bytes(float(job.input["parameters"]["durationSeconds"]))
            response["videos"] = [
                {"bytesBase64Encoded": base64.b64encode(mp4).decode(), "mimeType": "video/mp4"}
            ]
        self._send(200, {"name": name, "done": True, "response": response})

    # --- helpers for fetch tests ----------------------------------------------------------
    def _blob(self, query: dict[str, list[str]]) -> None:
        size = int((query.get("size") or ["1024"])[0])
        nolength = bool(query.get("nolength"))
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if nolength:
                self.send_header("Connection", "close")
                self.close_connection = True
            else:
                self.send_header("Content-Length", str(size))
            self.end_headers()
            for chunk in _chunks(size):
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass


def _requested_seconds(job: FakePrediction) -> float:
    """The video length a prediction asks for (Replicate `duration`, Veo `durationSeconds`)."""
    if job.schema is not None and job.schema.api == "veo":
        return float(job.input["parameters"]["durationSeconds"])
    return float(int(job.input.get("duration", 5)))


def _prompt_of(job: FakePrediction) -> str | None:
    if "instances" in job.input:  # a Veo operation
        return job.input["instances"][0].get("prompt")
    return job.input.get("prompt")


def _chunks(size: int, step: int = 64 * 1024) -> Iterator[bytes]:
    block = b"\x00" * step
    sent = 0
    while sent < size:
        n = min(step, size - sent)
        yield block[:n]
        sent += n
