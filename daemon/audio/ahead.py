"""Rendering scheduled speech ahead of air time, and again with growing pauses if it fails.

At 05:30 the morning programme must start at once, whatever gTTS is doing: its audio
is rendered `audio.render_ahead_min` before, so at air time it is a cache hit. A
failed render (Google refusing, espeak-ng missing) is tried again after 30 s, 1 min,
2 min... up to 10 min, for as long as the item is inside the window. Sources (the
broadcast scheduler) say what airs when; this loop does not know about broadcasts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from daemon.aio import wait_first
from daemon.audio.service import AudioInputError, AudioService, AudioUnavailableError, Spoken
from daemon.supervisor import LoacamError

log = logging.getLogger(__name__)


class AudioStoreError(LoacamError):
    """The store failed under the audio loop (restarted with backoff)."""


RETRY_FIRST = timedelta(seconds=30)
RETRY_CAP = timedelta(minutes=10)
TICK_S = 15.0


@dataclass(frozen=True)
class RenderJob:
    """Speech that airs at `air_at`; `id` names the slot (e.g. a broadcast execution)."""

    id: str
    text: str
    voice: str | None
    air_at: datetime
    urgent: bool = False


@dataclass
class JobStatus:
    state: str = "pending"  # pending, ready, failed (failed is retried while in the window)
    spoken: Spoken | None = None
    error: str | None = None
    failures: int = 0
    next_try: datetime | None = None


JobSource = Callable[[datetime, datetime], Awaitable[list[RenderJob]]]


@dataclass
class RenderAhead:
    audio: AudioService
    window: timedelta
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _sources: list[JobSource] = field(default_factory=list)
    _status: dict[str, JobStatus] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        """Look at the sources now (something was scheduled or changed)."""
        self._wake.set()

    def add_source(self, source: JobSource) -> None:
        """`source(now, until)` lists the speech airing between the two."""
        self._sources.append(source)

    def status(self, job_id: str) -> JobStatus | None:
        return self._status.get(job_id)

    async def tick(self) -> list[str]:
        """Render what is due inside the window and not ready yet; the ids rendered now."""
        now = self.clock()
        jobs: dict[str, RenderJob] = {}
        for source in self._sources:
            for job in await source(now, now + self.window):
                jobs[job.id] = job
        # Forget slots that are gone (aired, cancelled): the table never grows unbounded.
        for job_id in self._status.keys() - jobs.keys():
            del self._status[job_id]
        rendered = []
        for job in sorted(jobs.values(), key=lambda j: j.air_at):
            status = self._status.setdefault(job.id, JobStatus())
            if status.state == "ready" or (status.next_try is not None and now < status.next_try):
                continue
            if await self._render(job, status):
                rendered.append(job.id)
        return rendered

    async def _render(self, job: RenderJob, status: JobStatus) -> bool:
        try:
            status.spoken = await self.audio.speak(job.text, job.voice, urgent=job.urgent)
        except (AudioUnavailableError, AudioInputError) as exc:
            status.state, status.error = "failed", str(exc)
            status.failures += 1
            pause = min(RETRY_FIRST * 2 ** (status.failures - 1), RETRY_CAP)
            status.next_try = self.clock() + pause
            log.warning(
                "render ahead %s: failed %d times (%s); next try in %d s",
                job.id,
                status.failures,
                exc,
                pause.total_seconds(),
            )
            return False
        status.state, status.error, status.next_try = "ready", None, None
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """The supervisor's loop: a tick every few seconds until `stop`."""
        try:
            await self.audio.sweep_temporary()
            while not stop.is_set():
                self._wake.clear()  # a wake() during the tick looks again at once
                await self.tick()
                await self.audio.trim_cache()
                await wait_first(stop, self._wake, within_s=TICK_S)
        except SQLAlchemyError as exc:
            # A locked or full database: the supervisor restarts this loop, nothing else.
            raise AudioStoreError(f"audio: database error: {exc}") from exc
