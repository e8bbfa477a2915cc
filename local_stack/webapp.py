"""Serves the reference web app (web/dist, built by scripts/setup.sh) on the local stack.

GET /                           the app (any path without a file falls back to index.html)
GET /__/firebase/init.json      the Firebase config, as Firebase Hosting serves it
GET /__/local-stack.json        the same plus the emulator addresses, read by the page
                                at run time (so one build works on any stack)
POST /__/local-stack/grant      {"uid", "amount"}: add tokens to a user, the way a
                                purchase webhook would (local stack only; the app's
                                developer panel uses it so a new user can try creations)
"""

from __future__ import annotations

import json
import mimetypes
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from local_stack.http_server import BackgroundServer

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "web" / "dist"
MAX_GRANT = 1000

Config = Callable[[], dict[str, Any]]
Grant = Callable[[str, int], int]


class WebAppServer:
    def __init__(
        self, config: Config, grant: Grant | None = None, *, dist: Path = DIST, port: int = 0
    ):
        if not (dist / "index.html").exists():
            raise FileNotFoundError(
                f"{dist}/index.html is missing: run scripts/setup.sh (builds web/)"
            )
        server = self

        class Handler(_Handler):
            app = server

        self.dist = dist.resolve()
        self.config = config
        self.grant = grant
        self._server = BackgroundServer(Handler, port=port, name="webapp")

    @property
    def url(self) -> str:
        return f"{self._server.base}/"

    def start(self) -> WebAppServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()


class _Handler(BaseHTTPRequestHandler):
    app: WebAppServer

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str, cache: str = "no-cache") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def do_GET(self) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        if path == "/__/firebase/init.json":
            self._json(200, self.app.config()["firebase"])
            return
        if path == "/__/local-stack.json":
            self._json(200, self.app.config())
            return
        file = (self.app.dist / path.lstrip("/")).resolve()
        if not file.is_relative_to(self.app.dist) or not file.is_file():
            if "." in Path(path).name:
                self._send(404, b"not found", "text/plain")
                return
            file = self.app.dist / "index.html"
        content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        # hashed build assets never change; index.html must be re-read
        cache = "public, max-age=31536000, immutable" if "/assets/" in path else "no-cache"
        self._send(200, file.read_bytes(), content_type, cache)

    def do_POST(self) -> None:
        if urllib.parse.urlsplit(self.path).path != "/__/local-stack/grant" or not self.app.grant:
            self._json(404, {"error": "not found"})
            return
        try:
            body = json.loads(
                self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}"
            )
            uid, amount = str(body["uid"]), int(body["amount"])
        except (KeyError, TypeError, ValueError):
            self._json(400, {"error": 'send {"uid": "...", "amount": N}'})
            return
        if not 0 < amount <= MAX_GRANT:
            self._json(400, {"error": f"amount must be 1..{MAX_GRANT}"})
            return
        self._json(200, {"uid": uid, "balance": self.app.grant(uid, amount)})
