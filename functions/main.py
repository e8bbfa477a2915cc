"""Function registration only: one decorated function per trigger, delegating to a handler.

Options (memory, cpu, timeout, instances, labels, secrets) live in core/runtime.py;
behaviour lives in handlers/. Importing this module must stay cheap: deploy and every
cold start import it.
"""

from __future__ import annotations

from core import runtime
from core.clients import init_app
from firebase_functions import firestore_fn, scheduler_fn
from handlers import image_jobs, sweep

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
