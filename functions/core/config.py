"""Every tunable and feature flag of the backend, in one place.

Each is a Firebase param (set per project in `functions/.env.<project>` or at deploy
time) with a default; secrets are `SecretParam`s bound on the decorators that need them.
Values are read inside handlers (`.value`), never at import: deploy and cold start import
this module to build the manifest. docs/configuration.md mirrors this table.
"""

from __future__ import annotations

from firebase_functions import params

# --- providers -------------------------------------------------------------------
PROVIDER = params.StringParam(
    "MEDIA_PROVIDER",
    default="auto",
    description="auto | local | replicate | openai | veo. auto = first provider with a key, else local.",
)
IMAGE_PROVIDER = params.StringParam(
    "IMAGE_PROVIDER", default="", description="Overrides MEDIA_PROVIDER for image jobs."
)
REPLICATE_API_TOKEN = params.SecretParam("REPLICATE_API_TOKEN")
OPENAI_API_KEY = params.SecretParam("OPENAI_API_KEY")
GEMINI_API_KEY = params.SecretParam("GEMINI_API_KEY")
PROVIDER_SECRETS = [REPLICATE_API_TOKEN, OPENAI_API_KEY, GEMINI_API_KEY]

REPLICATE_IMAGE_MODEL = params.StringParam(
    "REPLICATE_IMAGE_MODEL", default="black-forest-labs/flux-schnell"
)
REPLICATE_VIDEO_MODEL = params.StringParam(
    "REPLICATE_VIDEO_MODEL", default="bytedance/seedance-1-lite"
)
OPENAI_IMAGE_MODEL = params.StringParam("OPENAI_IMAGE_MODEL", default="gpt-image-1")
VEO_MODEL = params.StringParam("VEO_MODEL", default="veo-3.0-fast-generate-001")

# --- fetching ------------------------------------------------------------------------
ALLOWED_FETCH_HOSTS = params.ListParam(
    "ALLOWED_FETCH_HOSTS",
    default=[
        "replicate.delivery",
        "pbxt.replicate.delivery",
        "oaidalleapiprodscus.blob.core.windows.net",
        "generativelanguage.googleapis.com",
        "storage.googleapis.com",
        "firebasestorage.googleapis.com",
    ],
    description="Hosts (besides our own bucket) the backend may download media from.",
)
MAX_FETCH_BYTES = params.IntParam("MAX_FETCH_BYTES", default=512 * 1024 * 1024)
MAX_MEDIA_DURATION_S = params.IntParam("MAX_MEDIA_DURATION_S", default=3 * 60 * 60)

# --- images --------------------------------------------------------------------------
COMPOSITE_METHOD = params.StringParam(
    "COMPOSITE_METHOD", default="pillow", description="pillow | model (provider-based compositing)."
)

# --- streaming -----------------------------------------------------------------------
BACKGROUND_QUALITIES = params.BoolParam(
    "BACKGROUND_QUALITIES", default=True, description="Encode 1080p/2160p in task queues."
)
READY_AFTER_SEGMENTS = params.IntParam("READY_AFTER_SEGMENTS", default=1)

# --- long-form video -----------------------------------------------------------------
LONGFORM_MAX_SEGMENTS = params.IntParam(
    "LONGFORM_MAX_SEGMENTS",
    default=20,
    description="Most prompts (segments) one long-form video job may have.",
)

# --- lifecycle -----------------------------------------------------------------------
JOB_LEASE_SECONDS = params.IntParam(
    "JOB_LEASE_SECONDS",
    default=15 * 60,
    description="A processing job not updated for this long is swept.",
)
