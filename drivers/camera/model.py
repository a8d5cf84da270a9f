"""What the camera driver hands out: errors and plain frozen dataclasses, no zeep objects."""

from __future__ import annotations

from dataclasses import dataclass, field


class CameraError(Exception):
    """Base of camera errors; the message is meant for a technician."""


class CameraAuthError(CameraError):
    """The camera refused the user name or password."""


class CameraUnreachableError(CameraError):
    """No answer: wrong address or port, camera off, network down, or too slow."""


class CameraProtocolError(CameraError):
    """The camera answered, but not in a way loacam can use."""


class CameraUnsupportedError(CameraError):
    """The camera does not offer this function (e.g. PTZ)."""


@dataclass(frozen=True)
class CameraEndpoint:
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    timeout_s: float = 5.0


@dataclass(frozen=True)
class DeviceInfo:
    manufacturer: str
    model: str
    firmware: str
    serial: str
    hardware_id: str


@dataclass(frozen=True)
class Profile:
    token: str
    name: str
    encoding: str  # H264, H265, JPEG, ...
    width: int
    height: int
    fps: float | None
    stream_uri: str | None
    snapshot_uri: str | None
    ptz: bool


@dataclass(frozen=True)
class Probe:
    """What a successful connection learnt about the camera."""

    device: DeviceInfo
    clock_offset_s: float  # camera clock minus server clock
    ptz: bool
    profiles: tuple[Profile, ...]
    main: Profile | None
    sub: Profile | None
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Preset:
    token: str
    name: str


def choose_streams(
    profiles: tuple[Profile, ...],
) -> tuple[Profile | None, Profile | None, tuple[str, ...]]:
    """Main = the largest H.264 profile, sub = the smallest other H.264 one."""
    if not profiles:
        return None, None, ("Camera không có profile video nào (no video profile)",)
    h264 = sorted(
        (p for p in profiles if p.encoding.upper() == "H264"), key=lambda p: p.width * p.height
    )
    if not h264:
        encodings = ", ".join(sorted({p.encoding for p in profiles}))
        ordered = sorted(profiles, key=lambda p: p.width * p.height)
        warning = (
            f"Camera chỉ có luồng {encodings}, không có H.264: hãy bật H.264 trong cài đặt "
            f"camera (only {encodings} streams, no H.264)"
        )
        return ordered[-1], ordered[0] if len(ordered) > 1 else None, (warning,)
    main = h264[-1]
    sub = h264[0] if len(h264) > 1 else None
    warnings = () if main.stream_uri else ("Camera không cho địa chỉ luồng RTSP (no RTSP URI)",)
    return main, sub, warnings
