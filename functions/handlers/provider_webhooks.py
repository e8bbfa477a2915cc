"""The provider callback: `POST providerwebhook?job={collection}/{job_id}` from Replicate.

A job with several generations (a multi-video job's scenes) adds `&slot={scene}`.
Answers, in this order:
- 401 when the request is not a genuine, current callback (core/webhooks.py: Standard
  Webhooks signature under REPLICATE_WEBHOOK_SECRET, timestamp within 5 minutes);
- 400 when it is signed but not a prediction for a job this deployment finishes;
- 200 `duplicate` when its `webhook-id` was seen before (a retry or a replay: nothing changes);
- 200 `ignored` when the prediction has not ended or the job is not waiting for it;
- 200 `finished` once the job was continued exactly as a polling generation would have
  (output copied into our Storage, the job and its scene completed, or the job failed).
Which collections, with which finishers: the explicit list in main.py. docs/webhooks.md.
"""

from __future__ import annotations

import json
from typing import Any

from firebase_functions import https_fn, logger

from core import config, predictions
from core.clients import db
from core.vocabulary import is_id
from core.webhooks import Refused, remember, seen, verify


def handle(req: https_fn.Request, finishers: predictions.Finishers) -> https_fn.Response:
    if req.method != "POST":
        return _answer(405, "method-not-allowed")
    body = req.get_data(cache=True)
    try:
        webhook_id = verify(
            str(config.REPLICATE_WEBHOOK_SECRET.value or ""), body, dict(req.headers.items())
        )
    except Refused as exc:
        logger.warn("provider callback refused", reason=str(exc), path=req.full_path[:300])
        return _answer(401, "invalid-signature")
    prediction = _prediction(body)
    collection, _, job_id = str(req.args.get("job", "")).partition("/")
    slot = req.args.get("slot") or None
    if (
        prediction is None
        or collection not in finishers
        or not is_id(job_id)
        or (slot is not None and not is_id(slot))
    ):
        logger.warn("provider callback for nothing we finish", webhookId=webhook_id,
                    job=req.args.get("job", "")[:300])  # fmt: skip
        return _answer(400, "not-a-prediction-of-ours")
    pid, status = str(prediction["id"]), str(prediction["status"])
    fields = {"predictionId": pid, "status": status, "job": f"{collection}/{job_id}", "slot": slot}
    if seen(webhook_id):
        logger.info("duplicate provider callback ignored", webhookId=webhook_id, jobId=job_id,
                    predictionId=pid)  # fmt: skip
        return _answer(200, "duplicate")
    outcome = "ignored"
    if status in predictions.ENDED:
        ref = db().collection(collection).document(job_id)
        if predictions.finishing(finishers[collection]).finish(ref, prediction, slot):
            outcome = "finished"
        else:
            logger.info("provider callback for a job not waiting for it", webhookId=webhook_id,
                        jobId=job_id, predictionId=pid)  # fmt: skip
    # recorded once handled: a sender's retry after a crash mid-way is handled again (only
    # one finisher can take the job: core/predictions.py), a later replay is a duplicate
    remember(webhook_id, outcome=outcome, **fields)
    return _answer(200, outcome)


def _prediction(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not is_id(data.get("id")) or not data.get("status"):
        return None
    return data


def _answer(status: int, outcome: str) -> https_fn.Response:
    return https_fn.Response(
        json.dumps({"outcome": outcome}), status=status, mimetype="application/json"
    )
