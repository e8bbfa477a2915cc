"""Callable and HTTP plumbing (core/operations.py): one error type per outcome, the same
callable code and HTTP status on both transports; signed-out callers refused."""

from __future__ import annotations

import pytest
from firebase_functions import https_fn

from core.operations import (
    BadRequest,
    Forbidden,
    NotFound,
    Unauthenticated,
    WrongState,
    call,
)
from creations import create
from creations.document import InsufficientTokens


@pytest.mark.parametrize(
    "error, callable_status, callable_http, api_http",
    [
        (BadRequest("x"), "INVALID_ARGUMENT", 400, 400),
        (Unauthenticated("x"), "UNAUTHENTICATED", 401, 401),
        (InsufficientTokens("x", {"required": 40, "balance": 0}), "RESOURCE_EXHAUSTED", 429, 402),
        (Forbidden("x"), "PERMISSION_DENIED", 403, 403),
        (NotFound("x"), "NOT_FOUND", 404, 404),
        (WrongState("x"), "FAILED_PRECONDITION", 400, 400),
    ],
)
def test_each_error_maps_to_a_callable_code_and_an_http_status(
    error, callable_status, callable_http, api_http
):
    https = error.to_https_error()
    assert https.code.name == callable_status
    assert https._http_error_code.status == callable_http  # what the callable protocol answers
    assert error.http_status == api_http
    body = error.to_json()["error"]
    assert body["status"] == callable_status and body["message"] == "x"
    assert body.get("details") == error.details


def test_callable_wrapper_refuses_signed_out_callers():
    req = https_fn.CallableRequest(raw_request=None, data={"prompt": "x"}, auth=None)  # type: ignore[arg-type]
    with pytest.raises(https_fn.HttpsError) as exc:
        call(create.create_video_generation, req)
    assert exc.value.code == https_fn.FunctionsErrorCode.UNAUTHENTICATED
