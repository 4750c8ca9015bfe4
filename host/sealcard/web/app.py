"""The ASGI app: the JSON API under /v1, the operator console under /console, the OpenAPI
document at /openapi.json. `create_app(services)` builds it; `sealcard issuer serve` runs it
with uvicorn over TLS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse

from sealcard import __version__
from sealcard.web import errors
from sealcard.web.api import build_router
from sealcard.web.services import AppServices

MAX_BODY_BYTES = 64 * 1024  # every request but the intake files


def create_app(services: AppServices) -> FastAPI:
    """The app over `services` (closed when the app shuts down)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = services.workers
        try:
            yield
        finally:
            services.close()

    app = FastAPI(
        title="sealcard issuer API",
        version=__version__,
        description="The issuer system of sealcard over HTTPS: accounts, bulk intake, card "
        "activation on the user's computer, loss, replacement, issuer commands (docs/api.md).",
        docs_url=None,  # the interactive pages load scripts from a CDN: not in a bank
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.services = services
    errors.install(app)
    app.include_router(build_router(services))

    from sealcard.web.console import build_console

    app.include_router(build_console(services))

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        declared = request.headers.get("content-length", "0")
        big = not request.url.path.endswith("/import") and (
            not declared.isdigit() or int(declared) > MAX_BODY_BYTES
        )
        if big:
            return errors_response(413, "body_too_large", "the request body is too large")
        response = await call_next(request)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"  # "no-referrer" makes Origin null
        if services.secure_cookies:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=303)

    return app


def errors_response(status: int, code: str, message: str) -> Response:
    from fastapi.responses import JSONResponse

    return JSONResponse(errors.error_body(code, message), status)
