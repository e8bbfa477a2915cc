"""The published model schemas: the limits production reads from them, and the fake
provider API that refuses what they refuse with each provider's real error answer."""

from __future__ import annotations

import httpx
import pytest

from core.errors import InvalidInput, ProviderError
from creations.document import ASPECT_RATIOS, DURATIONS
from providers import model_schemas
from providers.base import VideoLimits
from providers.registry import video_limits
from tests.fakes.provider_api import FakeProviderAPI, PredictionEvent

SEEDANCE = "bytedance/seedance-1-lite"
VEO = "veo-3.0-fast-generate-001"


@pytest.fixture(scope="module")
def server():
    with FakeProviderAPI(polls_until_done=2) as api:
        yield api


@pytest.fixture
def api(server):
    server.clear()
    yield server
    server.take_ignored_fields()


def post(api: FakeProviderAPI, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{api.base_url}{path}", json=body, timeout=10)


# --- limits ---------------------------------------------------------------------------------


def test_limits_come_from_the_published_schemas():
    seedance = model_schemas.replicate_video_limits(SEEDANCE)
    assert (seedance.min_s, seedance.max_s, seedance.whole_seconds) == (2, 12, True)
    assert seedance.aspect_ratios == ("16:9", "9:16", "1:1")
    veo = model_schemas.veo_video_limits(VEO)
    assert veo.choices == (4, 6, 8) and veo.aspect_ratios == ("16:9", "9:16")
    assert model_schemas.takes_input("black-forest-labs/flux-kontext-pro", "input_image")
    assert model_schemas.takes_input("black-forest-labs/flux-schnell", "input_image") is False
    assert model_schemas.takes_input("someone/unknown-model", "input_image") is None


@pytest.mark.parametrize(
    ("limits", "ok", "refused"),
    [
        (model_schemas.replicate_video_limits(SEEDANCE), [2, 5.0, 12], [1, 1.5, 2.5, 13]),
        (model_schemas.veo_video_limits(VEO), [4, 6, 8], [2, 5, 7, 10]),
        (VideoLimits(model="unknown"), [0.5, 2.5, 100], []),
    ],
)
def test_video_limits_check(limits, ok, refused):
    for seconds in ok:
        limits.check(seconds)
    for seconds in refused:
        with pytest.raises(InvalidInput, match=f"duration: {limits.model} makes videos of"):
            limits.check(seconds)


def test_registry_limits_follow_the_configured_model(monkeypatch):
    monkeypatch.setenv("MEDIA_PROVIDER", "local")
    assert video_limits().describe() == "2 to 12 whole seconds"  # local stands in for SeeDance
    assert video_limits("replicate").model == SEEDANCE  # no key needed to know the limits
    assert video_limits("veo").describe() == "4, 6 or 8 seconds"
    monkeypatch.setenv("VEO_MODEL", "veo-3.0-generate-001")
    assert video_limits("veo").model == "veo-3.0-generate-001"
    with pytest.raises(ProviderError):
        video_limits("openai")


def test_every_creation_duration_is_one_every_video_model_makes():
    for limits in (
        model_schemas.replicate_video_limits(SEEDANCE),
        model_schemas.veo_video_limits(VEO),
        model_schemas.veo_video_limits("veo-3.0-generate-001"),
    ):
        for seconds in DURATIONS:
            for aspect in ASPECT_RATIOS:
                limits.check(seconds, aspect)


# --- the fake answers like the providers do ------------------------------------------------


def test_replicate_out_of_range_input_gets_its_422_problem_details(api):
    r = post(api, f"/v1/models/{SEEDANCE}/predictions", {"input": {"prompt": "x", "duration": 15}})
    assert r.status_code == 422
    assert r.json() == {
        "detail": "- input.duration: Must be less than or equal to 12\n",
        "status": 422,
        "title": "Input validation failed",
        "invalid_fields": [
            {
                "type": "number_lte",
                "field": "input.duration",
                "description": "Must be less than or equal to 12",
            }
        ],
    }


def test_replicate_types_enums_and_required_inputs(api):
    body = {"input": {"duration": "5", "resolution": "4k", "seed": None}}
    fields = post(api, f"/v1/models/{SEEDANCE}/predictions", body).json()["invalid_fields"]
    assert {(f["type"], f["field"]) for f in fields} == {
        ("required", "input"),
        ("invalid_type", "input.duration"),
        ("enum", "input.resolution"),
    }
    by_type = {f["type"]: f["description"] for f in fields}
    assert by_type["required"] == "prompt is required"
    assert by_type["invalid_type"] == "Invalid type. Expected: integer, given: string"
    assert by_type["enum"] == 'resolution must be one of the following: "480p", "720p", "1080p"'


def test_replicate_misspelt_envelope_field_is_refused(api):
    """The example of Replicate's changelog: `inptu` instead of `input`."""
    r = post(api, f"/v1/models/{SEEDANCE}/predictions", {"inptu": {"prompt": "x"}})
    assert r.status_code == 422
    assert r.json()["invalid_fields"] == [
        {"type": "required", "field": "", "description": "input is required"},
        {
            "type": "additional_property_not_allowed",
            "field": "",
            "description": "Additional property inptu is not allowed",
        },
    ]


def test_replicate_unknown_input_is_accepted_but_recorded_as_ignored(api):
    """Replicate ignores inputs a model does not have (the product photo sent to
    flux-schnell never reached the model): the fake does the same and records it."""
    body = {"input": {"prompt": "x", "input_image": "data:image/png;base64,AA=="}}
    assert post(api, "/v1/models/black-forest-labs/flux-schnell/predictions", body).is_success
    [ignored] = api.take_ignored_fields()
    assert (ignored.model, ignored.field) == ("black-forest-labs/flux-schnell", "input.input_image")


def test_replicate_unknown_model_and_version(api):
    assert post(api, "/v1/models/someone/nothing/predictions", {"input": {}}).status_code == 404
    r = post(api, "/v1/predictions", {"version": "a" * 64, "input": {"prompt": "x"}})
    assert r.status_code == 422 and r.json()["title"] == "Invalid version or not permitted"


@pytest.mark.parametrize(
    ("body", "param", "code", "message"),
    [
        (
            {"model": "gpt-image-1", "prompt": "x", "response_format": "b64_json"},
            "response_format",
            "unknown_parameter",
            "Unknown parameter: 'response_format'.",
        ),
        (
            {"model": "gpt-image-1", "prompt": "x", "size": "1280x720"},
            "size",
            "invalid_value",
            "Invalid value: '1280x720'. Supported values are: 'auto', '1024x1024', "
            "'1536x1024', and '1024x1536'.",
        ),
        (
            {"model": "dall-e-3", "prompt": "x", "n": 2},
            "n",
            "integer_above_max_value",
            "Invalid 'n': integer above maximum value. Expected a value <= 1, but got 2 instead.",
        ),
        (
            {"model": "gpt-image-1"},
            "prompt",
            "missing_required_parameter",
            "Missing required parameter: 'prompt'.",
        ),
    ],
)
def test_openai_refusals_have_its_error_shape(api, body, param, code, message):
    r = post(api, "/v1/images/generations", body)
    assert r.status_code == 400
    assert r.json() == {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": code,
        }
    }


def _veo_body(**parameters) -> dict:
    return {
        "instances": [{"prompt": "x"}],
        "parameters": {"durationSeconds": 8, "generateAudio": True, **parameters},
    }


def test_veo_refusals_are_google_rpc_statuses(api):
    path = f"/v1beta1/publishers/google/models/{VEO}:predictLongRunning"
    r = post(api, path, _veo_body(durationSeconds=5, aspectRatio="1:1"))
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    [detail] = error["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert {v["field"] for v in detail["fieldViolations"]} == {
        "parameters.durationSeconds",
        "parameters.aspectRatio",
    }
    missing = _veo_body()
    del missing["parameters"]["generateAudio"]
    [violation] = post(api, path, missing).json()["error"]["details"][0]["fieldViolations"]
    assert violation["description"] == "parameters.generateAudio is required."
    unknown = post(api, path, {**_veo_body(), "config": {}}).json()["error"]
    assert (
        unknown["message"]
        == 'Invalid JSON payload received. Unknown name "config": Cannot find field.'
    )
    assert post(api, path.replace(VEO, "veo-9"), _veo_body()).status_code == 404


def test_veo_unknown_parameter_is_ignored_and_recorded(api):
    path = f"/v1beta1/publishers/google/models/{VEO}:predictLongRunning"
    assert post(api, path, _veo_body(frameRate=30)).is_success
    assert [f.field for f in api.take_ignored_fields()] == ["parameters.frameRate"]


# --- prediction events (what webhook callbacks will be made of) ----------------------------


def test_prediction_events_follow_the_lifecycle_and_keep_the_webhook(api):
    events: list[PredictionEvent] = []
    api.on_prediction_event(events.append)
    body = {
        "input": {"prompt": "events", "duration": 2},
        "webhook": "https://example.test/hook",
        "webhook_events_filter": ["start", "completed"],
    }
    created = post(api, f"/v1/models/{SEEDANCE}/predictions", body).json()
    while (got := httpx.get(f"{api.base_url}/v1/predictions/{created['id']}").json())[
        "status"
    ] not in ("succeeded", "failed"):
        pass
    mine = [e for e in events if e.prediction.id == created["id"]]
    assert [e.name for e in mine] == ["start", "logs", "output", "completed"]
    assert mine[-1].body == got and got["status"] == "succeeded"
    assert mine[-1].prediction.webhook == "https://example.test/hook"
    assert mine[-1].prediction.webhook_events_filter == ["start", "completed"]
    bad = {**body, "webhook_events_filter": ["finished"]}
    fields = post(api, f"/v1/models/{SEEDANCE}/predictions", bad).json()["invalid_fields"]
    assert [f["field"] for f in fields] == ["webhook_events_filter[0]"]
