"""The creations HTTP API (`generateapi`), for clients that don't use the Firebase SDK.

It routes `/api/generate/...` (a Hosting rewrite) or the function URL's own paths to the
operations the callables run (creations/create.py, drafts.py), with a Firebase ID token as
`Authorization: Bearer`, and answers each refusal with its HTTP status and the callable
protocol's error body. The routes, statuses and bodies: docs/creations.md, "API".
"""

from __future__ import annotations

import json
import re
from typing import Any

from firebase_admin import auth as admin_auth
from firebase_functions import logger, options
from flask import Request, Response

from core import app_check
from core.clients import init_app
from core.operations import BadRequest, Code, NotFound, OperationError, Unauthenticated
from core.vocabulary import ID_CHARS
from creations import create, drafts

FUNCTION_NAME = "generateapi"
# Browser clients on other origins: bearer tokens, no cookies, so any origin may call.
CORS = options.CorsOptions(cors_origins="*", cors_methods=["get", "post", "delete"])
PREFIX = "/api/generate"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/video/?$"), "create"),
    ("GET", re.compile(r"^/drafts/?$"), "list"),
    ("GET", re.compile(rf"^/video/(?P<id>{ID_CHARS})/?$"), "get"),
    ("DELETE", re.compile(rf"^/video/(?P<id>{ID_CHARS})/?$"), "delete"),
    ("POST", re.compile(rf"^/video/(?P<id>{ID_CHARS})/publish/?$"), "publish"),
]


class MethodNotAllowed(OperationError):
    """The path exists, not with this method (405, with an `Allow` header)."""

    code = Code.UNIMPLEMENTED
    http_status = 405

    def __init__(self, message: str, allowed: list[str]):
        super().__init__(message)
        self.allowed = allowed


class RouteNotFound(NotFound):
    """No route for the path."""


def route_path(path: str) -> str:
    """The part of the request path the routes match (pure)."""
    i = path.find(PREFIX + "/")
    if i >= 0:
        return path[i + len(PREFIX) :]
    marker = f"/{FUNCTION_NAME}/"
    j = path.find(marker)
    if j >= 0:
        return path[j + len(marker) - 1 :]
    return path


def resolve(method: str, path: str) -> tuple[str, dict[str, str]]:
    """(operation name, path params) for a request; RouteNotFound / MethodNotAllowed."""
    rest = route_path(path)
    allowed: list[str] = []
    for route_method, pattern, name in _ROUTES:
        m = pattern.match(rest)
        if m is None:
            continue
        allowed.append(route_method)
        if route_method == method.upper():
            return name, m.groupdict()
    if allowed:
        raise MethodNotAllowed(f"{method} is not allowed on {rest}", allowed)
    raise RouteNotFound(f"no route for {method} {rest}")


def uid_from(request: Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing Authorization: Bearer <ID token>")
    init_app()
    try:
        decoded = admin_auth.verify_id_token(token.strip())
    except Exception as exc:  # expired, revoked, malformed, wrong project
        raise Unauthenticated("invalid ID token") from exc
    uid = decoded.get("uid") or decoded.get("sub")
    if not isinstance(uid, str) or not uid:
        raise Unauthenticated("the ID token names no user")
    return uid


def _body(request: Request) -> dict[str, Any]:
    raw = request.get_data(cache=True)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadRequest("the body is not valid JSON") from exc
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def _query(request: Request) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("limit", "cursor", "status"):
        value = request.args.get(key)
        if value is None:
            continue
        if key == "limit":
            if not value.isdigit():
                raise BadRequest("limit: must be a whole number", {"fields": ["limit"]})
            out[key] = int(value)
        else:
            out[key] = value
    return out


def dispatch(request: Request) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, JSON body, extra headers) for a request."""
    try:
        name, params = resolve(request.method, request.path)
        uid = uid_from(request)
        app_check.require_for_http(request.headers)
        if name == "create":
            payload = _body(request)
            key = request.headers.get("Idempotency-Key")
            if key and "idempotencyKey" not in payload:
                payload["idempotencyKey"] = key
            result = create.create_video_generation(uid, payload)
            location = f"{PREFIX}/video/{result['creationId']}"
            return 202, result, {"Location": location}
        if name == "list":
            return 200, drafts.list_drafts(uid, _query(request)), {}
        ident = {"creationId": params["id"]}
        if name == "get":
            return 200, drafts.get_creation(uid, ident), {}
        if name == "delete":
            return 200, drafts.delete_creation(uid, ident), {}
        return 200, drafts.publish_creation(uid, ident), {}
    except OperationError as err:
        extra: dict[str, str] = {}
        if isinstance(err, Unauthenticated):
            extra["WWW-Authenticate"] = 'Bearer realm="creations"'
        if isinstance(err, MethodNotAllowed):
            extra["Allow"] = ", ".join(err.allowed)
        return err.http_status, err.to_json(), extra
    except Exception as exc:
        logger.error(
            "creations API crashed", path=request.path, method=request.method, error=repr(exc)
        )
        return 500, {"error": {"status": "INTERNAL", "message": "internal error"}}, {}


def handle(request: Request) -> Response:
    status, body, headers = dispatch(request)
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    for key, value in headers.items():
        response.headers[key] = value
    return response
