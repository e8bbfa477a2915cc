"""The function host: imports functions/main.py and serves every function over HTTP.

Run as `python -m local_stack.host --port N` with the working directory at functions/
(the stack does this). It discovers functions exactly as the Firebase CLI does, through
the SDK's own `serving.get_functions()` and `functions_as_yaml()`, and exposes:

- GET  /__/functions.yaml           the manifest the CLI reads at deploy time
- GET  /__/health
- POST /<fn> or /<project>/<region>/<fn>
    event functions: a binary-mode CloudEvent (ce-* headers, body = data), as Eventarc
    delivers it; 204 when the function returned, 500 when it raised.
    callable / https / task / scheduled functions: the request is handed to the SDK's
    own wrapper unchanged (callable protocol, task payloads, scheduler headers).

It is a separate process so tests can SIGKILL it mid-job and start it again.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any
from urllib.parse import unquote

import yaml
from cloudevents.http import from_http
from flask import Flask, Response, request
from werkzeug.serving import make_server

log = logging.getLogger("local_stack.host")


def create_app() -> Flask:
    from firebase_functions.private import serving

    functions: dict[str, Any] = serving.get_functions()
    manifest_yaml = serving.functions_as_yaml(functions)
    manifest = yaml.safe_load(manifest_yaml)
    kinds = {
        name: ("event" if "eventTrigger" in spec else "http")
        for name, spec in manifest["endpoints"].items()
    }
    app = Flask("local_stack.host")

    @app.get("/__/functions.yaml")
    def functions_yaml() -> Response:
        return Response(manifest_yaml, mimetype="text/yaml")

    @app.get("/__/health")
    def health() -> Response:
        return Response("ok")

    def invoke(name: str) -> Any:
        fn = functions.get(name)
        if fn is None:
            return Response(f"no function named {name}", status=404)
        if kinds[name] == "http":
            return fn(request)
        content_type = request.headers.get("Content-Type", "")
        unmarshaller = None if "json" in content_type else (lambda body: body)
        # binary-mode attribute headers are percent-encoded (CloudEvents HTTP binding);
        # the cloudevents SDK does not decode them, the receiving runtime must
        headers = {
            k: unquote(v) if k.lower().startswith("ce-") else v for k, v in request.headers.items()
        }
        event = from_http(headers, request.get_data(), data_unmarshaller=unmarshaller)
        started = time.monotonic()
        try:
            fn(event)
        except Exception as exc:  # the event failed; Eventarc would record it, not retry
            log.exception("event function %s failed", name)
            return Response(f"{type(exc).__name__}: {exc}", status=500)
        return Response(
            status=204, headers={"X-Handler-Ms": f"{(time.monotonic() - started) * 1000:.1f}"}
        )

    app.add_url_rule(
        "/<name>", "invoke", invoke, methods=["POST", "GET", "PUT", "DELETE", "OPTIONS"]
    )
    app.add_url_rule(
        "/<project>/<region>/<name>",
        "invoke_qualified",
        lambda project, region, name: invoke(name),
        methods=["POST", "GET", "PUT", "DELETE", "OPTIONS"],
    )
    app.add_url_rule(
        "/<project>/<region>/<name>/<path:rest>",
        "invoke_with_path",
        lambda project, region, name, rest: invoke(name),
        methods=["POST", "GET", "PUT", "DELETE", "OPTIONS"],
    )
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s host %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    sys.path.insert(0, os.getcwd())
    app = create_app()
    server = make_server("127.0.0.1", args.port, app, threaded=True)
    print(f"function host listening on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
