"""The web console's login page and its static files (public: they hold no data)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from daemon.api.deps import public

WEB = Path(__file__).resolve().parent.parent / "web"
# Our pages load nothing from elsewhere; this keeps injected markup from running scripts.
PAGE_CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"

router = APIRouter(include_in_schema=False)


@router.get("/")
@public
async def index() -> FileResponse:
    return FileResponse(
        WEB / "index.html",
        headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"},
    )


def static_files() -> StaticFiles:
    return StaticFiles(directory=WEB / "static")
