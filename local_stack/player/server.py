"""A tiny static server for the player page (index.html + hls.js from node_modules).

The stream itself is not proxied: the page loads the master playlist from the URL on the
video document (`masterPlaylistUrl`). On the local stack that is the Storage server's
path-style URL, `http://127.0.0.1:<port>/<bucket>/streams/<id>/master.m3u8`, the same shape
as production's public bucket path or CDN base, so the relative URIs inside the playlists
resolve the same way; the Storage server answers with CORS `*` and each object's
Cache-Control.

    with PlayerServer() as player:
        print(player.url(doc["masterPlaylistUrl"]))   # open in a browser

`python -m local_stack.player.server [--port N]` serves it until Ctrl-C.
"""

from __future__ import annotations

import argparse
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from local_stack.http_server import BackgroundServer

ROOT = Path(__file__).resolve().parents[2]
PAGE = Path(__file__).resolve().parent / "index.html"
HLS_JS = ROOT / "node_modules" / "hls.js" / "dist" / "hls.min.js"

FILES = {
    "/": (PAGE, "text/html; charset=utf-8"),
    "/index.html": (PAGE, "text/html; charset=utf-8"),
    "/hls.min.js": (HLS_JS, "text/javascript; charset=utf-8"),
}


class PlayerServer:
    def __init__(self, port: int = 0):
        if not HLS_JS.exists():
            raise FileNotFoundError(f"{HLS_JS} is missing: run scripts/setup.sh (npm ci)")
        self._server = BackgroundServer(_Handler, port=port, name="player")

    @property
    def base(self) -> str:
        return self._server.base

    def url(self, src: str | None = None, **params: Any) -> str:
        """The page URL; `src` = a master playlist URL, params e.g. level=1080, rate=2."""
        query = {k: str(v) for k, v in {"src": src, **params}.items() if v is not None}
        return f"{self.base}/?{urllib.parse.urlencode(query)}" if query else f"{self.base}/"

    def start(self) -> PlayerServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> PlayerServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        entry = FILES.get(path)
        if entry is None:
            self.send_error(404)
            return
        body = entry[0].read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", entry[1])
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    with PlayerServer(args.port) as player:
        print(f"player page: {player.url()}?src=<masterPlaylistUrl>", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
