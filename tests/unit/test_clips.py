"""A scene clip from the video provider (providers/clips.py): which provider a job may use,
its duration bounds and default resolution, and a provider's output checked for video."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import InvalidInput, JobError, ProviderError
from devtools.media_factory import make_audio
from providers.base import GeneratedMedia, ImageRequest, VideoLimits, VideoRequest
from providers.clips import (
    Clip,
    check_duration,
    choose_provider,
    clip_request,
    probed_clip,
    resolution_for,
)
from providers.local import LocalProvider


def test_naming_a_provider_is_refused_unless_the_deployment_allows_it(monkeypatch):
    """In-process: the default deployment (ALLOW_PROVIDER_OVERRIDE unset) refuses `provider`."""
    monkeypatch.delenv("ALLOW_PROVIDER_OVERRIDE", raising=False)
    monkeypatch.setenv("MEDIA_PROVIDER", "local")
    with pytest.raises(InvalidInput, match="ALLOW_PROVIDER_OVERRIDE"):
        choose_provider("replicate")
    assert choose_provider(None).name == "local"
    monkeypatch.setenv("ALLOW_PROVIDER_OVERRIDE", "true")
    assert choose_provider("local").name == "local"


def test_durations_are_bounded_by_the_params(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEO_MIN_DURATION_S", "1")
    monkeypatch.setenv("VIDEO_MAX_DURATION_S", "15")
    unlimited = VideoLimits("any-model")
    check_duration(1, unlimited)
    check_duration(15, unlimited)
    with pytest.raises(InvalidInput, match=r"scenes\[0\].duration: must be between 1 and 15"):
        check_duration(16, unlimited, "scenes[0].duration")


def test_durations_are_bounded_by_the_video_model_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEO_MIN_DURATION_S", "1")
    monkeypatch.setenv("VIDEO_MAX_DURATION_S", "15")
    seedance = VideoLimits("seedance", min_s=2, max_s=12, whole_seconds=True)
    check_duration(2, seedance)
    with pytest.raises(InvalidInput, match=r"duration: seedance makes videos of 2 to 12 whole"):
        check_duration(13, seedance)
    with pytest.raises(InvalidInput, match=r"got 2.5"):
        check_duration(2.5, seedance)


def test_the_resolution_defaults_to_the_param_and_a_bad_param_is_misconfigured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VIDEO_RESOLUTION", "1080p")
    assert resolution_for(None) == "1080p" and resolution_for("480p") == "480p"
    monkeypatch.setenv("VIDEO_RESOLUTION", "4k")
    with pytest.raises(JobError) as bad:
        resolution_for(None)
    assert bad.value.code == "misconfigured"


class SilentProvider:
    """Answers every video request with an audio-only file."""

    name = "silent"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def generate_image(self, request: ImageRequest, work_dir: Path) -> GeneratedMedia:
        raise NotImplementedError

    def generate_video(self, request: VideoRequest, work_dir: Path) -> GeneratedMedia:
        path = make_audio(self.folder / "voice.m4a", 1.0)
        return GeneratedMedia(path, "video/mp4", self.name, "none")


def two_second_clip(provider: object, tmp_path: Path) -> Clip:
    request = clip_request(
        image=None,
        prompt="a calm sea",
        duration_s=2.0,  # the video model's shortest (SeeDance: 2 to 12 whole seconds)
        aspect_ratio="16:9",
        resolution="480p",
    )
    return probed_clip(provider.generate_video(request, tmp_path))  # type: ignore[attr-defined]


def test_a_clip_is_probed_and_must_contain_video(tmp_path: Path) -> None:
    clip = two_second_clip(LocalProvider(), tmp_path)
    assert (clip.width, clip.height, clip.resolution) == (854, 480, "854x480")
    assert clip.info.duration_s == pytest.approx(2.0, abs=0.1) and clip.provider == "local"
    with pytest.raises(ProviderError) as bad:
        two_second_clip(SilentProvider(tmp_path), tmp_path)
    assert bad.value.code == "bad-output"
