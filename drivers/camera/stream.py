"""Live view: one OpenCV capture per camera stream, fanned out to every viewer as JPEG.

A `StreamCapture` reads one RTSP stream in a worker thread, decodes each frame once and,
only while someone wants frames, JPEG-encodes it once for all viewers. A `Viewer` always
gets the newest frame: nothing queues per viewer, so a slow one skips frames, delays
nobody and memory stays at one frame per stream plus one per viewer in flight. While the
camera is lost, viewers get a placeholder about once a second, and live frames resume
by themselves after a reconnect. `LiveStreams` starts a capture with its first viewer
and stops it `linger_s` after the last (unless pinned: `always_on`).

    async with LiveStreams(linger_s=10) as streams:
        async with streams.subscribe(StreamKey("motcua-1", "sub"), url_factory) as viewer:
            async for frame in viewer.frames(max_fps=5):
                ...  # frame.jpeg, frame.placeholder

The capture thread lives in `drivers.camera.capture`, the fan-out to viewers in
`drivers.camera.hub`; their public names are re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from drivers.camera.capture import (
    FFMPEG_OPTIONS,
    CaptureOptions,
    StreamCapture,
    StreamError,
    StreamKey,
    StreamStats,
    StreamStatus,
    UrlSource,
)
from drivers.camera.hub import FRESH_S, Frame, Viewer

__all__ = [
    "FFMPEG_OPTIONS",
    "CaptureOptions",
    "Frame",
    "LiveStreams",
    "StreamCapture",
    "StreamError",
    "StreamKey",
    "StreamStats",
    "StreamStatus",
    "StreamsClosedError",
    "UrlSource",
    "Viewer",
]

log = logging.getLogger(__name__)


class StreamsClosedError(StreamError):
    """`LiveStreams` has been closed; no new viewers or pins."""


class LiveStreams:
    """Captures on demand, keyed by (camera, stream), shared by all their viewers."""

    def __init__(self, *, linger_s: float = 10.0, options: CaptureOptions | None = None) -> None:
        self.linger_s = linger_s
        self.options = options or CaptureOptions()
        self._captures: dict[StreamKey, StreamCapture] = {}
        self._pinned: set[StreamKey] = set()
        self._lingering: dict[StreamKey, asyncio.TimerHandle] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._closed = False

    @contextlib.asynccontextmanager
    async def subscribe(
        self,
        key: StreamKey,
        url: UrlSource,
        *,
        camera_name: str | None = None,
        options: CaptureOptions | None = None,
    ) -> AsyncIterator[Viewer]:
        """Watch `key`, starting its capture if needed (`url`, `camera_name` and
        `options` only matter then: the first subscriber's win)."""
        capture = self._ensure(key, url, camera_name, options)
        viewer = capture.add_viewer()
        try:
            yield viewer
        finally:
            capture.remove_viewer(viewer)
            self._release(key, capture)

    def pin(
        self,
        key: StreamKey,
        url: UrlSource,
        *,
        camera_name: str | None = None,
        options: CaptureOptions | None = None,
    ) -> None:
        """`always_on`: run this capture even without viewers, until `unpin`."""
        self._ensure(key, url, camera_name, options)
        self._pinned.add(key)

    def unpin(self, key: StreamKey) -> None:
        self._pinned.discard(key)
        if (capture := self._captures.get(key)) is not None:
            self._release(key, capture)

    def latest(self, key: StreamKey) -> Frame | None:
        """The last frame published by the running capture (may be old when nobody
        watches: check `captured_at`); None without a running capture."""
        capture = self._captures.get(key)
        return None if capture is None else capture.latest()

    async def snapshot(self, key: StreamKey, timeout_s: float = 2.0) -> Frame | None:
        """A fresh frame from the running capture (a placeholder while the camera is
        lost); None if no capture runs or none came within `timeout_s`."""
        capture = self._captures.get(key)
        if capture is None:
            return None
        viewer = capture.add_viewer(counted=False)
        try:
            async with asyncio.timeout(timeout_s):
                return await capture.hub.next_frame(0, time.monotonic() - FRESH_S)
        except TimeoutError:
            return None
        finally:
            capture.remove_viewer(viewer)
            self._release(key, capture)

    def stats(self, key: StreamKey) -> StreamStats:
        capture = self._captures.get(key)
        return StreamStats.stopped() if capture is None else capture.stats()

    def running(self) -> tuple[StreamKey, ...]:
        return tuple(self._captures)

    async def aclose(self) -> None:
        """Stop every capture (ending every viewer's `frames()`)."""
        self._closed = True
        for handle in self._lingering.values():
            handle.cancel()
        self._lingering.clear()
        captures = list(self._captures.values())
        self._captures.clear()
        await asyncio.gather(*(capture.stop() for capture in captures), *self._stopping)

    async def __aenter__(self) -> LiveStreams:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    def _ensure(
        self,
        key: StreamKey,
        url: UrlSource,
        camera_name: str | None,
        options: CaptureOptions | None,
    ) -> StreamCapture:
        if self._closed:
            raise StreamsClosedError("live streams are closed")
        if (handle := self._lingering.pop(key, None)) is not None:
            handle.cancel()
        capture = self._captures.get(key)
        if capture is None:
            capture = StreamCapture(
                key, url, options=options or self.options, camera_name=camera_name
            )
            self._captures[key] = capture
            capture.start()
        return capture

    def _release(self, key: StreamKey, capture: StreamCapture) -> None:
        """After a viewer left: if nobody is left, stop the capture `linger_s` later."""
        if capture.users or key in self._pinned or self._captures.get(key) is not capture:
            return
        if (handle := self._lingering.pop(key, None)) is not None:
            handle.cancel()
        loop = asyncio.get_running_loop()
        self._lingering[key] = loop.call_later(self.linger_s, self._stop_idle, key, capture)

    def _stop_idle(self, key: StreamKey, capture: StreamCapture) -> None:
        self._lingering.pop(key, None)
        if capture.users or key in self._pinned or self._captures.get(key) is not capture:
            return
        del self._captures[key]
        log.info("%s: no viewers for %g s, stopping the capture", key, self.linger_s)
        task = asyncio.create_task(capture.stop(), name=f"stop-{key}")
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)
