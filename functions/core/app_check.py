"""App Check for the callables and the HTTP API: a request must come from our app.

ENFORCE_APP_CHECK (core/config.py; on by default, off on the local stack) is read per
request. The SDK's own `enforce_app_check` decorator option is a plain bool fixed when
main.py is imported, so it cannot follow a param (reading `.value` at import is wrong at
deploy time); instead the callables leave the SDK's option unset, the SDK still verifies any
`X-Firebase-AppCheck` token and sets `req.app` only for a valid one, and `require_for_call`
refuses a request without it exactly as the SDK option would (UNAUTHENTICATED). The HTTP
API verifies the same header with `firebase_admin.app_check.verify_token`. docs/app-check.md.
"""

from __future__ import annotations

from typing import Any

from firebase_functions import https_fn, logger

from core import config
from core.operations import Unauthenticated

HEADER = "X-Firebase-AppCheck"


class AppCheckRequired(Unauthenticated):
    """No valid App Check token (UNAUTHENTICATED, 401, as the SDK's own option answers)."""


def enforced() -> bool:
    return bool(config.ENFORCE_APP_CHECK.value)


def require_for_call(req: https_fn.CallableRequest[Any]) -> None:
    """Refuse a callable request the SDK found no valid App Check token on."""
    if enforced() and req.app is None:
        logger.warn("callable refused: no valid App Check token")
        raise AppCheckRequired("missing or invalid App Check token")


def require_for_http(headers: Any) -> str | None:
    """Verify the request's App Check token (the app id), or refuse; None when not enforced."""
    if not enforced():
        return None
    token = (headers.get(HEADER) or "").strip()
    if not token:
        raise AppCheckRequired(f"missing {HEADER} header (App Check token)")
    from firebase_admin import app_check as admin_app_check

    from core.clients import init_app

    init_app()
    try:
        decoded = admin_app_check.verify_token(token)
    except Exception as exc:  # expired, wrong project, malformed
        logger.warn("HTTP request refused: invalid App Check token", error=repr(exc)[:200])
        raise AppCheckRequired("invalid App Check token") from exc
    app_id = decoded.get("sub") if isinstance(decoded, dict) else None
    return str(app_id) if app_id else None
