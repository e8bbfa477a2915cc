"""Demo part: creations and tokens, the way an app uses them.

Grants a demo user tokens (backend), calls the `createVideoGeneration` callable with the
user's ID token, follows the creation with a listener until it is a draft, lists drafts,
publishes it to the feed; then a creation the provider refuses, which fails and is
refunded. Prints the media URL, the ledger and the balance.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path
from typing import Any

import requests

_FUNCTIONS = Path(__file__).resolve().parent.parent / "functions"
if str(_FUNCTIONS) not in sys.path:
    sys.path.insert(0, str(_FUNCTIONS))

from core import ledger  # noqa: E402
from devtools import ledger_audit  # noqa: E402
from local_stack.stack import LocalStack  # noqa: E402
from local_stack.watch_cli import watch_document  # noqa: E402

USER = "demo-creator"


def _call(stack: LocalStack, name: str, data: dict[str, Any]) -> dict[str, Any]:
    token = stack.sign_in(USER)
    r = requests.post(
        stack.function_url(name),
        json={"data": data},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    body = r.json()
    if r.status_code != 200:
        raise RuntimeError(f"{name}: HTTP {r.status_code} {body.get('error')}")
    return dict(body["result"])


def run(stack: LocalStack) -> bool:
    with contextlib.redirect_stdout(io.StringIO()):  # the backend's structured log line
        grant = ledger.grant(USER, 100, reason="demo welcome bonus")
    print(f"  granted 100 tokens to {USER}: balance {grant.balance_after}")

    created = _call(
        stack,
        "createvideogeneration",
        {
            "prompt": "A paper boat on a rainy street, cinematic",
            "aspectRatio": "16:9",
            "duration": 4,
        },
    )
    cid = created["creationId"]
    print(
        f"  createVideoGeneration -> {cid}: cost {created['cost']} tokens, "
        f"status {created['status']}, about {created['estimatedTime']} s, balance {created['balance']}"
    )
    final = watch_document(f"creations/{cid}", timeout_s=120)
    if final.get("status") != "draft":
        print(f"  creation ended {final.get('status')}: {final.get('error')}")
        return False
    print(
        f"  draft: {final['width']}x{final['height']}, {final['mediaDuration']} s, "
        f"model {final['modelUsed']}, generated in {final['generationTime']} s"
    )
    print(f"  video: {final['mediaUrl']}")
    drafts = _call(stack, "listdrafts", {"limit": 10})
    print(f"  listDrafts: {len(drafts['creations'])} draft(s)")
    published = _call(stack, "publishcreation", {"creationId": cid})
    print(f"  publishCreation -> status {published['status']}, in the public feed as feed/{cid}")

    refused = _call(
        stack,
        "createvideogeneration",
        {"prompt": "[fail:content-policy] something the safety filter refuses", "duration": 4},
    )
    failed = watch_document(f"creations/{refused['creationId']}", timeout_s=60)
    refunded = failed.get("status") == "failed" and failed.get("refunded") is True
    print(f"  refused by the provider: {failed.get('error', {}).get('code')}, refunded: {refunded}")

    print("  ledger:")
    for entry in ledger_audit.entries(USER):
        print(
            f"    {entry['type']:<7} {entry['amount']:>+5}  balance {entry['balanceAfter']:>4}"
            f"  {entry.get('creationId') or entry.get('reason')}"
        )
    balance, total = ledger_audit.audit(USER)
    print(f"  balance {balance} (ledger sum {total}): 100 - 40 for the published video")
    return refunded and balance == total == 60
