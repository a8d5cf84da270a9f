"""What the render-ahead loop must have ready: the speech of broadcasts airing soon.

At 06:00 the morning programme must start at once: its text is spoken (gTTS, or
espeak-ng when Google fails) while it is still inside the render-ahead window, so the
dispatch at air time is a cache hit. A changed text is a new job; an aired or cancelled
slot drops out of the list, and the loop forgets it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

from daemon.audio.ahead import RenderJob
from daemon.broadcasts.store import BroadcastRecord, Kind, active_broadcasts
from daemon.schedule.lunar import LunarDateError
from daemon.schedule.recurrence import ScheduleError, occurrences
from daemon.store import Store

log = logging.getLogger(__name__)

# Air times looked at per broadcast: hourly at most, so a day's window holds 25.
_SLOTS = 30


@dataclass
class SpeechDue:
    store: Store

    async def __call__(self, now: datetime, until: datetime) -> list[RenderJob]:
        jobs = []
        for broadcast in await active_broadcasts(self.store):
            if broadcast.kind is not Kind.TEXT or broadcast.text is None:
                continue
            try:
                # Lunar schedules compute calendars: CPU work, off the event loop.
                times = await asyncio.to_thread(occurrences, broadcast.schedule, now, _SLOTS)
            except (ScheduleError, LunarDateError):
                continue  # the engine reports an unreadable schedule
            jobs += [
                RenderJob(
                    id=job_id(broadcast, moment),
                    text=broadcast.text,
                    voice=broadcast.voice,
                    air_at=moment,
                    urgent=broadcast.priority == "emergency",
                )
                for moment in times
                if moment <= until
            ]
        return jobs


def job_id(broadcast: BroadcastRecord, moment: datetime) -> str:
    """The render job of one air time; the text and voice are in it (a new text, a new job)."""
    said = hashlib.sha256(f"{broadcast.voice}\n{broadcast.text}".encode()).hexdigest()[:12]
    return f"{broadcast.id}@{moment.isoformat()}#{said}"
