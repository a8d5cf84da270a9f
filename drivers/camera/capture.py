"""One camera stream read by OpenCV in a worker thread, published to a `FrameHub`.

The thread decodes each frame once and, only while a viewer wants frames, JPEG-encodes
it once for all of them. It reconnects with backoff when the camera is lost; meanwhile
the event-loop side publishes a placeholder about once a second.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import cv2

from drivers.backoff import Backoff
from drivers.camera.hub import EventRate, Frame, FrameHub, MovingAverage, Viewer
from drivers.camera.placeholder import render_placeholder_jpeg
from drivers.camera.urls import redact

# Under the public module's name, as before the split: logging configuration and
# filters written for `drivers.camera.stream` keep covering the capture thread.
log = logging.getLogger("drivers.camera.stream")

# FFmpeg options OpenCV reads from the environment at every open: RTSP over TCP (UDP
# loses packets on busy LANs) and a 32 KB probe, which opens a stream in ~0.35 s
# instead of ~2 s. grab.py sets the TCP part alone; an operator's own value is kept.
_FFMPEG_OPTIONS_VAR = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
FFMPEG_OPTIONS = "rtsp_transport;tcp|probesize;32768"
if os.environ.get(_FFMPEG_OPTIONS_VAR) in (None, "rtsp_transport;tcp"):
    os.environ[_FFMPEG_OPTIONS_VAR] = FFMPEG_OPTIONS

StreamStatus = Literal["starting", "live", "lost", "stopped"]
UrlSource = str | Callable[[], str]
"""The capture URL, or a zero-argument callable returning it (called in the capture
thread at every (re)connect, so it must be thread-safe and quick). It may carry
credentials: it is kept in memory only, never in a repr, and redacted in logs."""


class StreamError(Exception):
    """Base of live-stream errors."""


@dataclass(frozen=True, slots=True)
class StreamKey:
    camera_id: str
    stream: str = "main"

    def __str__(self) -> str:
        return f"{self.camera_id}/{self.stream}"


@dataclass(frozen=True, slots=True)
class StreamStats:
    status: StreamStatus
    input_fps: float  # frames decoded per second (last 5 s)
    output_fps: float  # frames published to viewers per second, placeholders included
    viewers: int
    decode_ms: float  # capture-thread CPU per frame: demux, decode, colour conversion (avg)
    encode_ms: float  # CPU per JPEG encoding (avg)
    bytes_sent: int  # JPEG bytes handed to viewers, over this capture's life
    reconnects: int  # (re)open attempts after the first one
    last_frame_age_s: float | None  # since the last decoded frame; None before the first
    width: int | None = None
    height: int | None = None
    last_error: str | None = None  # redacted

    @classmethod
    def stopped(cls) -> StreamStats:
        return cls("stopped", 0.0, 0.0, 0, 0.0, 0.0, 0, 0, None)


@dataclass(frozen=True, slots=True)
class CaptureOptions:
    jpeg_quality: int = 80
    stall_after_s: float = 10.0  # no frame for this long: reconnect (also the read timeout)
    open_timeout_s: float = 5.0
    backoff_initial_s: float = 1.0
    backoff_cap_s: float = 30.0
    placeholder_every_s: float = 1.0
    placeholder_size: tuple[int, int] = (640, 360)  # until the stream's own size is known
    join_timeout_s: float = 2.0  # how long stop() waits for a thread stuck in OpenCV


class StreamCapture:
    """One camera stream: an OpenCV capture in a worker thread, feeding one hub."""

    def __init__(
        self,
        key: StreamKey,
        url: UrlSource,
        *,
        options: CaptureOptions | None = None,
        camera_name: str | None = None,
    ) -> None:
        self.key = key
        self.camera_name = camera_name
        self.options = options or CaptureOptions()
        self._url: Callable[[], str] = (lambda: url) if isinstance(url, str) else url
        self._hub: FrameHub | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._stop = threading.Event()
        # Shared with the capture thread, under _lock.
        self._lock = threading.Lock()
        self._status: StreamStatus = "stopped"
        self._since = 0.0
        self._last_frame_at: float | None = None
        self._size: tuple[int, int] | None = None
        self._last_error: str | None = None
        self._reconnects = 0
        self._pending: tuple[bytes, float, tuple[int, int]] | None = None
        self._decoded = EventRate()
        self._decode_s = MovingAverage()
        self._encode_s = MovingAverage()

    def __repr__(self) -> str:
        return f"<StreamCapture {self.key} {self._status}>"

    @property
    def hub(self) -> FrameHub:
        if self._hub is None:
            raise StreamError(f"{self.key}: capture not started")
        return self._hub

    def start(self) -> None:
        """Start the capture thread; call from the event loop that will serve the viewers."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._hub = FrameHub()
        with self._lock:
            self._status, self._since = "starting", time.monotonic()
        # A thread, not the event loop: OpenCV's open and read block for up to their
        # timeouts (seconds, when a camera is gone) and cannot be cancelled.
        self._thread = threading.Thread(
            target=self._run_blocking, name=f"capture-{self.key}", daemon=True
        )
        self._thread.start()
        self._ticker = asyncio.create_task(
            self._send_placeholders(), name=f"placeholder-{self.key}"
        )

    async def stop(self) -> None:
        """Stop reading, end every viewer's `frames()`, wait briefly for the thread."""
        self._stop.set()
        if self._hub is not None:
            self._hub.close()
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.wait([self._ticker])
        thread = self._thread
        if thread is not None and thread.is_alive():
            await asyncio.to_thread(thread.join, self.options.join_timeout_s)
            if thread.is_alive():
                # It releases its capture itself once OpenCV's timeout returns control.
                log.warning("%s: capture thread still blocked in OpenCV; left to finish", self.key)
        with self._lock:
            self._status = "stopped"

    def add_viewer(self, *, counted: bool = True) -> Viewer:
        viewer = Viewer(self.hub, counted=counted)
        self.hub.viewers.add(viewer)
        self.hub.update_demand()
        return viewer

    def remove_viewer(self, viewer: Viewer) -> None:
        self.hub.viewers.discard(viewer)
        self.hub.update_demand()

    @property
    def users(self) -> int:
        """Viewers and snapshot takers attached now."""
        return 0 if self._hub is None else len(self._hub.viewers)

    def latest(self) -> Frame | None:
        return None if self._hub is None else self._hub.latest

    def status(self, now: float | None = None) -> StreamStatus:
        """As the thread last set it, but `lost` as soon as frames are overdue even if
        the thread is still blocked in a read."""
        now = time.monotonic() if now is None else now
        with self._lock:
            status, last = self._status, self._last_frame_at
            since = self._since if last is None else last
        if status in ("starting", "live") and now - since > self.options.stall_after_s:
            return "lost"
        return status

    def stats(self) -> StreamStats:
        now = time.monotonic()
        hub = self._hub
        with self._lock:
            last, size, error = self._last_frame_at, self._size, self._last_error
            reconnects = self._reconnects
        return StreamStats(
            status=self.status(now),
            input_fps=round(self._decoded.per_second(now), 2),
            output_fps=0.0 if hub is None else round(hub.published.per_second(now), 2),
            viewers=0 if hub is None else sum(1 for v in hub.viewers if v.counted),
            decode_ms=round(self._decode_s.value * 1000, 2),
            encode_ms=round(self._encode_s.value * 1000, 2),
            bytes_sent=0 if hub is None else hub.bytes_sent,
            reconnects=reconnects,
            last_frame_age_s=None if last is None else round(now - last, 3),
            width=None if size is None else size[0],
            height=None if size is None else size[1],
            last_error=error,
        )

    # --- event loop side -------------------------------------------------------------

    def _publish_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None and self._hub is not None:
            self._hub.publish(*pending, placeholder=False)

    async def _send_placeholders(self) -> None:
        """While the camera is lost and someone watches, publish the placeholder ~1/s."""
        every = self.options.placeholder_every_s
        hub = self.hub
        while True:
            await asyncio.sleep(every / 4)
            now = time.monotonic()
            latest = hub.latest
            if (
                hub.demand_at == math.inf
                or self.status(now) != "lost"
                or (latest is not None and now - latest.captured_at < every)
            ):
                continue
            with self._lock:
                size = self._size or self.options.placeholder_size
            # Pillow: a few milliseconds of layout and encoding, off the loop.
            jpeg = await asyncio.to_thread(
                render_placeholder_jpeg,
                *size,
                camera_name=self.camera_name,
                quality=self.options.jpeg_quality,
            )
            if self.status() == "lost":  # frames may have resumed meanwhile
                hub.publish(jpeg, time.monotonic(), size, placeholder=True)

    # --- capture thread ---------------------------------------------------------------

    def _run_blocking(self) -> None:
        backoff = Backoff(
            initial=self.options.backoff_initial_s, cap=self.options.backoff_cap_s, jitter=0.2
        )
        first = True
        try:
            while not self._stop.is_set():
                if not first:
                    with self._lock:
                        self._reconnects += 1
                first = False
                try:
                    if self._session_blocking():
                        backoff.reset()
                except cv2.error as error:
                    self._set_lost(redact(f"OpenCV: {error}"))
                if self._stop.is_set():
                    break
                delay = backoff.next_delay()
                log.info("%s: reconnecting in %.1f s", self.key, delay)
                if self._stop.wait(delay):
                    break
        except Exception as error:
            # A broken url factory, a bug: a dying thread must leave a trace and a status.
            log.exception("%s: capture thread failed", self.key)
            self._set_lost(redact(f"capture thread failed: {error}"))

    def _session_blocking(self) -> bool:
        """Open, read until the stream stalls or ends or we stop; True if frames came."""
        url = self._url()
        stall_ms = int(self.options.stall_after_s * 1000)
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(self.options.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            stall_ms,
            # One decoding thread: FFmpeg's frame threading would delay every frame by
            # a frame per extra thread, and the per-frame CPU is then measurable here.
            cv2.CAP_PROP_N_THREADS,
            1,
        ]
        capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
        got_frames = False
        try:
            if not capture.isOpened():
                self._set_lost(f"cannot open {redact(url)}")
                return False
            while not self._stop.is_set():
                started, cpu = time.monotonic(), time.thread_time()
                ok, image = capture.read()
                if not ok:
                    silent = time.monotonic() - started >= self.options.stall_after_s
                    self._set_lost(
                        f"no frame for {self.options.stall_after_s:g} s"
                        if silent
                        else "stream ended"
                    )
                    break
                self._on_frame_blocking(image, time.thread_time() - cpu)
                got_frames = True
        finally:
            capture.release()
        return got_frames

    def _on_frame_blocking(self, image: cv2.typing.MatLike, decode_s: float) -> None:
        if self._stop.is_set():
            return  # a read that ended after stop(): the status stays "stopped"
        captured_at = time.monotonic()
        height, width = image.shape[:2]
        self._decoded.add(captured_at)
        self._decode_s.add(decode_s)
        with self._lock:
            became_live = self._status != "live"
            self._status, self._last_frame_at = "live", captured_at
            self._size, self._last_error = (width, height), None
        if became_live:
            log.info("%s: live, %dx%d", self.key, width, height)
        hub = self._hub
        if hub is None or hub.demand_at > captured_at:
            return  # nobody wants this frame: skip the JPEG encoding
        cpu = time.thread_time()
        ok, jpeg = cv2.imencode(
            ".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.options.jpeg_quality]
        )
        self._encode_s.add(time.thread_time() - cpu)
        if ok:
            self._hand_over_blocking((jpeg.tobytes(), captured_at, (width, height)))

    def _hand_over_blocking(self, frame: tuple[bytes, float, tuple[int, int]]) -> None:
        """Pass a frame to the loop. One callback at a time: a busy loop finds only the
        newest frame waiting, never a backlog."""
        with self._lock:
            scheduled, self._pending = self._pending is not None, frame
        if scheduled or self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._publish_pending)
        except RuntimeError:  # the loop is closed: nobody left to serve
            self._stop.set()

    def _set_lost(self, reason: str) -> None:
        if self._stop.is_set():
            return  # stopping ends reads too: not a loss
        with self._lock:
            was = self._status
            self._status, self._last_error = "lost", reason
        level = logging.WARNING if was != "lost" else logging.INFO
        log.log(level, "%s: %s", self.key, reason)
