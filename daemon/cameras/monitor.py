"""One camera's life: connect, keep alive, reconnect with backoff, and say why not."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal

from daemon.config import CameraConfig
from drivers.backoff import Backoff, pause
from drivers.camera.grab import GrabError, grab_jpeg_blocking
from drivers.camera.model import (
    CameraAuthError,
    CameraEndpoint,
    CameraError,
    CameraProtocolError,
    CameraUnreachableError,
    Probe,
    Profile,
)
from drivers.camera.onvif import OnvifCamera
from drivers.camera.urls import with_credentials

log = logging.getLogger(__name__)

Stream = Literal["main", "sub"]
RECENT_ATTEMPTS = 10
CLOCK_DRIFT_S = 60.0


class CameraStatus(StrEnum):
    CONNECTING = "connecting"
    ONLINE = "online"
    AUTH_FAILED = "auth_failed"
    UNREACHABLE = "unreachable"
    DEGRADED = "degraded"
    OFFLINE = "offline"


FAILED = frozenset({CameraStatus.AUTH_FAILED, CameraStatus.UNREACHABLE, CameraStatus.DEGRADED})


@dataclass(frozen=True)
class CameraState:
    status: CameraStatus
    since: datetime
    last_error: str | None = None
    reconnects: int = 0
    next_attempt_at: datetime | None = None
    attempt_times: tuple[datetime, ...] = ()
    probe: Probe | None = None
    clock_offset_s: float | None = None
    time_synced_at: datetime | None = None


def status_for(exc: CameraError) -> CameraStatus:
    """The state a failed connection leaves a camera in."""
    if isinstance(exc, CameraAuthError):
        return CameraStatus.AUTH_FAILED
    if isinstance(exc, CameraUnreachableError):
        return CameraStatus.UNREACHABLE
    return CameraStatus.DEGRADED


def endpoint_of(config: CameraConfig) -> CameraEndpoint:
    password = config.password.get_secret_value() if config.password is not None else ""
    return CameraEndpoint(config.host, config.port, config.username, password, config.timeout_s)


class NotConnectedError(CameraError):
    """The camera is not connected right now; its state says why."""


class CameraMonitor:
    def __init__(
        self,
        config: CameraConfig,
        on_change: Callable[[str, CameraState], None],
        backoff: Backoff | None = None,
    ) -> None:
        self.config = config
        self._on_change = on_change
        self._backoff = backoff or Backoff(initial=1.0, cap=60.0)
        self._driver: OnvifCamera | None = None
        self._grab_slot = asyncio.Semaphore(1)
        initial = CameraStatus.CONNECTING if config.enabled else CameraStatus.OFFLINE
        self.state = CameraState(initial, datetime.now(UTC))

    def endpoint(self) -> CameraEndpoint:
        return endpoint_of(self.config)

    async def run(self, stop: asyncio.Event) -> None:
        if not self.config.enabled:
            await stop.wait()
            return
        while not stop.is_set():
            await self._attempt(stop)
            if stop.is_set():
                break
            delay = self._backoff.next_delay()
            self._set(next_attempt_at=datetime.now(UTC) + timedelta(seconds=delay))
            log.info(
                "camera %s: %s; next attempt in %.1f s", self.config.id, self.state.status, delay
            )
            await pause(stop, delay)

    async def _attempt(self, stop: asyncio.Event) -> None:
        attempts = (*self.state.attempt_times, datetime.now(UTC))[-RECENT_ATTEMPTS:]
        # A retry keeps the failure it retries ("auth_failed since 08:00"); only a first
        # attempt, or one after the camera was working, shows as connecting.
        status = self.state.status
        if status not in FAILED:
            status = CameraStatus.CONNECTING
        self._set(status=status, attempt_times=attempts, next_attempt_at=None)
        driver = OnvifCamera(self.endpoint())
        try:
            probe = await driver.connect()
            warnings = list(probe.warnings)
            offset = probe.clock_offset_s
            synced = self.state.time_synced_at
            if self.config.sync_time:
                try:
                    await driver.set_time(datetime.now(UTC))
                    offset, synced = await driver.clock_offset(), datetime.now(UTC)
                except CameraError as exc:
                    # Often only the right to set the clock is missing: still usable.
                    warnings.append(f"Không chỉnh được đồng hồ camera: {exc}")
            warning = "; ".join(warnings) or None
            status = CameraStatus.DEGRADED if warning else CameraStatus.ONLINE
            self._driver = driver
            self._backoff.reset()
            self._set(
                status=status,
                last_error=warning,
                probe=probe,
                clock_offset_s=offset,
                time_synced_at=synced,
            )
            await self._keep_alive(driver, stop)
        except CameraError as exc:
            self._fail(status_for(exc), exc)
        finally:
            self._driver = None
            await driver.close()

    async def _keep_alive(self, driver: OnvifCamera, stop: asyncio.Event) -> None:
        # GetSystemDateAndTime is the cheapest call every camera answers; it also
        # tracks the clock offset the WS-Security timestamps depend on.
        while not stop.is_set():
            await pause(stop, self.config.keepalive_s)
            if stop.is_set():
                return
            offset = await driver.clock_offset()
            self._set(clock_offset_s=offset)
            measured = self.state.probe.clock_offset_s if self.state.probe else offset
            if abs(offset - measured) > CLOCK_DRIFT_S:
                # The library signs with the offset measured at connect time; once the
                # camera's clock has moved (someone set it), a new session is needed.
                log.info(
                    "camera %s: clock moved by %.0f s; reconnecting",
                    self.config.id,
                    offset - measured,
                )
                return

    def _fail(self, status: CameraStatus, exc: CameraError) -> None:
        log.warning("camera %s: %s: %s", self.config.id, status.value, exc)
        self._set(status=status, last_error=str(exc), reconnects=self.state.reconnects + 1)

    def _set(self, **changes: object) -> None:
        old = self.state
        new = replace(old, **changes)  # type: ignore[arg-type]
        if new.status != old.status:
            new = replace(new, since=datetime.now(UTC))
        self.state = new
        self._on_change(self.config.id, new)

    def driver(self) -> OnvifCamera:
        """The live session, for operations (PTZ, reboot, time). Raises if not connected."""
        if self._driver is None:
            reason = self.state.last_error or self.state.status.value
            raise NotConnectedError(f"Camera chưa kết nối: {reason} (not connected)")
        return self._driver

    def profile(self, stream: Stream) -> Profile:
        probe = self.state.probe
        chosen = None if probe is None else (probe.main if stream == "main" else probe.sub)
        if chosen is None:
            raise NotConnectedError(f"Camera không có luồng {stream} (no {stream} stream)")
        return chosen

    async def snapshot(self, stream: Stream) -> bytes:
        """The camera's snapshot (Digest, then Basic); else a frame from its stream."""
        driver, profile = self.driver(), self.profile(stream)
        if profile.snapshot_uri is not None:
            try:
                image = await driver.snapshot(profile)
            except CameraError as exc:
                # e.g. the ONVIF user may not read the snapshot URL: the stream still works.
                log.info(
                    "camera %s: snapshot URL failed (%s); using the stream", self.config.id, exc
                )
                image = None
            if image:
                return image
        uri = profile.stream_uri
        if uri is None or not uri.lower().startswith(("rtsp://", "rtsps://")):
            raise CameraProtocolError("Camera không có ảnh chụp lẫn luồng RTSP (no snapshot)")
        endpoint = self.endpoint()
        url = with_credentials(uri, endpoint.username, endpoint.password)
        # One grab at a time per camera: each holds a worker thread for seconds.
        async with self._grab_slot:
            try:
                # OpenCV blocks while it opens the stream and decodes: keep it off the loop.
                return await asyncio.to_thread(grab_jpeg_blocking, url, endpoint.timeout_s * 2)
            except GrabError as exc:
                raise CameraUnreachableError(f"Không lấy được ảnh từ luồng video: {exc}") from exc

    def stream_url(self, stream: Stream) -> str:
        """The stream's RTSP URL with credentials: for the capture only, never to log."""
        uri = self.profile(stream).stream_uri
        if uri is None or not uri.lower().startswith(("rtsp://", "rtsps://")):
            raise CameraProtocolError("Camera không cho địa chỉ luồng RTSP (no RTSP URI)")
        endpoint = self.endpoint()
        return with_credentials(uri, endpoint.username, endpoint.password)

    async def sync_time(self) -> float:
        driver = self.driver()
        await driver.set_time(datetime.now(UTC))
        offset = await driver.clock_offset()
        self._set(clock_offset_s=offset, time_synced_at=datetime.now(UTC))
        return offset
