"""The offline provider: real media made on this machine, no network, no keys.

`generate_image` renders a deterministic PNG from the prompt: a two-colour gradient,
a handful of translucent shapes and the prompt text, all chosen by a hash of
``prompt + seed`` (same prompt and seed -> byte-identical PNG; another prompt ->
another picture). `generate_video` takes ``request.image`` (scaled and centre-cropped
to the aspect ratio) or renders an image from the prompt, then animates it with a slow
zoom (media/animate.py) into an H.264/AAC MP4 exactly ``duration_s`` long.

Sizes for video: 16:9 -> 1280x720, 9:16 -> 720x1280, 1:1 -> 720x720 at 720p;
480p and 1080p scale these (854x480 / 1920x1080 and so on).

Limits: the offline provider stands in for a real video model (`stand_in_for`, by default
the Replicate video model, SeeDance) and accepts exactly the durations and aspect ratios
that model's published schema allows (2 to 12 whole seconds), so a job refused in
production is refused offline too. It takes reference images (it composites them).

Failure hooks, so the offline stack and the tests can exercise failure paths through
the same code as a real provider. A marker anywhere in the prompt:

- ``[fail:content-policy]`` -> raises ContentPolicyError (as a provider's safety filter would)
- ``[fail:transient]``      -> raises TransientProviderError (as a 5xx/429 would)
- ``[fail:slow=N]``         -> sleeps N seconds (float) before working (timeouts, leases)

Markers are removed from the text drawn on the image. They are honoured only by this
provider; the real adapters pass prompts through untouched.
"""

from __future__ import annotations

import hashlib
import random
import re
import textwrap
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from core.errors import ContentPolicyError, InvalidInput, MediaError, TransientProviderError
from media.animate import render_ken_burns
from media.picture import video_size
from providers.base import GeneratedMedia, ImageRequest, VideoLimits, VideoRequest
from providers.model_schemas import replicate_video_limits

DEFAULT_STAND_IN = "bytedance/seedance-1-lite"

_FAIL_POLICY = "[fail:content-policy]"
_FAIL_TRANSIENT = "[fail:transient]"
_SLOW_RE = re.compile(r"\[fail:slow=(\d+(?:\.\d+)?)\]")
_MARKER_RE = re.compile(r"\[fail:[^\]]*\]")
MAX_IMAGE_SIDE = 4096
MAX_SLOW_S = 600.0


def apply_failure_hooks(prompt: str) -> None:
    """Sleep / raise as the prompt's ``[fail:...]`` markers ask (see module docstring)."""
    slow = _SLOW_RE.search(prompt)
    if slow:
        time.sleep(min(float(slow.group(1)), MAX_SLOW_S))
    if _FAIL_POLICY in prompt:
        raise ContentPolicyError("The prompt was refused by the (local) content policy.")
    if _FAIL_TRANSIENT in prompt:
        raise TransientProviderError(
            "The (local) provider is temporarily unavailable.", retry_after_s=1.0
        )


def render_prompt_image(
    prompt: str, width: int, height: int, seed: int | None = None
) -> Image.Image:
    """A deterministic RGB picture for `prompt` (pure; no I/O)."""
    if not (0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE):
        raise InvalidInput(f"image size must be within 1..{MAX_IMAGE_SIDE}, got {width}x{height}")
    digest = hashlib.sha256(f"{prompt}\x00{seed}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))

    def colour(lo: int = 20, hi: int = 235) -> tuple[int, int, int]:
        return (rng.randint(lo, hi), rng.randint(lo, hi), rng.randint(lo, hi))

    # background: a diagonal-ish two-colour gradient
    top, bottom = colour(), colour()
    mask = Image.linear_gradient("L").rotate(rng.choice([0, 90, 180, 270]))
    mask = mask.resize((width, height), Image.Resampling.BILINEAR)
    img = Image.composite(
        Image.new("RGB", (width, height), bottom), Image.new("RGB", (width, height), top), mask
    )

    # shapes on a translucent overlay
    overlay = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    unit = min(width, height)
    for _ in range(rng.randint(4, 9)):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.05, 0.3) * unit
        fill = (*colour(0, 255), rng.randint(70, 170))
        kind = rng.choice(("ellipse", "rectangle", "polygon"))
        box = (cx - r, cy - r, cx + r, cy + r)
        if kind == "ellipse":
            draw.ellipse(box, fill=fill)
        elif kind == "rectangle":
            draw.rounded_rectangle(box, radius=r * 0.2, fill=fill)
        else:
            draw.regular_polygon(
                (cx, cy, r), n_sides=rng.randint(3, 7), rotation=rng.uniform(0, 360), fill=fill
            )
    img = Image.alpha_composite(img.convert("RGBA"), overlay)

    # the prompt, wrapped, on a dark band for legibility
    text = _MARKER_RE.sub("", prompt).strip() or "(empty prompt)"
    font_size = max(10, unit // 16)
    font = ImageFont.load_default(size=font_size)
    chars_per_line = max(8, int(width * 0.85 / (font_size * 0.55)))
    lines = textwrap.wrap(text, width=chars_per_line)[:6]
    if len(textwrap.wrap(text, width=chars_per_line)) > 6:
        lines[-1] = lines[-1][: max(1, chars_per_line - 1)] + "…"
    band = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    bdraw = ImageDraw.Draw(band)
    line_h = int(font_size * 1.3)
    block_h = line_h * len(lines)
    y0 = int(height * 0.8) - block_h  # stays in frame through the zoom of the video
    bdraw.rectangle((0, y0 - line_h // 2, width, y0 + block_h + line_h // 3), fill=(0, 0, 0, 120))
    for i, line in enumerate(lines):
        bdraw.text(
            (width // 2, y0 + i * line_h), line, font=font, fill=(255, 255, 255, 255), anchor="ma"
        )
    return Image.alpha_composite(img, band).convert("RGB")


class LocalProvider:
    """Offline provider (name "local"); see the module docstring."""

    name = "local"
    image_model = "local-pillow"
    video_model = "local-kenburns"

    def __init__(self, fps: int = 24, *, stand_in_for: str = DEFAULT_STAND_IN) -> None:
        self.fps = fps
        self.stand_in_for = stand_in_for

    def video_limits(self) -> VideoLimits:
        return replicate_video_limits(self.stand_in_for)

    def takes_reference_image(self) -> bool:
        return True

    def generate_image(self, request: ImageRequest, work_dir: Path) -> GeneratedMedia:
        apply_failure_hooks(request.prompt)
        img = render_prompt_image(request.prompt, request.width, request.height, request.seed)
        work_dir.mkdir(parents=True, exist_ok=True)
        out = work_dir / f"local-image-{_tag(request.prompt, request.seed)}.png"
        img.save(out, format="PNG")
        if request.reference_image is not None:
            # Stand-in for a model that places a reference object in the scene: the offline
            # adapter renders the scene, then composites the reference into it.
            from media.images import composite_product

            composite_product(out, request.reference_image, out)
        return GeneratedMedia(
            path=out,
            content_type="image/png",
            provider=self.name,
            model=self.image_model,
            extra={"width": request.width, "height": request.height},
        )

    def generate_video(self, request: VideoRequest, work_dir: Path) -> GeneratedMedia:
        self.video_limits().check(request.duration_s, request.aspect_ratio)
        apply_failure_hooks(request.prompt)
        width, height = video_size(request.aspect_ratio, request.resolution)
        work_dir.mkdir(parents=True, exist_ok=True)
        tag = _tag(request.prompt, request.seed)
        frame = work_dir / f"local-frame-{tag}.png"
        if request.image is not None:
            try:
                with Image.open(request.image) as src:
                    src.load()
                    seed_img = ImageOps.exif_transpose(src).convert("RGB")
            except (OSError, ValueError) as exc:
                raise MediaError(
                    f"The seed image is not a readable picture: {exc}", code="unreadable-media"
                ) from exc
            seed_img = ImageOps.fit(seed_img, (width, height), Image.Resampling.LANCZOS)
            source = "image"
        else:
            seed_img = render_prompt_image(request.prompt, width, height, request.seed)
            source = "prompt"
        seed_img.save(frame, format="PNG")
        out = work_dir / f"local-video-{tag}.mp4"
        started = time.monotonic()
        render_ken_burns(frame, out, request.duration_s, width, height, fps=self.fps)
        return GeneratedMedia(
            path=out,
            content_type="video/mp4",
            provider=self.name,
            model=self.video_model,
            extra={
                "width": width,
                "height": height,
                "duration_s": request.duration_s,
                "source": source,
                "render_s": round(time.monotonic() - started, 3),
            },
        )


def _tag(prompt: str, seed: int | None) -> str:
    return hashlib.sha256(f"{prompt}\x00{seed}".encode()).hexdigest()[:12]
