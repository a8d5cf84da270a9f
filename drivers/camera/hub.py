"""Fan-out of one stream's newest JPEG frame to its viewers, on the event loop.

The capture (`drivers.camera.capture`) publishes into a `FrameHub`; each `Viewer`
always gets the newest frame, so nothing queues per viewer and a slow one delays
nobody. The hub tells the capture, through `demand_at`, when anyone wants a frame
encoded at all.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

# A rate-capped viewer takes the newest frame at its due time only if it is this fresh;
# otherwise it waits for the next one (at most a frame interval at 15 fps).
FRESH_S = 0.1


@dataclass(frozen=True, slots=True)
class Frame:
    """One JPEG picture, shared by every viewer (never copied per viewer)."""

    jpeg: bytes = field(repr=False)
    captured_at: float  # time.monotonic() when decoded (or rendered, for a placeholder)
    seq: int  # publication order within one capture, from 1; gaps are skipped frames
    width: int
    height: int
    placeholder: bool = False  # the "signal lost" picture, not the camera's


class EventRate:
    """Events per second over the last `window_s`; fed by one thread, read by another."""

    def __init__(self, window_s: float = 5.0) -> None:
        self._window_s = window_s
        self._times: deque[float] = deque(maxlen=1024)
        self._lock = threading.Lock()

    def add(self, when: float) -> None:
        with self._lock:
            self._times.append(when)

    def per_second(self, now: float) -> float:
        with self._lock:
            recent = [t for t in self._times if t >= now - self._window_s]
        return (len(recent) - 1) / (now - recent[0]) if len(recent) > 1 else 0.0


class MovingAverage:
    """Exponentially weighted mean, written by the capture thread only."""

    def __init__(self) -> None:
        self.value = 0.0

    def add(self, sample: float) -> None:
        self.value = sample if self.value == 0.0 else self.value + 0.1 * (sample - self.value)


class FrameHub:
    """The newest frame of one stream and who wants it. Event-loop only, except that
    the capture thread reads `demand_at` (a float: atomic under the GIL)."""

    def __init__(self) -> None:
        self.latest: Frame | None = None
        self.closed = False
        # Encode frames decoded at or after this monotonic time; inf: nobody wants any.
        self.demand_at = math.inf
        self.bytes_sent = 0
        self.published = EventRate()
        self.viewers: set[Viewer] = set()
        self._changed = asyncio.Event()  # replaced at every publication: set() wakes all
        self._seq = 0

    def publish(
        self, jpeg: bytes, captured_at: float, size: tuple[int, int], *, placeholder: bool
    ) -> None:
        if self.closed:
            return
        self._seq += 1
        self.latest = Frame(jpeg, captured_at, self._seq, size[0], size[1], placeholder)
        self.published.add(time.monotonic())
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def next_frame(self, after_seq: int, fresh_since: float) -> Frame | None:
        """The newest frame past `after_seq`, captured at or after `fresh_since`.

        None once the hub is closed.
        """
        while not self.closed:
            frame = self.latest
            if frame is not None and frame.seq > after_seq and frame.captured_at >= fresh_since:
                return frame
            await self._changed.wait()
        return None

    def update_demand(self) -> None:
        self.demand_at = min((viewer.due for viewer in self.viewers), default=math.inf)

    def close(self) -> None:
        self.closed = True
        self._changed.set()


class Viewer:
    """One consumer of a stream (an MJPEG response, a snapshot). Get it from
    `LiveStreams.subscribe`; iterate `frames()` once."""

    def __init__(self, hub: FrameHub, *, counted: bool = True) -> None:
        self._hub = hub
        self.counted = counted  # False for snapshots: not a viewer in the stats
        self.due = 0.0  # when this viewer next wants a frame (monotonic); 0: always
        self.frames_sent = 0
        self.bytes_sent = 0

    async def frames(self, max_fps: float | None = None) -> AsyncIterator[Frame]:
        """Newest frames, at most `max_fps` a second; ends when the capture stops.

        Whatever the consumer does between two frames (a slow socket), it gets the
        newest frame when it comes back: skipped frames are never queued. Iterate one
        `frames()` per viewer at a time.
        """
        if max_fps is not None and max_fps <= 0:
            raise ValueError("max_fps must be positive")
        interval = 1.0 / max_fps if max_fps else 0.0
        last_seq = 0
        due = time.monotonic()
        # Not a frame kept from long before this viewer came (a pinned capture
        # nobody watched); a second covers the placeholder's period.
        fresh_since = due - 1.0
        while True:
            if interval:
                self._set_due(due)
                if (delay := due - time.monotonic()) > 0:
                    await asyncio.sleep(delay)
                fresh_since = due - FRESH_S
            frame = await self._hub.next_frame(last_seq, fresh_since)
            if frame is None:
                return
            last_seq, fresh_since = frame.seq, fresh_since if interval else -math.inf
            self.frames_sent += 1
            self.bytes_sent += len(frame.jpeg)
            self._hub.bytes_sent += len(frame.jpeg)
            if interval:
                # While the consumer writes this one, frames are not encoded for us.
                self._set_due(due + interval)
            yield frame
            # Keep a steady rate; a consumer that fell behind restarts the schedule
            # from now rather than catching up in a burst.
            due = max(due + interval, time.monotonic())

    def _set_due(self, due: float) -> None:
        if self.due != due:
            self.due = due
            self._hub.update_demand()
