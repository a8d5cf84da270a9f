"""Camera API: list and detail for those allowed to see a camera; changes for technicians."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import ValidationError

from daemon.api.camera_models import (
    AddResult,
    CameraDetail,
    CameraIn,
    CameraOut,
    CameraPatch,
    DiscoveredOut,
    DiscoverIn,
    PresetIn,
    PresetOut,
    ProbeOut,
    PtzMove,
)
from daemon.api.deps import Principal, State, audit, require_role
from daemon.auth import Claims, Role
from daemon.cameras.manager import CameraConflictError, ManagedCamera
from daemon.cameras.monitor import CameraMonitor, NotConnectedError, status_for
from daemon.config import CameraConfig
from drivers.camera.model import (
    CameraError,
    CameraUnreachableError,
    CameraUnsupportedError,
)
from drivers.camera.stream import StreamKey

router = APIRouter(prefix="/api/v1/cameras", tags=["cameras"])
Technician = Annotated[Claims, Depends(require_role(Role.TECHNICIAN))]
Stream = Literal["main", "sub"]


def can_view(role: Role, camera: CameraConfig) -> bool:
    """Leaders and technicians see every camera; district and radio only those shared."""
    if role in {Role.ADMIN, Role.TECHNICIAN, Role.LEADER}:
        return True
    if role == Role.DISTRICT:
        return camera.share_with_district
    return role == Role.RADIO and camera.share_with_radio


def visible(state: State, claims: Claims, camera_id: str) -> ManagedCamera:
    camera = state.cameras.get(camera_id)
    if camera is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail="Không có camera này (no such camera)"
        )
    if not can_view(claims.role, camera.config):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="Camera này không được chia sẻ với tài khoản của bạn (not shared with you)",
        )
    return camera


@contextlib.contextmanager
def camera_errors() -> Iterator[None]:
    """Camera trouble becomes a plain answer, never a 500."""
    try:
        yield
    except NotConnectedError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc
    except CameraUnsupportedError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    except CameraUnreachableError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc
    except CameraError as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, detail=str(exc)) from exc
    except CameraConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc


def _as_config(data: dict[str, object]) -> CameraConfig:
    try:
        return CameraConfig.model_validate(data)
    except ValidationError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=[
                {"loc": e["loc"], "msg": e["msg"].removeprefix("Value error, ")}
                for e in exc.errors()
            ],
        ) from exc


@router.get("")
async def list_cameras(state: State, claims: Principal) -> list[CameraOut]:
    """Cameras the caller may see, with their status. Never a password."""
    return [CameraOut.of(c) for c in state.cameras.cameras() if can_view(claims.role, c.config)]


@router.get("/{camera_id}")
async def camera_detail(camera_id: str, state: State, claims: Principal) -> CameraDetail:
    """Status, last error, device, profiles, clock offset and reconnect timing."""
    technical = claims.role in {Role.ADMIN, Role.TECHNICIAN}
    live = {stream: state.live.stats(StreamKey(camera_id, stream)) for stream in ("main", "sub")}
    return CameraDetail.detail(visible(state, claims, camera_id), technical=technical, live=live)


@router.get("/{camera_id}/snapshot.jpg", response_class=Response)
async def snapshot(
    camera_id: str, state: State, claims: Principal, stream: Stream = "main"
) -> Response:
    """A JPEG from the camera (Digest, then Basic), or else a frame of its stream."""
    camera = visible(state, claims, camera_id)
    with camera_errors():
        image = await camera.monitor.snapshot(stream)
    return Response(image, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.post("", status_code=status.HTTP_201_CREATED)
async def add_camera(
    body: CameraIn,
    state: State,
    claims: Technician,
    request: Request,
    *,
    force: Annotated[bool, Query(description="Save even if the camera does not answer")] = False,
) -> AddResult:
    """Probe the camera with these settings, then save it. Answers with the probe's result."""
    config = _as_config(body.model_dump())
    try:
        probe = ProbeOut.of(await state.cameras.probe(config))
    except CameraError as exc:
        probe = ProbeOut(ok=False, status=status_for(exc), error=str(exc))
    if not probe.ok and not force:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail={"message": f"Chưa lưu: {probe.error}", "probe": probe.model_dump(mode="json")},
        )
    with camera_errors():
        camera = await state.cameras.add(config)
    await audit(state, request, claims, "camera.add", config.id)
    return AddResult(saved=True, probe=probe, camera=CameraDetail.detail(camera))


@router.patch("/{camera_id}")
async def update_camera(
    camera_id: str, body: CameraPatch, state: State, claims: Technician, request: Request
) -> CameraDetail:
    """Change a camera added through the API (the password only if given)."""
    current = visible(state, claims, camera_id)
    merged = current.config.model_dump() | {"id": camera_id}
    if current.config.password is not None:
        merged["password"] = current.config.password.get_secret_value()
    merged |= body.model_dump(exclude_unset=True)
    with camera_errors():
        camera = await state.cameras.update(_as_config(merged))
    await audit(state, request, claims, "camera.update", camera_id)
    return CameraDetail.detail(camera)


@router.delete("/{camera_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_camera(camera_id: str, state: State, claims: Technician, request: Request) -> None:
    """Remove a camera added through the API."""
    visible(state, claims, camera_id)
    with camera_errors():
        await state.cameras.remove(camera_id)
    await audit(state, request, claims, "camera.delete", camera_id)


def _ptz_profile(monitor: CameraMonitor) -> str:
    return monitor.profile("main").token


@router.post("/{camera_id}/ptz/move", status_code=status.HTTP_204_NO_CONTENT)
async def ptz_move(camera_id: str, body: PtzMove, state: State, claims: Technician) -> None:
    """Start moving (velocities from -1 to 1) until `ptz/stop`."""
    monitor = visible(state, claims, camera_id).monitor
    with camera_errors():
        await monitor.driver().ptz_move(_ptz_profile(monitor), body.pan, body.tilt, body.zoom)


@router.post("/{camera_id}/ptz/stop", status_code=status.HTTP_204_NO_CONTENT)
async def ptz_stop(camera_id: str, state: State, claims: Technician) -> None:
    monitor = visible(state, claims, camera_id).monitor
    with camera_errors():
        await monitor.driver().ptz_stop(_ptz_profile(monitor))


@router.get("/{camera_id}/ptz/presets")
async def ptz_presets(camera_id: str, state: State, claims: Technician) -> list[PresetOut]:
    monitor = visible(state, claims, camera_id).monitor
    with camera_errors():
        presets = await monitor.driver().presets(_ptz_profile(monitor))
    return [PresetOut(token=p.token, name=p.name) for p in presets]


@router.post("/{camera_id}/ptz/presets", status_code=status.HTTP_201_CREATED)
async def ptz_set_preset(
    camera_id: str, body: PresetIn, state: State, claims: Technician, request: Request
) -> PresetOut:
    """Save the current position under a name."""
    monitor = visible(state, claims, camera_id).monitor
    with camera_errors():
        token = await monitor.driver().set_preset(_ptz_profile(monitor), body.name)
    await audit(state, request, claims, "camera.preset", f"{camera_id}/{token}")
    return PresetOut(token=token, name=body.name)


@router.post("/{camera_id}/ptz/presets/{token}/goto", status_code=status.HTTP_204_NO_CONTENT)
async def ptz_goto(camera_id: str, token: str, state: State, claims: Technician) -> None:
    monitor = visible(state, claims, camera_id).monitor
    with camera_errors():
        await monitor.driver().goto_preset(_ptz_profile(monitor), token)


@router.post("/{camera_id}/reboot")
async def reboot(
    camera_id: str, state: State, claims: Technician, request: Request
) -> dict[str, str]:
    """Restart the camera; it is reconnected by itself when it is back."""
    monitor = visible(state, claims, camera_id).monitor
    with camera_errors():
        message = await monitor.driver().reboot()
    await audit(state, request, claims, "camera.reboot", camera_id)
    return {"message": message}


@router.post("/{camera_id}/sync-time")
async def sync_time(
    camera_id: str, state: State, claims: Technician, request: Request
) -> dict[str, float]:
    """Set the camera's clock from this server's clock; answers the offset left."""
    monitor = visible(state, claims, camera_id).monitor
    with camera_errors():
        offset = await monitor.sync_time()
    await audit(state, request, claims, "camera.sync_time", camera_id)
    return {"clock_offset_s": offset}


@router.post("/discover", dependencies=[Depends(require_role(Role.TECHNICIAN))])
async def discover_cameras(body: DiscoverIn, state: State) -> list[DiscoveredOut]:
    """Ask the LAN for ONVIF cameras (WS-Discovery); known ones are marked with their id."""
    from drivers.camera.discovery import DiscoveryError, discover  # noqa: PLC0415 - rarely used

    try:
        found = await discover(timeout_s=body.timeout_s)
    except DiscoveryError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc
    known = {c.config.host: c.config.id for c in state.cameras.cameras()}
    return [
        DiscoveredOut(
            address=d.address,
            name=d.name,
            model=d.model,
            xaddrs=list(d.xaddrs),
            scopes=list(d.scopes),
            known_id=known.get(d.address),
        )
        for d in found
    ]
