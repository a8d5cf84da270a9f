"""A simulated speaker's amplifier: one item at a time, priorities, pre-emption, stop.

Playing is downloading and decoding the real file (to learn its length), then sleeping
that length divided by the fleet's speed. A live play (a relayed stream) is the real
thing: ffmpeg decodes the stream as it comes, in real time, until `stop`, pre-emption
or `ends_at` (unless the `ignore_ends_at` fault is on). Events and state go out
through the host speaker, which owns the MQTT link.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from drivers.sim.speaker_media import MediaError, MediaLibrary
from drivers.sim.speaker_protocol import PRIORITY_RANK, Command, PlayRecord, SpeakerFaults

log = logging.getLogger(__name__)


@dataclass(eq=False)
class ActivePlay:
    index: int  # into Amplifier.plays
    cmd_id: str
    item_id: str
    url: str
    priority: str
    volume: int
    started: bool = False
    ended: bool = False  # the closing event is sent once
    task: asyncio.Task[None] | None = None
    ends_at: datetime | None = None  # a live play: a relayed stream, until then


class PlaybackHost(Protocol):
    """What the amplifier needs from the speaker it is part of."""

    @property
    def faults(self) -> SpeakerFaults: ...

    def send_event(self, event: str, play: ActivePlay, extra: Mapping[str, object]) -> None: ...

    def send_state(self) -> None: ...

    def notify_change(self) -> None: ...


class Amplifier:
    def __init__(
        self, speaker_id: str, *, host: PlaybackHost, media: MediaLibrary, speed: float
    ) -> None:
        self.speaker_id = speaker_id
        self.plays: list[PlayRecord] = []
        self.current: ActivePlay | None = None  # accepted and not ended: downloading or playing
        self._host = host
        self._media = media
        self._speed = speed
        self._prefetched: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def playing(self) -> ActivePlay | None:
        """The item whose sound is out now (not one still downloading)."""
        current = self.current
        return current if current is not None and current.started else None

    def refuses(self, priority: str) -> bool:
        """`busy`: equal or higher priority takes over; emergency, the highest, never waits."""
        current = self.current
        return current is not None and PRIORITY_RANK[priority] < PRIORITY_RANK[current.priority]

    def accept(self, command: Command, default_volume: int) -> tuple[ActivePlay, ActivePlay | None]:
        """Record an accepted play and make it current; returns it and the one it replaces."""
        volume = default_volume if command.volume is None else command.volume
        item_id = command.item_id or ""
        self.plays.append(
            PlayRecord(
                command.cmd_id, item_id, command.url, command.priority, volume, live=command.live
            )
        )
        play = ActivePlay(
            len(self.plays) - 1, command.cmd_id, item_id, command.url, command.priority, volume
        )
        play.ends_at = command.ends_at if command.live else None
        previous, self.current = self.current, play  # at once: the next busy check sees it
        self._host.notify_change()
        return play, previous

    async def start(self, play: ActivePlay, previous: ActivePlay | None) -> None:
        if previous is not None:
            await self.end(previous, "preempted")
        play.task = self.spawn(self._perform(play))

    async def stop(self, item_id: str | None) -> None:
        current = self.current
        if current is not None and item_id in {None, current.item_id}:
            await self.end(current, "stopped")

    def prefetch(self, url: str) -> None:
        self.spawn(self._prefetch(url))

    async def end(self, play: ActivePlay, reason: str) -> None:
        """Cut `play` short and announce why (`stopped`, `preempted`)."""
        if play.ended:
            return
        task = play.task
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        self._finish(play, reason)

    def cancel_all(self) -> None:
        """Power-off: every download and playback stops, nothing more is said."""
        for task in list(self._tasks):
            task.cancel()

    def spawn(self, coroutine: Coroutine[object, object, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)  # a task nobody references may be collected mid-run
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._log_crash)
        return task

    async def _perform(self, play: ActivePlay) -> None:
        if play.ends_at is not None:
            await self._perform_live(play, play.ends_at)
            return
        try:
            duration = await self._fetch(play.url)
        except MediaError as exc:
            log.warning("%s: play %s failed: %s", self.speaker_id, play.cmd_id, exc)
            self._finish(play, f"failed:{exc.error}")
            return
        play.started = True
        self._host.send_event("started", play, {"duration_s": round(duration, 3)})
        self._update(play, duration_s=duration)
        self._host.send_state()
        # The simulated playback itself; cut short by cancellation (stop, pre-emption).
        await asyncio.sleep(duration / self._speed)
        self._finish(play, "completed")

    async def _perform_live(self, play: ActivePlay, ends_at: datetime) -> None:
        def on_air() -> None:
            play.started = True
            self._host.send_event("started", play, {})
            self._host.send_state()
            self._host.notify_change()

        left_s = (ends_at - datetime.now(UTC)).total_seconds()
        honoured = not self._host.faults.ignore_ends_at
        try:
            async with asyncio.timeout(left_s if honoured else None):
                await self._media.listen(play.url, on_air)
        except TimeoutError:
            # Its time is over: ended by itself (having played, or never got audio).
            self._finish(play, "completed" if play.started else "failed:download")
            return
        except MediaError as exc:
            log.warning("%s: live play %s failed: %s", self.speaker_id, play.cmd_id, exc)
            self._finish(play, f"failed:{exc.error}")
            return
        # The station hung up before the end: the relay did not play its whole time.
        self._finish(play, "failed:download")

    async def _fetch(self, url: str) -> float:
        known = self._prefetched.get(url)
        if known is not None:
            return known
        delay = self._host.faults.download_delay_s
        if delay > 0:
            await asyncio.sleep(delay)  # the fault: a slow 4G link
        return await self._media.duration_of(url)

    async def _prefetch(self, url: str) -> None:
        try:
            self._prefetched[url] = await self._fetch(url)
        except MediaError as exc:
            # `failed` is an event of a play; a failed prefetch shows when the play comes.
            log.warning("%s: prefetch of %s failed: %s", self.speaker_id, url, exc)

    def _finish(self, play: ActivePlay, outcome: str) -> None:
        if play.ended:
            return
        play.ended = True
        if self.current is play:
            self.current = None
        if outcome.startswith("failed:"):
            error = outcome.removeprefix("failed:")
            self._host.send_event("failed", play, {"error": error})
        else:
            self._host.send_event("finished", play, {"reason": outcome})
        self._update(play, outcome=outcome)
        if play.started:
            self._host.send_state()

    def _update(
        self, play: ActivePlay, *, outcome: str | None = None, duration_s: float | None = None
    ) -> None:
        record = self.plays[play.index]
        self.plays[play.index] = replace(
            record,
            outcome=outcome or record.outcome,
            duration_s=record.duration_s if duration_s is None else duration_s,
        )
        self._host.notify_change()

    def _log_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("%s: background task failed", self.speaker_id, exc_info=exc)
