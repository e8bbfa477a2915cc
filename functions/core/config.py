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
    "REPLICATE_IMAGE_MODEL",
    default="black-forest-labs/flux-schnell",
    description="Replicate model for images (Flux).",
)
REPLICATE_VIDEO_MODEL = params.StringParam(
    "REPLICATE_VIDEO_MODEL",
    default="bytedance/seedance-1-lite",
    description="Replicate model for image-to-video (SeeDance: 2 to 12 whole seconds). The offline provider keeps to its limits too.",
)
REPLICATE_COMPOSITE_MODEL = params.StringParam(
    "REPLICATE_COMPOSITE_MODEL",
    default="black-forest-labs/flux-kontext-pro",
    description="Image-conditioned Replicate model for COMPOSITE_METHOD=model: gets the product photo as input_image (the plain image model has no such input).",
)
OPENAI_IMAGE_MODEL = params.StringParam(
    "OPENAI_IMAGE_MODEL", default="gpt-image-1", description="OpenAI image model."
)
VEO_MODEL = params.StringParam(
    "VEO_MODEL",
    default="veo-3.0-fast-generate-001",
    description="Google Veo model (creations, long-form).",
)
# Below the 540 s timeout of the event-triggered jobs, so a slow generation ends as a clear
# `provider-timeout` (and the Replicate prediction is canceled) before the instance is killed.
PROVIDER_TIMEOUT_SECONDS = params.IntParam(
    "PROVIDER_TIMEOUT_SECONDS",
    default=420,
    description="Longest one generation may take at a provider (Replicate prediction, Veo operation, OpenAI request); then the job fails with provider-timeout.",
)
# Webhook-driven generations (docs/webhooks.md): with a URL, Replicate generations create the
# prediction with this webhook and the invocation ends; empty: they poll as before.
PROVIDER_WEBHOOK_URL = params.StringParam(
    "PROVIDER_WEBHOOK_URL",
    default="",
    description="URL of the providerwebhook function (e.g. https://us-central1-PROJECT.cloudfunctions.net/providerwebhook); empty = poll the provider from the job's instance.",
)
REPLICATE_WEBHOOK_SECRET = params.SecretParam("REPLICATE_WEBHOOK_SECRET")
POLL_FROM_TASKS = params.BoolParam(
    "POLL_FROM_TASKS",
    default=True,
    description="Poll providers without callbacks (Veo) from short `providerpoll` task attempts instead of from the job's instance.",
)
WEBHOOK_RECONCILE_AFTER_SECONDS = params.IntParam(
    "WEBHOOK_RECONCILE_AFTER_SECONDS",
    default=120,
    description="The sweep queues a task that asks the provider about a prediction whose callback has not arrived this long after it was created.",
)
PROVIDER_REQUEST_TIMEOUT_SECONDS = params.IntParam(
    "PROVIDER_REQUEST_TIMEOUT_SECONDS",
    default=30,
    description="Timeout of one HTTP request to Replicate or Veo (create, poll); a hung request is retried, then fails with provider-unavailable.",
)

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
MAX_FETCH_BYTES = params.IntParam(
    "MAX_FETCH_BYTES", default=512 * 1024 * 1024, description="Largest file the backend downloads."
)
MAX_MEDIA_DURATION_S = params.IntParam(
    "MAX_MEDIA_DURATION_S", default=3 * 60 * 60, description="Longest media the backend processes."
)

FFMPEG_MAX_SECONDS = params.IntParam(
    "FFMPEG_MAX_SECONDS",
    default=1500,
    description="Upper bound on any single ffmpeg/ffprobe run; a hung process is killed.",
)

# --- images --------------------------------------------------------------------------
COMPOSITE_METHOD = params.StringParam(
    "COMPOSITE_METHOD",
    default="pillow",
    description="pillow (paste the product onto the generated scene) | model (one generation with the product photo as reference: REPLICATE_COMPOSITE_MODEL, or the offline provider).",
)

# --- streaming -----------------------------------------------------------------------
BACKGROUND_QUALITIES = params.BoolParam(
    "BACKGROUND_QUALITIES", default=True, description="Encode 1080p/2160p in task queues."
)
READY_AFTER_SEGMENTS = params.IntParam(
    "READY_AFTER_SEGMENTS",
    default=1,
    description="An upload's stream is `ready` once this many 720p segments are published.",
)
UPLOAD_MAX_BYTES = params.IntParam(
    "UPLOAD_MAX_BYTES",
    default=1024 * 1024 * 1024,
    description="Largest video upload that is streamed (storage.rules also caps uploads at 1 GiB).",
)
UPLOAD_MAX_DURATION_S = params.IntParam(
    "UPLOAD_MAX_DURATION_S", default=2 * 60 * 60, description="Longest video upload streamed."
)
STREAM_MAX_HEIGHT = params.IntParam(
    "STREAM_MAX_HEIGHT", default=2160, description="Highest quality (short side): 720, 1080, 2160."
)
STREAM_INLINE_SECONDS = params.IntParam(
    "STREAM_INLINE_SECONDS",
    default=300,
    description="Media seconds the upload trigger encodes itself; `streamcontinue` tasks do the rest.",
)
STREAM_INLINE_BUDGET_S = params.IntParam(
    "STREAM_INLINE_BUDGET_S",
    default=420,
    description="Wall-clock seconds the upload trigger encodes before handing over (limit 540 s).",
)
STREAM_CHUNK_SECONDS = params.IntParam(
    "STREAM_CHUNK_SECONDS", default=600, description="Media seconds per `streamcontinue` task."
)
QUALITY_CHUNK_SECONDS = params.IntParam(
    "QUALITY_CHUNK_SECONDS",
    default=300,
    description="Media seconds per background-quality task; longer uploads fan out in chunks.",
)
QUALITIES_WITH_LIVE = params.BoolParam(
    "QUALITIES_WITH_LIVE",
    default=True,
    description="Start background qualities once the stream is ready (true) or after 720p ends.",
)
# Covers the `generatequality` queue's whole retry window and its attempts (a unit test checks it).
QUALITY_STALL_SECONDS = params.IntParam(
    "QUALITY_STALL_SECONDS",
    default=9000,
    description="A background quality with no progress for this long is recorded failed by the sweep (its last task attempt was lost).",
)
# Covers the `streamassets` queue's attempts and their backoffs (a unit test checks it).
ASSET_STALL_SECONDS = params.IntParam(
    "ASSET_STALL_SECONDS",
    default=7200,
    description="A stream's storyboard or MP4 download with no answer from its task for this long is recorded failed by the sweep (every attempt was lost).",
)
STREAM_OVERLAP_START = params.BoolParam(
    "STREAM_OVERLAP_START",
    default=True,
    description="Start the live encoder while thumbnail and master are written (publish order kept).",
)
STREAM_EARLY_START = params.BoolParam(
    "STREAM_EARLY_START",
    default=True,
    description="Start the live encoder for a 1080p30 upload when the upload event arrives, beside the probe and before the claim; kept if the probe agrees, else restarted.",
)
DOWNLOAD_QUALITY = params.StringParam(
    "DOWNLOAD_QUALITY",
    default="720p",
    description="Quality of a stream's MP4 download (`downloadUrl`): this one, or the highest below it.",
)
STREAM_BASE_URL = params.StringParam(
    "STREAM_BASE_URL",
    default="",
    description="Public base serving streams/ path-style (CDN); default: the bucket's public path.",
)

# --- long-form video -----------------------------------------------------------------
LONGFORM_MAX_SEGMENTS = params.IntParam(
    "LONGFORM_MAX_SEGMENTS",
    default=20,
    description="Most prompts (segments) one long-form video job may have.",
)

# --- video, multi-video and composition jobs (docs/video-jobs.md) ----------------------
ALLOW_PROVIDER_OVERRIDE = params.BoolParam(
    "ALLOW_PROVIDER_OVERRIDE",
    default=False,
    description="Honour an optional `provider` field on video jobs (tests, admin tools).",
)
VIDEO_RESOLUTION = params.StringParam(
    "VIDEO_RESOLUTION", default="720p", description="480p | 720p | 1080p, unless a job asks."
)
VIDEO_MIN_DURATION_S = params.IntParam(
    "VIDEO_MIN_DURATION_S",
    default=1,
    description="Shortest video a video job or scene may ask for (the video model's own limits apply too).",
)
VIDEO_MAX_DURATION_S = params.IntParam(
    "VIDEO_MAX_DURATION_S",
    default=15,
    description="Longest video a video job or scene may ask for (the video model's own limits apply too).",
)
MAX_SEED_IMAGE_BYTES = params.IntParam(
    "MAX_SEED_IMAGE_BYTES", default=20 * 1024 * 1024, description="Largest seed image fetched."
)
MULTI_VIDEO_MAX_SCENES = params.IntParam(
    "MULTI_VIDEO_MAX_SCENES", default=20, description="Most scenes in one multi-video job."
)
MULTI_VIDEO_PARALLEL = params.IntParam(
    "MULTI_VIDEO_PARALLEL",
    default=2,
    description="Scenes of one multi-video job generated at once.",
)
COMPOSE_MAX_CLIPS = params.IntParam(
    "COMPOSE_MAX_CLIPS", default=30, description="Most clips in one composition."
)
COMPOSE_MAX_CLIP_BYTES = params.IntParam(
    "COMPOSE_MAX_CLIP_BYTES",
    default=200 * 1024 * 1024,
    description="Largest clip a composition fetches.",
)
COMPOSE_MAX_AUDIO_BYTES = params.IntParam(
    "COMPOSE_MAX_AUDIO_BYTES", default=50 * 1024 * 1024, description="Largest audio track fetched."
)
COMPOSE_MAX_DURATION_S = params.IntParam(
    "COMPOSE_MAX_DURATION_S", default=600, description="Total length of a composition's clips."
)
COMPOSE_AUDIO_MODE = params.StringParam(
    "COMPOSE_AUDIO_MODE", default="mix", description="mix (music under clip audio) | replace."
)

# --- creations and tokens (docs/creations.md) ------------------------------------------
CREATION_TOKENS_PER_SECOND = params.IntParam(
    "CREATION_TOKENS_PER_SECOND",
    default=10,
    description="Price of a creation: tokens per second of video (4 s = 40, 6 s = 60, 8 s = 80).",
)
CREATION_PROVIDER = params.StringParam(
    "CREATION_PROVIDER", default="", description="Overrides MEDIA_PROVIDER for creations."
)
CREATION_RESOLUTION = params.StringParam(
    "CREATION_RESOLUTION", default="720p", description="720p | 1080p for creations."
)

# --- abuse protection (docs/app-check.md, docs/limits.md) --------------------------------
ENFORCE_APP_CHECK = params.BoolParam(
    "ENFORCE_APP_CHECK",
    default=True,
    description="Callables and the HTTP API refuse requests without a valid App Check token (off on the local stack).",
)

QUOTA_JOBS_IN_FLIGHT = params.IntParam(
    "QUOTA_JOBS_IN_FLIGHT",
    default=10,
    description="Jobs of one collection (image, video, multi-video, composition) one user may have processing at once; more end failed with quota-exceeded.",
)
QUOTA_JOBS_PER_DAY = params.IntParam(
    "QUOTA_JOBS_PER_DAY",
    default=500,
    description="Jobs of one collection one user may start per UTC day; more end failed with quota-exceeded.",
)
QUOTA_UPLOAD_BYTES_PER_DAY = params.IntParam(
    "QUOTA_UPLOAD_BYTES_PER_DAY",
    default=20 * 1024 * 1024 * 1024,
    description="Bytes of video one user may upload for streaming per UTC day; more end the video failed with quota-exceeded.",
)
QUOTA_UPLOAD_MINUTES_PER_DAY = params.IntParam(
    "QUOTA_UPLOAD_MINUTES_PER_DAY",
    default=600,
    description="Minutes of video one user may upload for streaming per UTC day; more end the video failed with quota-exceeded.",
)

# --- lifecycle -----------------------------------------------------------------------
REDRIVE_MAX_ATTEMPTS = params.IntParam(
    "REDRIVE_MAX_ATTEMPTS",
    default=3,
    description="Attempts in all for an image, video, multi-video or composition job or an upload's live encode whose worker died (lease expired): the sweep re-drives it until then, then fails it lease-expired.",
)
JOB_LEASE_SECONDS = params.IntParam(
    "JOB_LEASE_SECONDS",
    default=15 * 60,
    description="A processing job not updated for this long is swept.",
)
