"""Function registration only: one decorated function per trigger, delegating to its family
(handlers/, streaming/, creations/, longform/), and the sweep's one explicit list.

Every option (memory, cpu, timeout, instances, labels, secrets, and each task queue's
RetryConfig and RateLimits) lives in core/runtime.py. Importing this module must stay
cheap: deploy and every cold start import it.
"""

from __future__ import annotations

from firebase_functions import firestore_fn, https_fn, scheduler_fn, storage_fn, tasks_fn

from core import predictions, redrive, runtime
from core.clients import bucket_name, init_app
from core.operations import call
from creations import create, drafts, http_api, worker
from creations import document as creation_document
from handlers import (
    composition_jobs,
    image_jobs,
    multi_video_jobs,
    provider_polls,
    provider_webhooks,
    reconcile,
    sweep,
    video_jobs,
)
from longform import callables as longform_callables
from longform import job as longform_job
from longform import segment_predictions
from longform import step as longform_step
from streaming import assets, continuation, qualities, stalled, trigger
from streaming import document as video_document

init_app()

# The sweep's one explicit list: every job collection it covers, and the checks it runs.
SWEPT_COLLECTIONS = (
    image_jobs.SWEPT,
    video_jobs.SWEPT,
    multi_video_jobs.SWEPT,
    composition_jobs.SWEPT,
    creation_document.SWEPT,
    longform_job.SWEPT,
    video_document.SWEPT,
)
SWEEP_CHECKS = {
    "stalledQualities": stalled.fail_stalled_qualities,
    "stalledAssets": stalled.fail_stalled_assets,
}
# The job kinds whose generations a provider callback finishes (docs/webhooks.md).
CALLBACK_FINISHERS: predictions.Finishers = {
    image_jobs.COLLECTION: image_jobs.finish_from_prediction,
    video_jobs.COLLECTION: video_jobs.finish_from_prediction,
    multi_video_jobs.COLLECTION: multi_video_jobs.finish_scene,
    creation_document.COLLECTION: worker.FINISHER,
    longform_job.COLLECTION: segment_predictions.SEGMENTS,
}
# What the sweep re-drives (collections with `redrive=True`), and the handler that re-runs it.
REDRIVEN: dict[str, redrive.Handler] = {
    image_jobs.COLLECTION: image_jobs.handle,
    video_jobs.COLLECTION: video_jobs.handle,
    multi_video_jobs.COLLECTION: multi_video_jobs.handle,
    composition_jobs.COLLECTION: composition_jobs.handle,
    creation_document.COLLECTION: worker.redrive,
    video_document.COLLECTION: trigger.handle_redrive,
}


@firestore_fn.on_document_created(
    document="image_generation_jobs/{job_id}", **runtime.GENERATION_JOB
)
def handle_image_generation(
    event: firestore_fn.Event[firestore_fn.DocumentSnapshot | None],
) -> None:
    if event.data is not None:
        image_jobs.handle(event.data.reference, event.id)


@scheduler_fn.on_schedule(schedule="every 5 minutes", **runtime.SWEEP)
def sweep_stuck_jobs(event: scheduler_fn.ScheduledEvent) -> None:
    reconcile.queue_lost(CALLBACK_FINISHERS)  # lost callbacks: one reconcile task per slot
    sweep.sweep(SWEPT_COLLECTIONS, SWEEP_CHECKS)


@tasks_fn.on_task_dispatched(**runtime.RECONCILE.options)
def reconcileprediction(req: tasks_fn.CallableRequest) -> None:
    reconcile.handle_task(req, CALLBACK_FINISHERS)


@tasks_fn.on_task_dispatched(**runtime.PROVIDER_POLL.options)
def providerpoll(req: tasks_fn.CallableRequest) -> None:
    provider_polls.handle(req, CALLBACK_FINISHERS)


@https_fn.on_request(**runtime.PROVIDER_WEBHOOK)
def providerwebhook(req: https_fn.Request) -> https_fn.Response:
    return provider_webhooks.handle(req, CALLBACK_FINISHERS)


@tasks_fn.on_task_dispatched(**runtime.REDRIVE.options)
def redrivework(req: tasks_fn.CallableRequest) -> None:
    redrive.handle_task(req, REDRIVEN)


@https_fn.on_call(**runtime.LIGHT_WITH_PROVIDER_KEYS)
def triggerlongformvideojob(req: https_fn.CallableRequest) -> dict:
    return call(longform_callables.trigger, req)


@https_fn.on_call(**runtime.LIGHT)
def replaylongformvideojob(req: https_fn.CallableRequest) -> dict:
    return call(longform_callables.replay, req)


@tasks_fn.on_task_dispatched(**runtime.LONGFORM_STEP.options)
def longformstep(req: tasks_fn.CallableRequest) -> None:
    longform_step.handle_step(req)


@firestore_fn.on_document_created(
    document="video_generation_jobs/{job_id}", **runtime.GENERATION_JOB
)
def handle_video_generation(
    event: firestore_fn.Event[firestore_fn.DocumentSnapshot | None],
) -> None:
    if event.data is not None:
        video_jobs.handle(event.data.reference, event.id)


@firestore_fn.on_document_created(document="multi_video_jobs/{job_id}", **runtime.GENERATION_JOB)
def handle_multi_video_generation(
    event: firestore_fn.Event[firestore_fn.DocumentSnapshot | None],
) -> None:
    if event.data is not None:
        multi_video_jobs.handle(event.data.reference, event.id)


@tasks_fn.on_task_dispatched(**runtime.MULTI_VIDEO_STEP.options)
def multivideostep(req: tasks_fn.CallableRequest) -> None:
    multi_video_jobs.handle_step(req)


@firestore_fn.on_document_created(document="composition_jobs/{job_id}", **runtime.MEDIA_JOB)
def handle_composition(
    event: firestore_fn.Event[firestore_fn.DocumentSnapshot | None],
) -> None:
    if event.data is not None:
        composition_jobs.handle(event.data.reference, event.id)


# --- creations and tokens (creations/, docs/creations.md) -------------------------------
@https_fn.on_call(**runtime.LIGHT_WITH_PROVIDER_KEYS)
def createvideogeneration(req: https_fn.CallableRequest) -> dict:
    return call(create.create_video_generation, req)


@https_fn.on_call(**runtime.LIGHT)
def listdrafts(req: https_fn.CallableRequest) -> dict:
    return call(drafts.list_drafts, req)


@https_fn.on_call(**runtime.LIGHT)
def getcreation(req: https_fn.CallableRequest) -> dict:
    return call(drafts.get_creation, req)


@https_fn.on_call(**runtime.LIGHT)
def deletecreation(req: https_fn.CallableRequest) -> dict:
    return call(drafts.delete_creation, req)


@https_fn.on_call(**runtime.LIGHT)
def publishcreation(req: https_fn.CallableRequest) -> dict:
    return call(drafts.publish_creation, req)


@https_fn.on_request(cors=http_api.CORS, **runtime.LIGHT_WITH_PROVIDER_KEYS)
def generateapi(req: https_fn.Request) -> https_fn.Response:
    return http_api.handle(req)


@tasks_fn.on_task_dispatched(**runtime.CREATION_WORKER.options)
def creationworker(req: tasks_fn.CallableRequest) -> None:
    worker.handle(req)


@firestore_fn.on_document_deleted(document="creations/{creation_id}", **runtime.LIGHT)
def cleanup_deleted_creation(
    event: firestore_fn.Event[firestore_fn.DocumentSnapshot | None],
) -> None:
    drafts.on_deleted(event.params["creation_id"], event.data.to_dict() if event.data else None)


# --- progressive HLS for uploads (streaming/, docs/streaming.md) -------------------------
@storage_fn.on_object_finalized(bucket=bucket_name(), **runtime.STREAM_EVENT)
def handle_video_upload(event: storage_fn.CloudEvent[storage_fn.StorageObjectData]) -> None:
    trigger.handle(event.data, event.id)


@tasks_fn.on_task_dispatched(**runtime.STREAM_CONTINUE.options)
def streamcontinue(req: tasks_fn.CallableRequest) -> None:
    continuation.handle_continue(req)


@tasks_fn.on_task_dispatched(**runtime.GENERATE_QUALITY.options)
def generatequality(req: tasks_fn.CallableRequest) -> None:
    qualities.handle(req)


@tasks_fn.on_task_dispatched(**runtime.STREAM_ASSETS.options)
def streamassets(req: tasks_fn.CallableRequest) -> None:
    assets.handle(req)
