"""ONVIF cameras through onvif-zeep-async: the only module that sees zeep objects.

Every call has a deadline and every library error is translated into the small
`CameraError` tree below, whose messages are plain words for a technician.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import logging
import os
import socket
from collections.abc import Awaitable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiohttp
import zeep.exceptions
from onvif import ONVIFCamera
from onvif.exceptions import ONVIFAuthError, ONVIFError, ONVIFTimeoutError
from onvif.util import is_auth_error, stringify_onvif_error

from drivers.camera.model import (
    CameraAuthError,
    CameraEndpoint,
    CameraError,
    CameraProtocolError,
    CameraUnreachableError,
    CameraUnsupportedError,
    DeviceInfo,
    Preset,
    Probe,
    Profile,
    choose_streams,
)
from drivers.camera.urls import pin_host, redact

log = logging.getLogger(__name__)

T = TypeVar("T")
PTZ_NAMESPACE = "http://www.onvif.org/ver20/ptz/wsdl"
VIETNAM_TZ = "ICT-7"  # POSIX TZ for UTC+7
PTZ_MOVE_LIMIT = timedelta(seconds=10)
MAX_DETAIL = 200


class OnvifCamera:
    """One ONVIF session. Constructor stores; `connect()` talks; always `close()`."""

    def __init__(self, endpoint: CameraEndpoint) -> None:
        self._endpoint = endpoint
        self._camera: ONVIFCamera | None = None
        self.probe: Probe | None = None

    @property
    def where(self) -> str:
        return f"{self._endpoint.host}:{self._endpoint.port}"

    async def connect(self) -> Probe:
        """GetSystemDateAndTime (clock offset) → services → device info → profiles → URIs."""
        with _reading("connect"):
            return await self._connect()

    async def _connect(self) -> Probe:
        camera = await self._open()
        offset = camera.dt_diff.total_seconds() if camera.dt_diff is not None else 0.0
        devicemgmt = await self._call("connect", camera.create_devicemgmt_service())
        info = await self._call("GetDeviceInformation", devicemgmt.GetDeviceInformation())
        device = DeviceInfo(
            manufacturer=str(info.Manufacturer or ""),
            model=str(info.Model or ""),
            firmware=str(info.FirmwareVersion or ""),
            serial=str(info.SerialNumber or ""),
            hardware_id=str(info.HardwareId or ""),
        )
        has_ptz = PTZ_NAMESPACE in camera.xaddrs
        profiles = await self._profiles(has_ptz=has_ptz)
        main, sub, warnings = choose_streams(profiles)
        self.probe = Probe(device, offset, has_ptz, profiles, main, sub, warnings)
        log.info(
            "camera %s: %s %s, clock offset %.0f s, %d profiles, ptz=%s",
            self.where,
            device.manufacturer,
            device.model,
            offset,
            len(profiles),
            has_ptz,
        )
        return self.probe

    async def _open(self) -> ONVIFCamera:
        """A new library session; it replaces the current one only once it works."""
        e = self._endpoint
        # The library deletes the proxy variables from the whole process: put them back.
        proxies = {k: v for k, v in os.environ.items() if k in {"http_proxy", "https_proxy"}}
        # adjust_time: WS-Security timestamps follow the camera's clock, so a camera an
        # hour off still authenticates. no_cache: no zeep WSDL cache file on disk.
        camera = ONVIFCamera(
            e.host, e.port, e.username, e.password, adjust_time=True, no_cache=True
        )
        os.environ.update(proxies)
        try:
            await self._call("GetSystemDateAndTime/GetServices", camera.update_xaddrs())
        except BaseException:
            await _close_quietly(camera, self.where)
            raise
        old, self._camera = self._camera, camera
        if old is not None:
            await _close_quietly(old, self.where)
        return camera

    async def _profiles(self, *, has_ptz: bool) -> tuple[Profile, ...]:
        camera = self._require()
        media = await self._call("connect", camera.create_media_service())
        found: list[Profile] = []
        host = self._endpoint.host
        for raw in await self._call("GetProfiles", media.GetProfiles()) or []:
            encoder = raw.VideoEncoderConfiguration
            if encoder is None:
                continue
            token = str(raw.token)
            rate = getattr(encoder, "RateControl", None)
            found.append(
                Profile(
                    token=token,
                    name=str(raw.Name or token),
                    encoding=str(encoder.Encoding),
                    width=int(encoder.Resolution.Width),
                    height=int(encoder.Resolution.Height),
                    fps=float(rate.FrameRateLimit) if rate is not None else None,
                    stream_uri=pin_host(await self._stream_uri(media, token), host),
                    snapshot_uri=pin_host(
                        await self._call("GetSnapshotUri", camera.get_snapshot_uri(token)), host
                    ),
                    ptz=has_ptz and getattr(raw, "PTZConfiguration", None) is not None,
                )
            )
        return tuple(found)

    async def _stream_uri(self, media: Any, token: str) -> str | None:
        request = {
            "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
            "ProfileToken": token,
        }
        try:
            answer = await self._call("GetStreamUri", media.GetStreamUri(request))
        except CameraProtocolError as exc:
            log.warning("camera %s: no stream URI for profile %s: %s", self.where, token, exc)
            return None
        return str(answer.Uri) if answer is not None and answer.Uri else None

    async def clock_offset(self) -> float:
        """The cheap keep-alive: GetSystemDateAndTime, answered without authentication."""
        devicemgmt = await self._call("connect", self._require().create_devicemgmt_service())
        answer = await self._call(
            "GetSystemDateAndTime", devicemgmt.authless_GetSystemDateAndTime()
        )
        with _reading("GetSystemDateAndTime"):
            utc = answer.UTCDateTime
            camera_time = datetime(
                utc.Date.Year,
                utc.Date.Month,
                utc.Date.Day,
                utc.Time.Hour,
                utc.Time.Minute,
                utc.Time.Second,
                tzinfo=UTC,
            )
        return (camera_time - datetime.now(UTC)).total_seconds()

    async def set_time(self, now: datetime) -> None:
        """SetSystemDateAndTime (manual) from the server clock, keeping the camera's zone."""
        camera = self._require()
        devicemgmt = await self._call("connect", camera.create_devicemgmt_service())
        current = await self._call(
            "GetSystemDateAndTime", devicemgmt.authless_GetSystemDateAndTime()
        )
        with _reading("GetSystemDateAndTime"):
            zone = current.TimeZone.TZ if current.TimeZone is not None else None
        utc = now.astimezone(UTC)
        request = {
            "DateTimeType": "Manual",
            "DaylightSavings": False,
            # The on-screen clock shows local time: keep the camera's zone, or Vietnam's.
            "TimeZone": {"TZ": zone or VIETNAM_TZ},
            "UTCDateTime": {
                "Date": {"Year": utc.year, "Month": utc.month, "Day": utc.day},
                "Time": {"Hour": utc.hour, "Minute": utc.minute, "Second": utc.second},
            },
        }
        await self._call("SetSystemDateAndTime", devicemgmt.SetSystemDateAndTime(request))
        # The library signs with the offset it measured at connect time, which is now
        # wrong: a fresh session measures the corrected clock (the old one stays usable
        # until the new one works).
        await self._open()

    async def reboot(self) -> str:
        devicemgmt = await self._call("connect", self._require().create_devicemgmt_service())
        answer = await self._call("SystemReboot", devicemgmt.SystemReboot())
        return str(answer or "")

    async def ptz_move(self, profile: str, pan: float, tilt: float, zoom: float) -> None:
        ptz = await self._ptz()
        velocity = {"PanTilt": {"x": pan, "y": tilt}, "Zoom": {"x": zoom}}
        # A Timeout, so a lost Stop (a closed browser tab) does not leave the camera panning.
        request = {"ProfileToken": profile, "Velocity": velocity, "Timeout": PTZ_MOVE_LIMIT}
        await self._call("ContinuousMove", ptz.ContinuousMove(request))

    async def ptz_stop(self, profile: str) -> None:
        ptz = await self._ptz()
        request = {"ProfileToken": profile, "PanTilt": True, "Zoom": True}
        await self._call("Stop", ptz.Stop(request))

    async def presets(self, profile: str) -> tuple[Preset, ...]:
        ptz = await self._ptz()
        answer = await self._call("GetPresets", ptz.GetPresets({"ProfileToken": profile}))
        with _reading("GetPresets"):
            return tuple(Preset(str(p.token), str(p.Name or p.token)) for p in answer or [])

    async def goto_preset(self, profile: str, token: str) -> None:
        ptz = await self._ptz()
        request = {"ProfileToken": profile, "PresetToken": token}
        await self._call("GotoPreset", ptz.GotoPreset(request))

    async def set_preset(self, profile: str, name: str) -> str:
        ptz = await self._ptz()
        request = {"ProfileToken": profile, "PresetName": name}
        return str(await self._call("SetPreset", ptz.SetPreset(request)))

    async def snapshot(self, profile: Profile) -> bytes | None:
        """The camera's own JPEG: HTTP Digest first, then Basic. None if it has none."""
        camera = self._require()
        timeout = self._endpoint.timeout_s
        try:
            image = await self._call(
                "snapshot", camera.get_snapshot(profile.token, timeout=timeout)
            )
        except CameraAuthError:
            image = None
        if image:
            return bytes(image)
        if profile.snapshot_uri is None:
            return None
        return await self._call("snapshot", self._basic_snapshot(profile.snapshot_uri))

    async def _basic_snapshot(self, uri: str) -> bytes | None:
        # Built by hand: the library's Basic path uses an aiohttp API that warns.
        e = self._endpoint
        token = base64.b64encode(f"{e.username}:{e.password}".encode()).decode()
        headers = {"Authorization": f"Basic {token}"}
        client_timeout = aiohttp.ClientTimeout(total=e.timeout_s)
        async with (
            aiohttp.ClientSession(timeout=client_timeout) as session,
            session.get(uri, headers=headers) as response,
        ):
            if response.status == 401:
                raise _auth_error()
            if response.status >= 300 or not response.content_type.startswith("image/"):
                return None
            return await response.read()

    async def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            await _close_quietly(camera, self.where)

    async def _ptz(self) -> Any:
        camera = self._require()
        if PTZ_NAMESPACE not in camera.xaddrs:
            raise CameraUnsupportedError("Camera này không có chức năng PTZ (no PTZ)")
        return await self._call("connect", camera.create_ptz_service())

    def _require(self) -> ONVIFCamera:
        if self._camera is None:
            raise CameraUnreachableError("Chưa kết nối tới camera (not connected)")
        return self._camera

    async def _call(self, what: str, call: Awaitable[T]) -> T:
        """Await one library call within the deadline, translating every failure."""
        timeout = self._endpoint.timeout_s
        try:
            async with asyncio.timeout(timeout):
                return await call
        except (TimeoutError, ONVIFTimeoutError) as exc:
            raise CameraUnreachableError(
                f"Camera không trả lời trong {timeout:g} giây ({what}: no answer in {timeout:g} s)"
            ) from exc
        except ONVIFAuthError as exc:
            raise _auth_error() from exc
        except zeep.exceptions.Fault as exc:
            raise _fault_error(what, exc) from exc
        except zeep.exceptions.TransportError as exc:
            if exc.status_code == 401:
                raise _auth_error() from exc
            raise CameraProtocolError(f"Lỗi HTTP {exc.status_code} khi gọi {what}") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise self._unreachable(exc) from exc
        except ONVIFError as exc:
            if isinstance(exc.__cause__, aiohttp.ClientError | OSError):
                raise self._unreachable(exc.__cause__) from exc
            raise CameraProtocolError(f"Lỗi ONVIF khi gọi {what}: {redact(str(exc))}") from exc
        except CameraError:
            raise
        except Exception as exc:
            # A camera's reply can break the SOAP stack in ways it does not name (an
            # empty Body → IndexError, a Fault without Reason → TypeError). At this
            # edge, any other failure is the camera's, never a reason to stop the daemon.
            raise CameraProtocolError(
                f"Camera trả lời {what} không đúng chuẩn ONVIF ({exc.__class__.__name__})"
            ) from exc

    def _unreachable(self, exc: BaseException) -> CameraUnreachableError:
        return CameraUnreachableError(
            f"Không kết nối được tới camera tại {self.where}: {_network_cause(exc)}"
        )


@contextlib.contextmanager
def _reading(what: str) -> Iterator[None]:
    """Reading a reply: a missing or mistyped element is the camera's fault, not ours."""
    try:
        yield
    except (AttributeError, TypeError, ValueError, LookupError) as exc:
        raise CameraProtocolError(
            f"Camera trả lời {what} thiếu thông tin bắt buộc ({exc.__class__.__name__})"
        ) from exc


async def _close_quietly(camera: ONVIFCamera, where: str) -> None:
    try:
        await camera.close()
    except (aiohttp.ClientError, OSError) as exc:
        log.debug("camera %s: close: %s", where, exc)


def _network_cause(exc: BaseException) -> str:
    """Why a connection failed, in words a technician can act on."""
    root = getattr(exc, "os_error", None) or exc
    if isinstance(root, ConnectionRefusedError):
        return "camera từ chối kết nối — sai cổng, hoặc dịch vụ ONVIF chưa bật (connection refused)"
    if isinstance(root, socket.gaierror):
        return "không tìm thấy địa chỉ này (unknown host name)"
    if isinstance(root, OSError) and root.errno in {errno.EHOSTUNREACH, errno.ENETUNREACH}:
        return "không có đường mạng tới camera (no route to host)"
    return f"lỗi mạng ({root.__class__.__name__})"


def _auth_error() -> CameraAuthError:
    return CameraAuthError(
        "Sai tên đăng nhập hoặc mật khẩu ONVIF, hoặc tài khoản không đủ quyền "
        "(wrong ONVIF user name or password, or the user lacks rights)"
    )


def _fault_error(what: str, fault: zeep.exceptions.Fault) -> CameraError:
    try:
        if is_auth_error(fault):
            return _auth_error()
        text = redact(stringify_onvif_error(fault))
    except (TypeError, AttributeError, ValueError):  # a Fault missing its Reason or Code
        text = "SOAP Fault"
    if "ActionNotSupported" in text:
        return CameraUnsupportedError(f"Camera không hỗ trợ {what} ({what} not supported)")
    # A camera may put a whole HTML page in its fault: keep the message readable.
    return CameraProtocolError(f"Camera từ chối {what}: {text[:MAX_DETAIL]}")
