"""The Replicate / OpenAI / Veo adapters, through their official SDKs, against the fake API.

Each test checks what the user would see (a real file, or the right error class and
code) and, where it matters, what the SDK actually sent (recorded by the fake).
"""

from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path

import pytest
from PIL import Image

from core.errors import (
    ContentPolicyError,
    InvalidInput,
    ProviderError,
    TransientProviderError,
)
from media.probe import probe
from providers.base import ImageRequest, MediaProvider, VideoLimits, VideoRequest
from providers.local import LocalProvider
from providers.model_schemas import FLUX_SCHNELL
from providers.openai_provider import OpenAIProvider
from providers.registry import get_provider
from providers.replicate_provider import ReplicateProvider, data_uri
from providers.veo_provider import VeoProvider
from tests.fakes.provider_api import FakeProviderAPI

FLUX = "black-forest-labs/flux-schnell"
SEEDANCE = "bytedance/seedance-1-lite"
KONTEXT = "black-forest-labs/flux-kontext-pro"
VEO = "veo-3.0-fast-generate-001"
HANG_S = 4.0


@pytest.fixture(scope="module")
def server():
    with FakeProviderAPI(polls_until_done=2, hang_s=HANG_S) as api:
        yield api


@pytest.fixture
def api(server, monkeypatch):
    monkeypatch.setenv("LOCAL_PROVIDER_HOSTS", server.host)
    server.clear()
    server.polls_until_done = 2
    yield server
    ignored = server.take_ignored_fields()
    assert not ignored, f"sent fields the provider would silently ignore: {ignored}"


@pytest.fixture
def seed_png(tmp_path) -> Path:
    path = tmp_path / "seed.png"
    Image.new("RGB", (64, 36), (10, 200, 30)).save(path)
    return path


def _replicate(api, **kw) -> ReplicateProvider:
    kw.setdefault("poll_interval_s", 0.02)
    kw.setdefault("request_timeout_s", 1.0)
    return ReplicateProvider("r8_test", FLUX, SEEDANCE, base_url=api.base_url, **kw)


def _openai(api, model="gpt-image-1", **kw) -> OpenAIProvider:
    kw.setdefault("max_retries", 0)
    kw.setdefault("timeout_s", 1.0)
    return OpenAIProvider("sk-test", model, base_url=f"{api.base_url}/v1", **kw)


def _veo(api, **kw) -> VeoProvider:
    kw.setdefault("poll_interval_s", 0.02)
    kw.setdefault("request_timeout_s", 1.0)
    return VeoProvider("gm-test", VEO, base_url=api.base_url, **kw)


# --- Replicate --------------------------------------------------------------------------------


def test_replicate_image_success(api, tmp_path):
    provider = _replicate(api)
    assert isinstance(provider, MediaProvider)
    media = provider.generate_image(ImageRequest("a fox", 1280, 720, seed=7), tmp_path)
    with Image.open(media.path) as img:
        assert img.format == "PNG" and img.size == (256, 144)
    assert media.content_type == "image/png" and media.provider == "replicate"
    (create,) = api.requests_to("/predictions", "POST")
    assert create.path == f"/v1/models/{FLUX}/predictions"
    assert create.json == {
        "input": {"prompt": "a fox", "aspect_ratio": "16:9", "output_format": "png", "seed": 7}
    }
    assert create.headers["authorization"] == "Bearer r8_test"
    polls = api.requests_to(f"/v1/predictions/{media.extra['prediction_id']}", "GET")
    assert len(polls) == 2  # starting -> processing -> succeeded
    assert media.extra["predict_time"] == 0.42


def test_replicate_video_from_seed_image(api, tmp_path, seed_png):
    req = VideoRequest("a fox runs", 3.0, "9:16", image=seed_png, resolution="480p")
    media = _replicate(api).generate_video(req, tmp_path)
    info = probe(media.path)
    assert info.video is not None and info.video.codec == "h264"
    assert info.audio is not None and info.audio.codec == "aac"
    assert abs(info.duration_s - 3.0) <= 2 / 24
    (create,) = api.requests_to("/predictions", "POST")
    assert create.path == f"/v1/models/{SEEDANCE}/predictions"
    sent = create.json["input"]
    assert sent["duration"] == 3 and isinstance(sent["duration"], int)
    assert sent["resolution"] == "480p"
    assert "aspect_ratio" not in sent, "SeeDance ignores aspect_ratio when given an image"
    prefix = "data:image/png;base64,"
    assert sent["image"].startswith(prefix)
    assert base64.b64decode(sent["image"][len(prefix) :]) == seed_png.read_bytes()


def test_large_seed_image_is_downscaled_for_the_data_uri(tmp_path):
    big = tmp_path / "photo.png"
    Image.frombytes("RGB", (3000, 2000), os.urandom(3000 * 2000 * 3)).save(big)
    assert big.stat().st_size > 2 * 1024 * 1024
    uri = data_uri(big)
    head, payload = uri.split(",", 1)
    assert head == "data:image/jpeg;base64"
    with Image.open(io.BytesIO(base64.b64decode(payload))) as img:
        assert img.format == "JPEG" and img.size == (2048, 1365)
    with pytest.raises(InvalidInput):
        (tmp_path / "not.png").write_bytes(b"not an image")
        data_uri(tmp_path / "not.png")


def test_replicate_text_to_video_sends_the_aspect_ratio(api, tmp_path):
    media = _replicate(api).generate_video(VideoRequest("a fox runs", 2, "1:1"), tmp_path)
    assert probe(media.path).video is not None
    (create,) = api.requests_to("/predictions", "POST")
    assert create.json["input"] == {
        "prompt": "a fox runs",
        "duration": 2,
        "resolution": "720p",
        "aspect_ratio": "1:1",
    }


@pytest.mark.parametrize(("seconds", "aspect"), [(1, "16:9"), (2.5, "16:9"), (13, "9:16")])
def test_replicate_refuses_what_seedance_refuses_before_creating_a_prediction(
    api, tmp_path, seconds, aspect
):
    with pytest.raises(InvalidInput) as info:
        _replicate(api).generate_video(VideoRequest("a fox", seconds, aspect), tmp_path)
    assert info.value.code == "invalid-argument"
    assert (
        f"{SEEDANCE} makes videos of 2 to 12 whole seconds, got {seconds:g}" in info.value.message
    )
    assert not api.requests_to("/predictions", "POST")


def test_replicate_422_for_our_input_is_a_clear_job_error(api, tmp_path, monkeypatch):
    """A video model whose limits the adapter does not know: the 15 s it sends is refused
    by the provider's schema (422 problem details), and the job error names the field."""
    provider = _replicate(api)
    monkeypatch.setattr(provider, "video_limits", lambda: VideoLimits(model=SEEDANCE))
    with pytest.raises(ProviderError) as info:
        provider.generate_video(VideoRequest("a fox", 15), tmp_path)
    assert info.value.code == "provider-rejected-input" and not info.value.retryable
    assert "Input validation failed" in info.value.message
    assert "input.duration: Must be less than or equal to 12" in info.value.message


def test_replicate_composite_goes_to_the_image_conditioned_model(api, tmp_path, seed_png):
    req = ImageRequest("a desk with the product", 1280, 720, reference_image=seed_png)
    media = _replicate(api).generate_image(req, tmp_path)
    with Image.open(media.path) as img:
        assert img.format == "PNG" and img.size == (256, 144)
    assert media.model == KONTEXT
    (create,) = api.requests_to("/predictions", "POST")
    assert create.path == f"/v1/models/{KONTEXT}/predictions"
    sent = create.json["input"]
    prefix = "data:image/png;base64,"
    assert sent["input_image"].startswith(prefix)
    assert base64.b64decode(sent["input_image"][len(prefix) :]) == seed_png.read_bytes()
    assert (sent["aspect_ratio"], sent["output_format"]) == ("16:9", "png")


def test_replicate_composite_model_without_input_image_is_misconfigured(api, tmp_path, seed_png):
    provider = _replicate(api, composite_model=FLUX)
    assert not provider.takes_reference_image()
    with pytest.raises(ProviderError) as info:
        provider.generate_image(ImageRequest("x", reference_image=seed_png), tmp_path)
    assert info.value.code == "misconfigured" and "takes no input_image" in info.value.message
    assert not api.requests_to("/predictions", "POST")


def test_replicate_model_with_version_uses_the_version_endpoint(api, tmp_path):
    version = FLUX_SCHNELL.versions[0]  # a published version id
    provider = ReplicateProvider(
        "r8_test", f"{FLUX}:{version}", SEEDANCE, base_url=api.base_url, poll_interval_s=0.02
    )
    provider.generate_image(ImageRequest("a fox", 512, 512), tmp_path)
    (create,) = api.requests_to("/predictions", "POST")
    assert create.path == "/v1/predictions" and create.json["version"] == version


def test_replicate_nsfw_is_content_policy(api, tmp_path):
    with pytest.raises(ContentPolicyError) as info:
        _replicate(api).generate_image(ImageRequest("a fox [api:nsfw]", 512, 512), tmp_path)
    assert not info.value.retryable and "NSFW" in info.value.message
    assert not list(tmp_path.iterdir())


def test_replicate_429_once_is_retried(api, tmp_path):
    api.fail_next("429")
    media = _replicate(api).generate_image(ImageRequest("a fox", 512, 512), tmp_path)
    assert media.path.exists()
    assert len(api.requests_to("/predictions", "POST")) == 2


def test_replicate_429_persisting_is_transient_with_retry_after(api, tmp_path):
    with pytest.raises(TransientProviderError) as info:
        _replicate(api, create_attempts=2).generate_image(
            ImageRequest("a fox [api:429]", 512, 512), tmp_path
        )
    assert info.value.retryable and info.value.retry_after_s == 1.0
    assert len(api.requests_to("/predictions", "POST")) == 2


def test_replicate_500_is_transient_and_not_repeated(api, tmp_path):
    with pytest.raises(TransientProviderError):
        _replicate(api).generate_image(ImageRequest("a fox [api:500]", 512, 512), tmp_path)
    # a prediction may have been created: creating another could bill twice
    assert len(api.requests_to("/predictions", "POST")) == 1


def test_replicate_malformed_body(api, tmp_path):
    with pytest.raises(ProviderError) as info:
        _replicate(api).generate_image(ImageRequest("a fox [api:malformed]", 512, 512), tmp_path)
    assert info.value.code == "provider-bad-response" and not info.value.retryable


def test_replicate_expired_output(api, tmp_path):
    with pytest.raises(ProviderError) as info:
        _replicate(api).generate_image(ImageRequest("a fox [api:expired]", 512, 512), tmp_path)
    assert info.value.code == "output-expired"
    assert not list(tmp_path.iterdir())


def test_replicate_failed_and_aborted_predictions(api, tmp_path):
    with pytest.raises(ProviderError) as failed:
        _replicate(api).generate_image(ImageRequest("a fox [api:fail]", 512, 512), tmp_path)
    assert type(failed.value) is ProviderError and "CUDA" in failed.value.message
    with pytest.raises(TransientProviderError, match="aborted"):
        _replicate(api).generate_image(ImageRequest("a fox [api:aborted]", 512, 512), tmp_path)


def test_replicate_hanging_create_times_out(api, tmp_path):
    started = time.monotonic()
    with pytest.raises(TransientProviderError):
        _replicate(api).generate_image(ImageRequest("a fox [api:hang]", 512, 512), tmp_path)
    assert time.monotonic() - started < HANG_S - 1


def test_replicate_slow_prediction_hits_our_deadline_and_is_canceled(api, tmp_path):
    api.polls_until_done = 10_000
    with pytest.raises(TransientProviderError) as info:
        _replicate(api, timeout_s=0.3).generate_image(ImageRequest("a fox", 512, 512), tmp_path)
    assert info.value.code == "provider-timeout"
    assert api.requests_to("/cancel", "POST")


# --- OpenAI -----------------------------------------------------------------------------------


def test_openai_image_success(api, tmp_path):
    media = _openai(api).generate_image(ImageRequest("a fox", 1280, 720), tmp_path)
    with Image.open(media.path) as img:
        assert img.format == "PNG" and img.size == (192, 128)
    (call,) = api.requests_to("/v1/images/generations")
    assert call.json["model"] == "gpt-image-1" and call.json["prompt"] == "a fox"
    assert call.json["size"] == "1536x1024" and call.json["output_format"] == "png"
    assert "response_format" not in call.json  # GPT image models reject it
    assert call.headers["authorization"] == "Bearer sk-test"


def test_openai_dalle_asks_for_base64(api, tmp_path):
    media = _openai(api, model="dall-e-3").generate_image(ImageRequest("x", 720, 1280), tmp_path)
    (call,) = api.requests_to("/v1/images/generations")
    assert call.json["response_format"] == "b64_json" and call.json["size"] == "1024x1792"
    with Image.open(media.path) as img:
        assert img.size == (128, 224)


@pytest.mark.parametrize("model", ["gpt-image-1", "dall-e-3"])
def test_openai_content_policy(api, tmp_path, model):
    with pytest.raises(ContentPolicyError):
        _openai(api, model=model).generate_image(ImageRequest("x [api:nsfw]", 512, 512), tmp_path)


def test_openai_429_once_is_retried_by_the_sdk(api, tmp_path):
    api.fail_next("429")
    media = _openai(api, max_retries=2).generate_image(ImageRequest("x", 512, 512), tmp_path)
    assert media.path.exists()
    assert len(api.requests_to("/v1/images/generations")) == 2


@pytest.mark.parametrize(("marker", "retry_after"), [("429", 1.0), ("500", None), ("hang", None)])
def test_openai_transient_failures(api, tmp_path, marker, retry_after):
    with pytest.raises(TransientProviderError) as info:
        _openai(api).generate_image(ImageRequest(f"x [api:{marker}]", 512, 512), tmp_path)
    assert info.value.retryable and info.value.retry_after_s == retry_after


def test_openai_malformed_body(api, tmp_path):
    with pytest.raises(ProviderError) as info:
        _openai(api).generate_image(ImageRequest("x [api:malformed]", 512, 512), tmp_path)
    assert info.value.code == "provider-bad-response"


def test_openai_400_for_our_input_is_a_clear_job_error(api, tmp_path):
    """dall-e-3 takes prompts of at most 4000 characters (gpt-image-1: 32000)."""
    with pytest.raises(ProviderError) as info:
        _openai(api, model="dall-e-3").generate_image(ImageRequest("x" * 4001), tmp_path)
    assert info.value.code == "provider-rejected-input" and not info.value.retryable
    assert "(prompt)" in info.value.message and "string too long" in info.value.message


def test_openai_takes_no_reference_image(api, tmp_path, seed_png):
    provider = _openai(api)
    assert not provider.takes_reference_image()
    with pytest.raises(ProviderError) as info:
        provider.generate_image(ImageRequest("x", reference_image=seed_png), tmp_path)
    assert info.value.code == "unsupported"
    assert not api.requests_to("/v1/images/generations")


def test_openai_does_not_make_video(api, tmp_path):
    with pytest.raises(ProviderError) as info:
        _openai(api).generate_video(VideoRequest("x", 4), tmp_path)
    assert info.value.code == "unsupported"


# --- Veo (google-genai) ---------------------------------------------------------------------


def test_veo_video_from_seed_image(api, tmp_path, seed_png):
    seed = tmp_path / "seed-image"  # our seed files have no extension
    seed.write_bytes(seed_png.read_bytes())
    req = VideoRequest("a fox runs", 4, "9:16", image=seed)
    media = _veo(api).generate_video(req, tmp_path)
    info = probe(media.path)
    assert info.video is not None and info.video.codec == "h264"
    assert abs(info.duration_s - 4.0) <= 2 / 24
    assert media.content_type == "video/mp4" and media.provider == "veo"
    (create,) = api.requests_to(":predictLongRunning")
    assert create.headers["x-goog-api-key"] == "gm-test"
    instance = create.json["instances"][0]
    assert instance["prompt"] == "a fox runs"
    assert base64.b64decode(instance["image"]["bytesBase64Encoded"]) == seed_png.read_bytes()
    assert instance["image"]["mimeType"] == "image/png"
    params = create.json["parameters"]
    assert params["durationSeconds"] == 4 and params["generateAudio"] is True
    assert params["aspectRatio"] == "9:16" and params["sampleCount"] == 1
    # polled until done: at least polls_until_done times (more while the fake still renders)
    assert len(api.requests_to(":fetchPredictOperation")) >= 2


def test_veo_jpeg_seed_is_sent_as_jpeg(api, tmp_path):
    seed = tmp_path / "seed-image"
    Image.new("RGB", (64, 36), (200, 10, 30)).save(seed, format="JPEG")
    _veo(api).generate_video(VideoRequest("x", 6, image=seed), tmp_path / "out")
    (create,) = api.requests_to(":predictLongRunning")
    assert create.json["instances"][0]["image"]["mimeType"] == "image/jpeg"


@pytest.mark.parametrize(
    ("seconds", "aspect", "message"),
    [
        (5, "16:9", f"duration: {VEO} makes videos of 4, 6 or 8 seconds, got 5"),
        (10, "9:16", f"duration: {VEO} makes videos of 4, 6 or 8 seconds, got 10"),
        (4, "1:1", f"aspect_ratio: {VEO} makes 16:9 or 9:16 videos, got 1:1"),
    ],
)
def test_veo_refuses_what_veo_refuses_before_calling_it(api, tmp_path, seconds, aspect, message):
    with pytest.raises(InvalidInput) as info:
        _veo(api).generate_video(VideoRequest("x", seconds, aspect), tmp_path)
    assert info.value.code == "invalid-argument" and info.value.message == message
    assert not api.requests_to(":predictLongRunning")


def test_veo_400_for_our_input_is_a_clear_job_error(api, tmp_path, monkeypatch):
    provider = _veo(api)
    monkeypatch.setattr(provider, "video_limits", lambda: VideoLimits(model=VEO))
    with pytest.raises(ProviderError) as info:
        provider.generate_video(VideoRequest("x", 5), tmp_path)
    assert info.value.code == "provider-rejected-input" and not info.value.retryable
    assert "parameters.durationSeconds" in info.value.message


def test_veo_safety_filter_is_content_policy(api, tmp_path):
    with pytest.raises(ContentPolicyError, match="safety"):
        _veo(api).generate_video(VideoRequest("x [api:nsfw]", 4), tmp_path)


@pytest.mark.parametrize(("marker", "retry_after"), [("429", 1.0), ("500", None), ("fail", None)])
def test_veo_transient_failures(api, tmp_path, marker, retry_after):
    with pytest.raises(TransientProviderError) as info:
        _veo(api).generate_video(VideoRequest(f"x [api:{marker}]", 4), tmp_path)
    assert info.value.retry_after_s == retry_after


def test_veo_malformed_and_unsupported(api, tmp_path):
    with pytest.raises(ProviderError) as bad:
        _veo(api).generate_video(VideoRequest("x [api:malformed]", 4), tmp_path)
    assert bad.value.code == "provider-bad-response"
    with pytest.raises(ProviderError) as info:
        _veo(api).generate_image(ImageRequest("x"), tmp_path)
    assert info.value.code == "unsupported"
    assert len(api.requests_to(":predictLongRunning")) == 1  # only the malformed one was sent


# --- registry ---------------------------------------------------------------------------------

_KEYS = [
    "MEDIA_PROVIDER", "IMAGE_PROVIDER", "REPLICATE_API_TOKEN", "OPENAI_API_KEY",
    "GEMINI_API_KEY", "REPLICATE_BASE_URL", "OPENAI_BASE_URL", "GEMINI_BASE_URL",
]  # fmt: skip


@pytest.fixture
def clean_env(monkeypatch):
    for key in _KEYS:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("keys", "image", "video"),
    [
        ({}, LocalProvider, LocalProvider),
        ({"REPLICATE_API_TOKEN": "r8"}, ReplicateProvider, ReplicateProvider),
        ({"OPENAI_API_KEY": "sk"}, OpenAIProvider, LocalProvider),
        ({"GEMINI_API_KEY": "gm"}, LocalProvider, VeoProvider),
        ({"OPENAI_API_KEY": "sk", "GEMINI_API_KEY": "gm"}, OpenAIProvider, VeoProvider),
        ({"REPLICATE_API_TOKEN": "  "}, LocalProvider, LocalProvider),
        (
            {"REPLICATE_API_TOKEN": "r8", "IMAGE_PROVIDER": "local"},
            LocalProvider,
            ReplicateProvider,
        ),
        ({"REPLICATE_API_TOKEN": "r8", "MEDIA_PROVIDER": "local"}, LocalProvider, LocalProvider),
    ],
)
def test_registry_auto_selection(clean_env, keys, image, video):
    for key, value in keys.items():
        clean_env.setenv(key, value)
    assert type(get_provider("image")) is image
    assert type(get_provider("video")) is video


def test_registry_explicit_choices(clean_env):
    clean_env.setenv("OPENAI_API_KEY", "sk")
    assert type(get_provider("image", "openai")) is OpenAIProvider
    assert type(get_provider("video", "local")) is LocalProvider
    with pytest.raises(ProviderError) as unsupported:
        get_provider("video", "openai")
    assert unsupported.value.code == "unsupported"
    with pytest.raises(ProviderError) as missing:
        get_provider("image", "replicate")
    assert missing.value.code == "provider-not-configured"
    with pytest.raises(InvalidInput):
        get_provider("image", "midjourney")


def test_registry_points_the_sdk_at_the_base_url(api, clean_env, tmp_path):
    clean_env.setenv("OPENAI_API_KEY", "sk-from-env")
    clean_env.setenv("OPENAI_BASE_URL", f"{api.base_url}/v1")
    media = get_provider("image").generate_image(ImageRequest("a fox", 512, 512), tmp_path)
    assert media.provider == "openai" and media.path.exists()
    (call,) = api.requests_to("/v1/images/generations")
    assert call.headers["authorization"] == "Bearer sk-from-env"
