"""The creations HTTP API (creations/http_api.py): routing, and the answer to a request
no route takes. No stack needed."""

from __future__ import annotations

import json

import pytest
from flask import Request
from werkzeug.test import EnvironBuilder

from creations import http_api


@pytest.mark.parametrize(
    "method, path, expected",
    [
        ("POST", "/api/generate/video", ("create", {})),
        ("GET", "/api/generate/drafts", ("list", {})),
        ("GET", "/api/generate/video/abc123", ("get", {"id": "abc123"})),
        ("DELETE", "/api/generate/video/abc123", ("delete", {"id": "abc123"})),
        ("POST", "/api/generate/video/abc123/publish", ("publish", {"id": "abc123"})),
        ("POST", "/demo/us-central1/generateapi/api/generate/video", ("create", {})),
        ("GET", "/demo/us-central1/generateapi/drafts", ("list", {})),
        ("GET", "/drafts", ("list", {})),
    ],
)
def test_routes(method, path, expected):
    assert http_api.resolve(method, path) == expected


def test_unknown_routes_and_methods():
    with pytest.raises(http_api.MethodNotAllowed):
        http_api.resolve("PUT", "/api/generate/video")
    with pytest.raises(http_api.RouteNotFound):
        http_api.resolve("GET", "/api/generate/nothing")
    with pytest.raises(http_api.RouteNotFound):
        http_api.resolve("GET", "/api/generate/video/../../etc")


def request(method: str, path: str) -> Request:
    return Request(EnvironBuilder(method=method, path=path).get_environ())


def test_an_unknown_route_answers_404_not_found() -> None:
    status, body, _ = http_api.dispatch(request("GET", "/api/generate/nothing"))
    assert status == 404
    assert body["error"]["status"] == "NOT_FOUND" and "nothing" in body["error"]["message"]
    response = http_api.handle(request("GET", "/api/generate/nothing"))
    assert response.status_code == 404
    assert json.loads(response.get_data())["error"]["status"] == "NOT_FOUND"


def test_a_wrong_method_answers_405_with_the_allowed_ones() -> None:
    status, body, headers = http_api.dispatch(request("PUT", "/api/generate/video/abc123"))
    assert status == 405
    assert body["error"]["status"] == "UNIMPLEMENTED"
    assert body["error"]["status"] != "INTERNAL"
    assert headers["Allow"] == "GET, DELETE"
    response = http_api.handle(request("PATCH", "/api/generate/drafts"))
    assert response.status_code == 405 and response.headers["Allow"] == "GET"
