"""Local ID tokens for test users.

The tokens are unsigned JWTs (alg "none"), the same shape the Firebase Auth emulator
issues. firebase_admin accepts them only when FIREBASE_AUTH_EMULATOR_HOST is set, which
the local stack sets for its function host and production never does; a deployed
function rejects them.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def local_id_token(uid: str, project_id: str, *, email: str | None = None, **claims: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": f"https://securetoken.google.com/{project_id}",
        "aud": project_id,
        "auth_time": now,
        "user_id": uid,
        "sub": uid,
        "iat": now,
        "exp": now + 3600,
        "firebase": {"identities": {}, "sign_in_provider": "custom"},
        **claims,
    }
    if email:
        payload["email"] = email
        payload["email_verified"] = True
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(payload)}."
