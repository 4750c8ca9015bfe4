"""Refusals and errors as HTTP answers: one JSON shape for every failure,
``{"ok": false, "error": CODE, "message": TEXT}``, and the status that fits."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sealcard.errors import SealcardError
from sealcard.issuer.errors import (
    ConcurrentUpdateError,
    DuplicateRecordError,
    InvalidTransitionError,
    RecordNotFoundError,
)
from sealcard.parties.issuer.activation import ActivationRefusedError
from sealcard.parties.issuer.context import (
    BadRequestError,
    ConflictError,
    NotAllowedError,
    NotFoundError,
    NotSignedInError,
    RateLimitedError,
    RefusedError,
    ServiceUnavailableError,
    SignInRefusedError,
)

log = logging.getLogger("sealcard.web")

STATUS: list[tuple[type[Exception], int]] = [
    (NotSignedInError, 401),
    (SignInRefusedError, 401),
    (RateLimitedError, 429),
    (NotAllowedError, 403),
    (NotFoundError, 404),
    (RecordNotFoundError, 404),
    (ConflictError, 409),
    (InvalidTransitionError, 409),
    (DuplicateRecordError, 409),
    (ConcurrentUpdateError, 409),
    (BadRequestError, 400),
    (ActivationRefusedError, 422),
    (ServiceUnavailableError, 503),
    (RefusedError, 422),
]


def status_of(exc: Exception) -> int:
    for kind, status in STATUS:
        if isinstance(exc, kind):
            return status
    return 400 if isinstance(exc, SealcardError) else 500


def code_of(exc: Exception) -> str:
    if isinstance(exc, RefusedError):
        return exc.code
    if isinstance(exc, RecordNotFoundError):
        return "not_found"
    if isinstance(exc, InvalidTransitionError | DuplicateRecordError | ConcurrentUpdateError):
        return "conflict"
    return "refused" if isinstance(exc, SealcardError) else "internal"


def error_body(code: str, message: str) -> dict[str, object]:
    return {"ok": False, "error": code, "message": message}


def install(app: FastAPI) -> None:
    """Register the handlers on the app."""

    @app.exception_handler(SealcardError)
    async def refused(request: Request, exc: SealcardError) -> JSONResponse:
        status = status_of(exc)
        headers = {}
        if isinstance(exc, RateLimitedError):
            headers["Retry-After"] = str(exc.retry_after_s)
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if status >= 500:  # the message carries no secret (house rule); the type helps support
            log.warning("%s %s: %s", request.method, request.url.path, type(exc).__name__)
        return JSONResponse(error_body(code_of(exc), str(exc)), status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors()[:5]:
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
            problems.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
        return JSONResponse(error_body("malformed", "; ".join(problems)), 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "refused")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
        return JSONResponse(error_body("internal", "internal error (see the server log)"), 500)
