"""What the camera API accepts and answers. Passwords go in, never out."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from daemon.cameras.manager import ManagedCamera, Source
from daemon.cameras.monitor import CameraState, CameraStatus
from drivers.camera.model import Probe, Profile
from drivers.camera.stream import StreamStats
from drivers.camera.urls import redact


class CameraIn(BaseModel):
    """A camera added through the API; validated again as a `CameraConfig`."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="Camera id: lowercase letters, digits, '-' or '_'.")
    name: str
    host: str
    port: int = 80
    username: str = "admin"
    password: str | None = Field(None, description="ONVIF password; stored, never returned.")
    share_with_district: bool = False
    share_with_radio: bool = False
    sync_time: bool = False
    enabled: bool = True
    timeout_s: float = 5.0


class CameraPatch(BaseModel):
    """Fields to change; a field left out keeps its value (the password too)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = None
    share_with_district: bool | None = None
    share_with_radio: bool | None = None
    sync_time: bool | None = None
    enabled: bool | None = None
    timeout_s: float | None = None


class ProfileOut(BaseModel):
    token: str
    name: str
    encoding: str
    width: int
    height: int
    fps: float | None
    ptz: bool
    stream_uri: str | None

    @classmethod
    def of(cls, profile: Profile) -> ProfileOut:
        uri = redact(profile.stream_uri) if profile.stream_uri else None
        return cls(
            token=profile.token,
            name=profile.name,
            encoding=profile.encoding,
            width=profile.width,
            height=profile.height,
            fps=profile.fps,
            ptz=profile.ptz,
            stream_uri=uri,
        )


class DeviceOut(BaseModel):
    manufacturer: str
    model: str
    firmware: str
    serial: str


class ProbeOut(BaseModel):
    ok: bool
    status: CameraStatus
    error: str | None = None
    device: DeviceOut | None = None
    ptz: bool | None = None
    clock_offset_s: float | None = None
    profiles: list[ProfileOut] = []
    warnings: list[str] = []

    @classmethod
    def of(cls, probe: Probe) -> ProbeOut:
        d = probe.device
        return cls(
            ok=True,
            status=CameraStatus.DEGRADED if probe.warnings else CameraStatus.ONLINE,
            device=DeviceOut(
                manufacturer=d.manufacturer, model=d.model, firmware=d.firmware, serial=d.serial
            ),
            ptz=probe.ptz,
            clock_offset_s=probe.clock_offset_s,
            profiles=[ProfileOut.of(p) for p in probe.profiles],
            warnings=list(probe.warnings),
        )


class CameraOut(BaseModel):
    id: str
    name: str
    status: CameraStatus
    since: datetime
    last_error: str | None
    share_with_district: bool
    source: Source
    enabled: bool
    model: str | None
    ptz: bool | None

    @classmethod
    def of(cls, camera: ManagedCamera) -> CameraOut:
        state = camera.monitor.state
        probe = state.probe
        return cls(
            id=camera.config.id,
            name=camera.config.name,
            status=state.status,
            since=state.since,
            last_error=state.last_error,
            share_with_district=camera.config.share_with_district,
            source=camera.source,
            enabled=camera.config.enabled,
            model=probe.device.model if probe else None,
            ptz=probe.ptz if probe else None,
        )


class StreamStatsOut(BaseModel):
    """One live capture: how it keeps up (all zero when it is not running)."""

    status: str
    input_fps: float
    output_fps: float
    viewers: int
    decode_ms: float
    encode_ms: float
    bytes_sent: int
    reconnects: int
    last_frame_age_s: float | None
    width: int | None
    height: int | None
    last_error: str | None

    @classmethod
    def of(cls, stats: StreamStats) -> StreamStatsOut:
        return cls(**dataclasses.asdict(stats))


class ReconnectOut(BaseModel):
    reconnects: int
    next_attempt_at: datetime | None
    recent_attempts: list[datetime]


class CameraDetail(CameraOut):
    """Technicians see where the camera is; viewers only what they watch."""

    host: str | None
    port: int | None
    username: str | None
    sync_time: bool
    timeout_s: float
    keepalive_s: float
    device: DeviceOut | None
    profiles: list[ProfileOut]
    main_profile: str | None
    sub_profile: str | None
    clock_offset_s: float | None
    time_synced_at: datetime | None
    reconnect: ReconnectOut
    live: dict[str, StreamStatsOut]

    @classmethod
    def detail(
        cls,
        camera: ManagedCamera,
        *,
        technical: bool = True,
        live: dict[str, StreamStats] | None = None,
    ) -> CameraDetail:
        state: CameraState = camera.monitor.state
        probe = state.probe
        c = camera.config
        profiles = [ProfileOut.of(p) for p in probe.profiles] if probe else []
        if not technical:
            profiles = [p.model_copy(update={"stream_uri": None}) for p in profiles]
        return cls(
            **CameraOut.of(camera).model_dump(),
            host=c.host if technical else None,
            port=c.port if technical else None,
            username=c.username if technical else None,
            sync_time=c.sync_time,
            timeout_s=c.timeout_s,
            keepalive_s=c.keepalive_s,
            device=ProbeOut.of(probe).device if probe else None,
            profiles=profiles,
            main_profile=probe.main.token if probe and probe.main else None,
            sub_profile=probe.sub.token if probe and probe.sub else None,
            clock_offset_s=state.clock_offset_s,
            time_synced_at=state.time_synced_at,
            reconnect=ReconnectOut(
                reconnects=state.reconnects,
                next_attempt_at=state.next_attempt_at,
                recent_attempts=list(state.attempt_times),
            ),
            live={name: StreamStatsOut.of(stats) for name, stats in (live or {}).items()},
        )


class AddResult(BaseModel):
    saved: bool
    probe: ProbeOut
    camera: CameraDetail | None = None


Velocity = Annotated[float, Field(ge=-1.0, le=1.0)]


class PtzMove(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pan: Velocity = 0.0
    tilt: Velocity = 0.0
    zoom: Velocity = 0.0


class PresetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=64)]


class PresetOut(BaseModel):
    token: str
    name: str


class DiscoverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeout_s: Annotated[float, Field(gt=0, le=15)] = 3.0


class DiscoveredOut(BaseModel):
    address: str
    name: str | None
    model: str | None
    xaddrs: list[str]
    scopes: list[str]
    known_id: str | None = Field(None, description="Id of the configured camera at this address.")
