"""Signed-in users for scripts and tests: real ID tokens from the stack's Auth emulator.

    token = sign_in("user-1", auth_host="127.0.0.1:9099", project_id="demo-media-backend")

`sign_in` signs a user in through the emulator's REST API, the way a client SDK does:
it makes a custom token for the uid (unsigned, which only the Auth emulator accepts) and
exchanges it at `accounts:signInWithCustomToken` for an ID token. The user is created on
first sign-in. Callables and the HTTP API verify the ID token with firebase_admin exactly
as they verify production tokens (the host runs with FIREBASE_AUTH_EMULATOR_HOST set).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

import requests

API_KEY = "demo-api-key"  # any key: the emulator does not check it
_cache: dict[tuple[str, str, str], tuple[str, float]] = {}
_cache_lock = threading.Lock()


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def custom_token(uid: str, project_id: str, **claims: Any) -> str:
    """An unsigned custom token for `uid` (the Auth emulator accepts it; production never does)."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": f"firebase-auth-emulator@{project_id}.iam.gserviceaccount.com",
        "sub": f"firebase-auth-emulator@{project_id}.iam.gserviceaccount.com",
        "aud": "https://identitytoolkit.googleapis.com/google.identity.identitytoolkit.v1.IdentityToolkit",
        "iat": now,
        "exp": now + 3600,
        "uid": uid,
    }
    if claims:
        payload["claims"] = claims
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(payload)}."


def sign_in(uid: str, *, auth_host: str, project_id: str) -> str:
    """A fresh ID token for `uid` from the Auth emulator at `auth_host` (cached ~50 min)."""
    key = (auth_host, project_id, uid)
    with _cache_lock:
        cached = _cache.get(key)
        if cached and cached[1] > time.time():
            return cached[0]
    r = requests.post(
        f"http://{auth_host}/identitytoolkit.googleapis.com/v1/accounts:signInWithCustomToken",
        params={"key": API_KEY},
        json={"token": custom_token(uid, project_id), "returnSecureToken": True},
        timeout=30,
    )
    r.raise_for_status()
    token = str(r.json()["idToken"])
    with _cache_lock:
        _cache[key] = (token, time.time() + 3000)
    return token
