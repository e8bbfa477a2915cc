"""Callable and HTTP plumbing shared by creations and long-form video.

An operation is `(uid, payload) -> dict`. It refuses with an `OperationError` subclass, one
per outcome, each carrying its callable code and its HTTP status, so a callable (`call`)
and the HTTP API (creations/http_api.py) answer the same refusal the same way.
`parse_request` validates a payload with its pydantic model and names the fields;
`signed_in_uid` is the one auth check. docs/creations.md, "API".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from firebase_functions import https_fn, logger
from pydantic import BaseModel, ValidationError

from core.errors import validation_problems

Code = https_fn.FunctionsErrorCode
Operation = Callable[[str, object], dict[str, Any]]


class OperationError(Exception):
    """A refusal with a stable callable code and HTTP status."""

    code: ClassVar[https_fn.FunctionsErrorCode] = Code.INTERNAL
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details

    def to_https_error(self) -> https_fn.HttpsError:
        return https_fn.HttpsError(self.code, self.message, self.details)

    def to_json(self) -> dict[str, Any]:
        """The error body of the callable protocol: {"error": {status, message, details?}}."""
        body: dict[str, Any] = {"status": self.code.name, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class BadRequest(OperationError):
    code = Code.INVALID_ARGUMENT
    http_status = 400


class Unauthenticated(OperationError):
    code = Code.UNAUTHENTICATED
    http_status = 401


class Forbidden(OperationError):
    """The resource exists but belongs to someone else."""

    code = Code.PERMISSION_DENIED
    http_status = 403


class NotFound(OperationError):
    code = Code.NOT_FOUND
    http_status = 404


class WrongState(OperationError):
    """The resource's status does not allow this (e.g. deleting one that is processing)."""

    code = Code.FAILED_PRECONDITION
    http_status = 400


class Unavailable(OperationError):
    code = Code.UNAVAILABLE
    http_status = 503


def parse_request(model: type[BaseModel], payload: object) -> Any:
    """Validate a request (no data reads as `{}`); BadRequest naming the fields otherwise."""
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise BadRequest("the request data must be an object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = validation_problems(exc, "request")
        raise BadRequest(
            "; ".join(problems), {"fields": sorted({p.split(":")[0] for p in problems})}
        ) from exc


def signed_in_uid(req: https_fn.CallableRequest[Any]) -> str:
    """The caller's uid; Unauthenticated for a signed-out caller."""
    if req.auth is None or not req.auth.uid:
        raise Unauthenticated("sign in first")
    return str(req.auth.uid)


def call(operation: Operation, req: https_fn.CallableRequest[Any]) -> dict[str, Any]:
    """Run an operation for a callable: signed-in users only (and App Check when enforced,
    core/app_check.py), typed errors -> HttpsError,
    anything else -> INTERNAL (logged)."""
    from core.app_check import require_for_call  # app_check imports this module

    try:
        uid = signed_in_uid(req)
        require_for_call(req)
    except OperationError as err:
        raise err.to_https_error() from err
    try:
        return operation(uid, req.data)
    except OperationError as err:
        raise err.to_https_error() from err
    except Exception as exc:
        logger.error("operation crashed", userId=uid, operation=operation.__name__, error=repr(exc))
        raise https_fn.HttpsError(Code.INTERNAL, "internal error") from exc
