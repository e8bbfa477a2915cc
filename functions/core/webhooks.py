"""Signed provider callbacks: is this request really from the provider, and is it new?

Replicate signs webhooks with the Standard Webhooks scheme: `webhook-signature` is
`v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">` under the secret
(`whsec_<base64>`, from Replicate's `GET /v1/webhooks/default/secret`, kept as the Firebase
secret REPLICATE_WEBHOOK_SECRET). The check is the `standardwebhooks` package's (constant-time
compare; a timestamp more than 5 minutes off is refused, so an old message cannot be replayed).
A sender retries with the same `webhook-id`: `remember` records each id once it was handled
(create-if-absent), so `seen` recognises a duplicate or a replay and nothing changes; what
makes the work itself happen once is the job's prediction record (core/predictions.py). docs/webhooks.md.
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
from collections.abc import Mapping

from google.api_core import exceptions as gexc
from google.cloud import firestore
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from core.clients import db
from core.lifecycle import now

DELIVERIES = "provider_webhook_deliveries"


class Refused(Exception):
    """Not a genuine, current callback (forged, tampered, stale, unsigned)."""


def verify(secret: str, body: bytes, headers: Mapping[str, str]) -> str:
    """The `webhook-id` of a genuine callback; Refused otherwise."""
    if not secret.strip():
        raise Refused("no webhook secret configured")
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        Webhook(secret.strip()).verify(body, lowered, json_parse=False)
    except (WebhookVerificationError, ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise Refused(str(exc) or type(exc).__name__) from None
    return str(lowered["webhook-id"])


def seen(webhook_id: str) -> bool:
    """Was a callback with this id handled before?"""
    return bool(_record(webhook_id).get().exists)


def remember(webhook_id: str, **fields: object) -> None:
    """Record that the callback with this id was handled (the first record stays)."""
    with contextlib.suppress(gexc.AlreadyExists):
        _record(webhook_id).create({"webhookId": webhook_id[:200], "receivedAt": now(), **fields})


def _record(webhook_id: str) -> firestore.DocumentReference:
    return db().collection(DELIVERIES).document(hashlib.sha256(webhook_id.encode()).hexdigest())
