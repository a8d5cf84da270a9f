"""The daemon's own state, for technicians: loops, MQTT link, storage."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from daemon.api.deps import State, require_role
from daemon.auth import Role
from daemon.supervisor import ChildStatus

router = APIRouter(
    prefix="/api/v1/system",
    tags=["system"],
    dependencies=[Depends(require_role(Role.TECHNICIAN))],
)


class LoopOut(BaseModel):
    name: str
    status: ChildStatus
    since: datetime
    restarts: int
    last_error: str | None


class MqttOut(BaseModel):
    connected: bool
    since: datetime
    last_error: str | None
    connects: int


class SystemStatus(BaseModel):
    site: str
    started_at: datetime
    summary: str
    storage_ok: bool
    mqtt: MqttOut
    loops: list[LoopOut]


@router.get("/status")
async def system_status(state: State) -> SystemStatus:
    """Every supervised loop with its state, restarts and last error in plain words."""
    await state.check_storage()
    link = state.mqtt.state
    return SystemStatus(
        site=state.config.site,
        started_at=state.started_at,
        summary=state.summary(),
        storage_ok=state.storage_ok,
        mqtt=MqttOut(
            connected=link.connected,
            since=link.since,
            last_error=link.last_error,
            connects=link.connects,
        ),
        loops=[LoopOut(**vars(child)) for child in state.supervisor.states],
    )
