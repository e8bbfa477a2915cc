"""The creations HTTP API's routing (creations/http_api.py). No stack needed."""

from __future__ import annotations

import pytest

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
