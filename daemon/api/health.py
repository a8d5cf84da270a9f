"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from daemon.api.deps import State, public, require_role
from daemon.auth import Role

router = APIRouter(tags=["health"])


@router.get("/healthz")
@public
async def healthz() -> dict[str, str]:
    """200 while the event loop answers."""
    return {"status": "ok"}


@router.get("/readyz")
@public
async def readyz(state: State, response: Response) -> dict[str, object]:
    """200 when storage and MQTT are up; 503 naming what is missing."""
    missing = []
    if not await state.check_storage():
        missing.append("storage")
    if not state.mqtt.connected:
        missing.append("mqtt")
    if missing:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return {"ready": not missing, "missing": missing}


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(require_role(Role.TECHNICIAN))],
)
async def metrics(state: State) -> Response:
    """Prometheus text exposition."""
    return Response(generate_latest(state.registry), media_type=CONTENT_TYPE_LATEST)
