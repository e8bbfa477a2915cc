"""The published input schemas of the models our adapters call, in one declarative place.

Each entry is the provider's own description of what one model accepts, written as the
JSON Schema subset the providers publish (type, enum, minimum/maximum, maxLength,
required, items, format): for Replicate the model version's `openapi_schema` Input
component (what `input` may hold), for OpenAI and Veo the whole request body. Where a
provider refuses fields it does not know, the schema says `additionalProperties: false`;
where it silently ignores them (Replicate model inputs, Vertex `instances`/`parameters`),
it says nothing, and the test fake records the ignored fields so a test fails on them.

Production reads these for the model limits (`video_limits`: durations, aspect ratios;
`takes_input`: whether an input such as `input_image` exists); the fake provider API in
tests/fakes/ validates every request against them. Sources are cited per entry; when a
provider publishes a new version, update the entry and its source together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from core.vocabulary import ASPECT_RATIOS
from providers.base import VideoLimits

Api = Literal["replicate", "openai", "veo"]


@dataclass(frozen=True)
class ModelSchema:
    api: Api
    model: str  # "owner/name" (Replicate) or the model id (OpenAI, Veo)
    kind: Literal["image", "video"]
    source: str  # where the schema was read
    schema: Mapping[str, Any]  # Replicate: the `input` object; OpenAI / Veo: the request body
    output: Literal["uri", "uri-list", "inline"] = "inline"  # Replicate's output shape
    versions: tuple[str, ...] = ()  # published Replicate version ids with this schema


_URI = {"type": "string", "format": "uri", "nullable": True}
_SEED = {"type": "integer", "nullable": True}


def _replicate(
    model: str,
    version: str,
    kind: Literal["image", "video"],
    output: Literal["uri", "uri-list"],
    properties: Mapping[str, Any],
) -> ModelSchema:
    """A Replicate model version: its API tab (the version's openapi_schema Input) is at
    https://replicate.com/{model}/versions/{version}/api; every input but `prompt` is
    optional there."""
    return ModelSchema(
        api="replicate",
        model=model,
        kind=kind,
        source=f"https://replicate.com/{model}/versions/{version}/api",
        output=output,
        versions=(version,),
        schema={"type": "object", "required": ["prompt"], "properties": properties},
    )


# black-forest-labs/flux-schnell, version c846a699...: text-to-image only (no image input).
FLUX_SCHNELL = _replicate(
    "black-forest-labs/flux-schnell",
    "c846a69991daf4c0e5d016514849d14ee5b2e6846ce6b9d6f21369e564cfe51e",
    "image",
    "uri-list",
    {
        "prompt": {"type": "string"},
        "aspect_ratio": {
            "type": "string",
            "enum": [
                "1:1",
                "16:9",
                "21:9",
                "3:2",
                "2:3",
                "4:5",
                "5:4",
                "3:4",
                "4:3",
                "9:16",
                "9:21",
            ],
            "default": "1:1",
        },
        "num_outputs": {"type": "integer", "minimum": 1, "maximum": 4, "default": 1},
        "num_inference_steps": {"type": "integer", "minimum": 1, "maximum": 4, "default": 4},
        "seed": _SEED,
        "output_format": {"type": "string", "enum": ["webp", "jpg", "png"], "default": "webp"},
        "output_quality": {"type": "integer", "minimum": 0, "maximum": 100, "default": 80},
        "disable_safety_checker": {"type": "boolean", "default": False},
        "go_fast": {"type": "boolean", "default": True},
        "megapixels": {"type": "string", "enum": ["1", "0.25"], "default": "1"},
    },
)

# black-forest-labs/flux-kontext-pro, version 0a138193...: image-conditioned (`input_image`).
# safety_tolerance: "2 is currently the maximum allowed when input images are used".
FLUX_KONTEXT_PRO = _replicate(
    "black-forest-labs/flux-kontext-pro",
    "0a1381936934845a14efcc9f309ce7d031cb905867878b5c5830280e00e97606",
    "image",
    "uri",
    {
        "prompt": {"type": "string"},
        "input_image": _URI,
        "aspect_ratio": {
            "type": "string",
            "enum": [
                "match_input_image",
                "1:1",
                "16:9",
                "9:16",
                "4:3",
                "3:4",
                "3:2",
                "2:3",
                "4:5",
                "5:4",
                "21:9",
                "9:21",
                "2:1",
                "1:2",
            ],
            "default": "match_input_image",
        },
        "prompt_upsampling": {"type": "boolean", "default": False},
        "seed": _SEED,
        "output_format": {"type": "string", "enum": ["jpg", "png"], "default": "png"},
        "safety_tolerance": {"type": "integer", "minimum": 0, "maximum": 6, "default": 2},
    },
)

# bytedance/seedance-1-lite, version f22bbc7d...: `duration` is an integer of 2 to 12 s;
# "aspect_ratio: Video aspect ratio. Ignored if an image is used."
SEEDANCE_1_LITE = _replicate(
    "bytedance/seedance-1-lite",
    "f22bbc7d965c70af30ba3b157e3bb05d232136555885e934b92878ad773f48c1",
    "video",
    "uri",
    {
        "prompt": {"type": "string"},
        "image": _URI,
        "duration": {"type": "integer", "minimum": 2, "maximum": 12, "default": 5},
        "resolution": {"type": "string", "enum": ["480p", "720p", "1080p"], "default": "720p"},
        "aspect_ratio": {
            "type": "string",
            "enum": ["16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "9:21"],
            "default": "16:9",
        },
        "fps": {"type": "integer", "enum": [24], "default": 24},
        "camera_fixed": {"type": "boolean", "default": False},
        "seed": _SEED,
        "last_frame_image": _URI,
        "reference_images": {
            "type": "array",
            "items": {"type": "string", "format": "uri"},
            "minItems": 1,
            "maxItems": 4,
            "nullable": True,
        },
    },
)


# OpenAI `POST /v1/images/generations` (API reference, "Create image"):
# https://platform.openai.com/docs/api-reference/images/create
# Unknown parameters are refused (400 `unknown_parameter`, e.g. `response_format` sent to a
# GPT image model, `moderation` sent to dall-e-3).
def _openai(model: str, properties: Mapping[str, Any]) -> ModelSchema:
    """One image model's parameters of `POST /v1/images/generations` (only `prompt` is
    required; anything else is refused)."""
    return ModelSchema(
        api="openai",
        model=model,
        kind="image",
        source="https://platform.openai.com/docs/api-reference/images/create",
        schema={
            "type": "object",
            "required": ["prompt"],
            "additionalProperties": False,
            "properties": {"model": {"type": "string"}, "user": {"type": "string"}, **properties},
        },
    )


GPT_IMAGE_1 = _openai(
    "gpt-image-1",
    {
        "prompt": {"type": "string", "maxLength": 32000},
        "n": {"type": "integer", "minimum": 1, "maximum": 10},
        "quality": {"type": "string", "enum": ["auto", "high", "medium", "low"]},
        "size": {"type": "string", "enum": ["auto", "1024x1024", "1536x1024", "1024x1536"]},
        "background": {"type": "string", "enum": ["transparent", "opaque", "auto"]},
        "moderation": {"type": "string", "enum": ["low", "auto"]},
        "output_format": {"type": "string", "enum": ["png", "jpeg", "webp"]},
        "output_compression": {"type": "integer", "minimum": 0, "maximum": 100},
        "stream": {"type": "boolean"},
        "partial_images": {"type": "integer", "minimum": 0, "maximum": 3},
    },
)
DALL_E_3 = _openai(
    "dall-e-3",
    {
        "prompt": {"type": "string", "maxLength": 4000},
        "n": {"type": "integer", "minimum": 1, "maximum": 1},
        "quality": {"type": "string", "enum": ["standard", "hd"]},
        "response_format": {"type": "string", "enum": ["url", "b64_json"]},
        "size": {"type": "string", "enum": ["1024x1024", "1792x1024", "1024x1792"]},
        "style": {"type": "string", "enum": ["vivid", "natural"]},
    },
)


def _veo3(model: str, card: str) -> ModelSchema:
    """Veo 3 on Vertex AI, `...:predictLongRunning` (the body google-genai sends).

    Request reference:
    https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/veo-video-generation
    (durationSeconds "Required", 4, 6 or 8 s for Veo 3 models; generateAudio "Required" for
    Veo 3 models; aspectRatio 16:9 | 9:16; resolution 720p | 1080p; sampleCount 1-4; seed
    uint32) and the model card `card`. Unknown top-level fields are refused by the JSON
    parser ("Invalid JSON payload received. Unknown name ..."); `instances` and
    `parameters` are free-form protobuf Values, so unknown names inside them are ignored.
    """
    media = {
        "type": "object",
        "required": ["mimeType"],
        "properties": {
            "bytesBase64Encoded": {"type": "string"},
            "gcsUri": {"type": "string"},
            "mimeType": {"type": "string", "enum": ["image/jpeg", "image/png"]},
        },
    }
    return ModelSchema(
        api="veo",
        model=model,
        kind="video",
        source=card,
        schema={
            "type": "object",
            "required": ["instances", "parameters"],
            "additionalProperties": False,
            "properties": {
                "instances": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "prompt": {"type": "string"},
                            "image": media,
                            "lastFrame": media,
                        },
                    },
                },
                "parameters": {
                    "type": "object",
                    "required": ["durationSeconds", "generateAudio"],
                    "properties": {
                        "aspectRatio": {"type": "string", "enum": ["16:9", "9:16"]},
                        "compressionQuality": {"type": "string", "enum": ["optimized", "lossless"]},
                        "durationSeconds": {"type": "integer", "enum": [4, 6, 8]},
                        "enhancePrompt": {"type": "boolean"},
                        "generateAudio": {"type": "boolean"},
                        "negativePrompt": {"type": "string"},
                        "personGeneration": {
                            "type": "string",
                            "enum": ["allow_adult", "dont_allow", "allow_all"],
                        },
                        "resolution": {"type": "string", "enum": ["720p", "1080p"]},
                        "sampleCount": {"type": "integer", "minimum": 1, "maximum": 4},
                        "seed": {"type": "integer", "minimum": 0, "maximum": 4294967295},
                        "storageUri": {"type": "string"},
                    },
                },
                "labels": {"type": "object"},
            },
        },
    )


VEO_3_FAST = _veo3(
    "veo-3.0-fast-generate-001",
    "https://cloud.google.com/vertex-ai/generative-ai/docs/models/veo/3-0-fast-generate-001",
)
VEO_3 = _veo3(
    "veo-3.0-generate-001",
    "https://cloud.google.com/vertex-ai/generative-ai/docs/models/veo/3-0-generate-001",
)

SCHEMAS: dict[str, ModelSchema] = {
    s.model: s
    for s in (
        FLUX_SCHNELL,
        FLUX_KONTEXT_PRO,
        SEEDANCE_1_LITE,
        GPT_IMAGE_1,
        DALL_E_3,
        VEO_3_FAST,
        VEO_3,
    )
}


def schema_for(model: str) -> ModelSchema | None:
    """The schema of `model` ("owner/name", "owner/name:version" or a model id), if known."""
    ref = model.split(":", 1)[0].strip()
    if ref in SCHEMAS:
        return SCHEMAS[ref]
    for s in SCHEMAS.values():  # a bare Replicate version id
        if ref in s.versions:
            return s
    return None


def takes_input(model: str, name: str) -> bool | None:
    """Whether the model's schema has the top-level input `name` (None: schema unknown)."""
    s = schema_for(model)
    if s is None:
        return None
    return name in s.schema.get("properties", {})


def property_at(schema: Mapping[str, Any], path: Sequence[str]) -> Mapping[str, Any] | None:
    node: Mapping[str, Any] | None = schema
    for name in path:
        node = (node or {}).get("properties", {}).get(name)
    return node


def video_limits(
    model: str, *, duration: Sequence[str], aspect_ratio: Sequence[str]
) -> VideoLimits:
    """The durations and aspect ratios `model` accepts, read from its schema (the property
    paths name where a given API keeps them). A model without a known schema gets no
    limits of its own (job params still apply)."""
    s = schema_for(model)
    if s is None:
        return VideoLimits(model=model)
    prop = property_at(s.schema, duration) or {}
    whole = prop.get("type") == "integer"
    choices = tuple(int(v) for v in prop.get("enum", ()))
    lo = float(prop.get("minimum", min(choices, default=0.0)))
    hi = float(prop.get("maximum", max(choices, default=math.inf)))
    aspects = (property_at(s.schema, aspect_ratio) or {}).get("enum")
    allowed = tuple(a for a in ASPECT_RATIOS if aspects is None or a in aspects)
    return VideoLimits(
        model=s.model, min_s=lo, max_s=hi, whole_seconds=whole, choices=choices,
        aspect_ratios=allowed,
    )  # fmt: skip


def replicate_video_limits(model: str) -> VideoLimits:
    """A Replicate video model's limits: its `duration` and `aspect_ratio` inputs
    (SeeDance: 2 to 12 whole seconds, every aspect ratio of ours)."""
    return video_limits(model, duration=["duration"], aspect_ratio=["aspect_ratio"])


def veo_video_limits(model: str) -> VideoLimits:
    """A Veo model's limits: `parameters.durationSeconds` and `parameters.aspectRatio`
    (Veo 3: 4, 6 or 8 seconds; 16:9 or 9:16)."""
    return video_limits(
        model,
        duration=["parameters", "durationSeconds"],
        aspect_ratio=["parameters", "aspectRatio"],
    )
