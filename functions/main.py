"""Function registration only: one decorated function per trigger, delegating to a handler.

Options (memory, cpu, timeout, instances, labels, secrets) live in core/runtime.py;
behaviour lives in handlers/. Importing this module must stay cheap: deploy and every
cold start import it.
"""

from __future__ import annotations

from firebase_functions import firestore_fn, https_fn, scheduler_fn, storage_fn, tasks_fn

from core import runtime
from core.clients import bucket_name, init_app
from handlers import (
    composition_jobs,
    creation_worker,
    creations,
    http_api,
    image_jobs,
    longform,
    multi_video_jobs,
    qualities,
    sweep,
    uploads,
    video_jobs,
)

init_app()


@firestore_fn.on_document_created(
    document="image_generation_jobs/{job_id}", **runtime.GENERATION_JOB
)
def handle_image_generation(
    event: firestore_fn.Event[firestore_fn.DocumentSnapshot | None],
) -> None:
    if event.data is not None:
        image_jobs.handle(event.data.reference, event.id)


@scheduler_fn.on_schedule(schedule="every 5 minutes", **runtime.LIGHT)
def sweep_stuck_jobs(event: scheduler_fn.ScheduledEvent) -> None:
    sweep.sweep()


@https_fn.on_call(**runtime.LIGHT_WITH_PROVIDER_KEYS)
def triggerlongformvideojob(req: https_fn.CallableRequest) -> dict:
    return longform.trigger(req)


@https_fn.on_call(**runtime.LIGHT)
def replaylongformvideojob(req: https_fn.CallableRequest) -> dict:
    return longform.replay(req)


@tasks_fn.on_task_dispatched(
    retry_config=longform.STEP_RETRY, rate_limits=longform.STEP_RATE_LIMITS, **runtime.MEDIA_JOB
)
def longformstep(req: tasks_fn.CallableRequest) -> None:
    longform.handle_step(req)


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


@tasks_fn.on_task_dispatched(**runtime.GENERATION_STEP)
def multivideostep(req: tasks_fn.CallableRequest) -> None:
    multi_video_jobs.handle_step(req.data, multi_video_jobs.retry_count(req.raw_request.headers))


@firestore_fn.on_document_created(document="composition_jobs/{job_id}", **runtime.MEDIA_JOB)
def handle_composition(
    event: firestore_fn.Event[firestore_fn.DocumentSnapshot | None],
) -> None:
    if event.data is not None:
        composition_jobs.handle(event.data.reference, event.id)


# --- creations and tokens (handlers/creations.py, docs/creations.md) ------------------
@https_fn.on_call(**runtime.LIGHT_WITH_PROVIDER_KEYS)
def createvideogeneration(req: https_fn.CallableRequest) -> dict:
    return creations.call(creations.create_video_generation, req)


@https_fn.on_call(**runtime.LIGHT)
def listdrafts(req: https_fn.CallableRequest) -> dict:
    return creations.call(creations.list_drafts, req)


@https_fn.on_call(**runtime.LIGHT)
def getcreation(req: https_fn.CallableRequest) -> dict:
    return creations.call(creations.get_creation, req)


@https_fn.on_call(**runtime.LIGHT)
def deletecreation(req: https_fn.CallableRequest) -> dict:
    return creations.call(creations.delete_creation, req)


@https_fn.on_call(**runtime.LIGHT)
def publishcreation(req: https_fn.CallableRequest) -> dict:
    return creations.call(creations.publish_creation, req)


@https_fn.on_request(cors=http_api.CORS, **runtime.LIGHT_WITH_PROVIDER_KEYS)
def generateapi(req: https_fn.Request) -> https_fn.Response:
    return http_api.handle(req)


@tasks_fn.on_task_dispatched(
    retry_config=creation_worker.RETRY,
    rate_limits=creation_worker.RATE_LIMITS,
    **runtime.GENERATION_JOB,
)
def creationworker(req: tasks_fn.CallableRequest) -> None:
    creation_worker.handle(req)


@firestore_fn.on_document_deleted(document="creations/{creation_id}", **runtime.LIGHT)
def cleanup_deleted_creation(
    event: firestore_fn.Event[firestore_fn.DocumentSnapshot | None],
) -> None:
    creations.on_deleted(event.params["creation_id"], event.data.to_dict() if event.data else None)


# --- progressive HLS for uploads (handlers/uploads.py, handlers/qualities.py) -------------
@storage_fn.on_object_finalized(bucket=bucket_name(), **runtime.STREAM_EVENT)
def handle_video_upload(event: storage_fn.CloudEvent[storage_fn.StorageObjectData]) -> None:
    uploads.handle(event.data, event.id)


@tasks_fn.on_task_dispatched(
    retry_config=uploads.CONTINUE_RETRY,
    rate_limits=uploads.CONTINUE_RATE_LIMITS,
    **runtime.STREAM_TASK,
)
def streamcontinue(req: tasks_fn.CallableRequest) -> None:
    uploads.handle_continue(req)


@tasks_fn.on_task_dispatched(
    retry_config=qualities.RETRY, rate_limits=qualities.RATE_LIMITS, **runtime.STREAM_TASK
)
def generatequality(req: tasks_fn.CallableRequest) -> None:
    qualities.handle(req)
