"""Verifying a provider's signed callback (core/webhooks.py): the Standard Webhooks check,
and the record that makes a duplicate recognisable."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from core.webhooks import Refused, remember, seen, verify
from tests.support.firestore import FakeFirestore, use_fake_firestore

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
OTHER = "whsec_" + base64.b64encode(b"another secret, not Replicate's!").decode()
BODY = b'{"id": "p1", "status": "succeeded", "output": "https://replicate.delivery/x.mp4"}'


def headers(secret: str = SECRET, body: bytes = BODY, *, msg_id: str = "msg_1",
            at: datetime | None = None) -> dict[str, str]:  # fmt: skip
    at = at or datetime.now(UTC)
    return {
        "Webhook-Id": msg_id,
        "Webhook-Timestamp": str(int(at.timestamp())),
        "Webhook-Signature": Webhook(secret).sign(msg_id, at, body.decode()),
    }


def test_a_genuine_callback_gives_its_webhook_id() -> None:
    assert verify(SECRET, BODY, headers()) == "msg_1"


def test_one_valid_signature_among_several_is_enough() -> None:
    """Senders list several signatures while they rotate secrets."""
    h = headers()
    h["Webhook-Signature"] = f"{headers(OTHER)['Webhook-Signature']} {h['Webhook-Signature']}"
    assert verify(SECRET, BODY, h) == "msg_1"


@pytest.mark.parametrize(
    "case",
    ["forged", "tampered", "stale", "future", "no-headers", "garbage", "other-id", "no-secret"],
)
def test_anything_else_is_refused(case: str) -> None:
    body, h, secret = BODY, headers(), SECRET
    if case == "forged":
        h = headers(OTHER)
    elif case == "tampered":
        body = BODY.replace(b"x.mp4", b"y.mp4")
    elif case == "stale":  # a replay of an old message
        h = headers(at=datetime.now(UTC) - timedelta(minutes=6))
    elif case == "future":
        h = headers(at=datetime.now(UTC) + timedelta(minutes=6))
    elif case == "no-headers":
        h = {}
    elif case == "garbage":
        h["Webhook-Signature"] = "not-a-signature"
    elif case == "other-id":  # the id is signed too
        h["Webhook-Id"] = "msg_2"
    elif case == "no-secret":
        secret = " "
    with pytest.raises(Refused):
        verify(secret, body, h)


def test_a_handled_webhook_id_is_seen_after(monkeypatch: pytest.MonkeyPatch) -> None:
    fake: FakeFirestore = use_fake_firestore(monkeypatch)
    assert not seen("msg_1")
    remember("msg_1", outcome="finished")
    remember("msg_1", outcome="ignored")  # a concurrent copy: the first record stays
    remember("msg_2")
    assert seen("msg_1") and seen("msg_2") and not seen("msg_3")
    (first,) = [d for d in fake.docs.values() if d["webhookId"] == "msg_1"]
    assert first["outcome"] == "finished"
    assert len([p for p in fake.docs if p.startswith("provider_webhook_deliveries/")]) == 2
