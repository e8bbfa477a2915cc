"""App Check (core/app_check.py): with ENFORCE_APP_CHECK on, a callable or HTTP API request
without a valid App Check token is refused UNAUTHENTICATED before any operation runs; with
it off (the local stack), requests pass as before."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from firebase_admin import app_check as admin_app_check
from firebase_functions import https_fn
from flask import Request
from werkzeug.test import EnvironBuilder

from core.operations import call
from creations import drafts, http_api

ran: list[str] = []


def listing(uid: str, payload: object) -> dict[str, Any]:
    ran.append(uid)
    return {"drafts": []}


def callable_request(app: object | None) -> https_fn.CallableRequest[Any]:
    return https_fn.CallableRequest(
        raw_request=None,  # type: ignore[arg-type]
        data={},
        auth=https_fn.AuthData(uid="u1", token={"uid": "u1"}),
        app=app,  # type: ignore[arg-type]
    )


@pytest.fixture(autouse=True)
def _reset(monkeypatch: pytest.MonkeyPatch) -> None:
    ran.clear()
    monkeypatch.setenv("ENFORCE_APP_CHECK", "true")


def test_a_callable_without_a_valid_app_check_token_is_refused() -> None:
    with pytest.raises(https_fn.HttpsError) as exc:
        call(listing, callable_request(app=None))
    assert exc.value.code == https_fn.FunctionsErrorCode.UNAUTHENTICATED
    assert "App Check" in exc.value.message
    assert ran == []


def test_a_callable_with_a_verified_app_passes() -> None:
    app = https_fn.AppCheckData(app_id="1:123:web:abc", token={"sub": "1:123:web:abc"})
    assert call(listing, callable_request(app=app)) == {"drafts": []}
    assert ran == ["u1"]


def test_a_callable_passes_without_app_check_when_not_enforced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENFORCE_APP_CHECK", "false")
    assert call(listing, callable_request(app=None)) == {"drafts": []}


def http_request(headers: dict[str, str]) -> Request:
    return Request(
        EnvironBuilder(method="GET", path="/api/generate/drafts", headers=headers).get_environ()
    )


@pytest.fixture
def signed_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_api, "uid_from", lambda request: "u1")
    monkeypatch.setattr(drafts, "list_drafts", listing)


@pytest.mark.usefixtures("signed_in")
def test_the_http_api_refuses_a_request_without_the_header() -> None:
    status, body, _ = http_api.dispatch(http_request({}))
    assert status == 401
    assert body["error"]["status"] == "UNAUTHENTICATED"
    assert "X-Firebase-AppCheck" in body["error"]["message"]
    assert ran == []


@pytest.mark.usefixtures("signed_in")
def test_the_http_api_refuses_an_invalid_token(monkeypatch: pytest.MonkeyPatch) -> None:
    def reject(token: str, app: object = None) -> dict[str, Any]:
        raise ValueError("bad signature")

    monkeypatch.setattr(admin_app_check, "verify_token", reject)
    response = http_api.handle(http_request({"X-Firebase-AppCheck": "forged"}))
    assert response.status_code == 401
    assert json.loads(response.get_data())["error"]["message"] == "invalid App Check token"
    assert ran == []


@pytest.mark.usefixtures("signed_in")
def test_the_http_api_serves_a_request_with_a_verified_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []

    def verify(token: str, app: object = None) -> dict[str, Any]:
        seen.append(token)
        return {"sub": "1:123:web:abc"}

    monkeypatch.setattr(admin_app_check, "verify_token", verify)
    status, body, _ = http_api.dispatch(http_request({"X-Firebase-AppCheck": "good"}))
    assert (status, body) == (200, {"drafts": []})
    assert seen == ["good"] and ran == ["u1"]


@pytest.mark.usefixtures("signed_in")
def test_the_http_api_needs_no_token_when_not_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENFORCE_APP_CHECK", "false")
    assert http_api.dispatch(http_request({}))[0] == 200


def test_the_local_stack_turns_app_check_off() -> None:
    from local_stack.stack import LocalStack

    env = LocalStack.host_env(
        SimpleNamespace(  # type: ignore[arg-type]
            client_env=lambda: {},
            host_port=1,
            settings=SimpleNamespace(functions_dir=".", host_env={}, provider_webhooks=False),
        )
    )
    assert env["ENFORCE_APP_CHECK"] == "false"
