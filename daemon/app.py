"""The FastAPI application: routers, the default-deny gate and authenticated docs."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from daemon.api import (
    audio,
    auth,
    broadcast_events,
    broadcasts,
    cameras,
    health,
    live,
    media,
    reports,
    speakers,
    system,
    web,
)
from daemon.api.deps import authenticate
from daemon.state import AppState

VERSION = "0.1.0"


class SecurityHeaders:
    """Adds the headers every answer carries, touching only the response start.

    A plain ASGI middleware: Starlette's BaseHTTPMiddleware (`@app.middleware`) would
    pass every part of every MJPEG stream through an extra queue and task (the fan-out
    benchmark measured it as most of the per-viewer cost).
    """

    HEADERS = (
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.HEADERS:
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(state: AppState) -> FastAPI:
    # FastAPI's own /docs and /openapi.json would bypass app dependencies; they are
    # re-added below as ordinary routes so they sit behind the same login.
    app = FastAPI(
        title="loacam",
        version=VERSION,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(authenticate)],
    )
    app.state.loacam = state
    for router in (
        health.router,
        auth.router,
        system.router,
        cameras.router,
        live.router,
        speakers.router,
        audio.router,
        broadcasts.router,
        broadcast_events.router,
        reports.router,
        media.router,
        web.router,
    ):
        app.include_router(router)
    # Mounted apps bypass app dependencies: only public, data-free files belong here.
    app.mount("/static", web.static_files(), name="static")

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default 422 echoes the submitted values, which may be a password.
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    app.add_middleware(SecurityHeaders)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="loacam API")

    return app
