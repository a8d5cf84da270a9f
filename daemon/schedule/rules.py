"""The radio station's rules for when and how loud: quiet hours, volume by time of day, conflicts.

Operators' first complaints about loudspeaker systems are broadcasts too early, too late
or too loud, and two programmes colliding with no rule. Times here are Vietnam's
(Asia/Ho_Chi_Minh) wall-clock times; an emergency is never held back by them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from daemon.schedule.recurrence import LOCAL

PRIORITIES = ("normal", "priority", "emergency")


@dataclass(frozen=True)
class QuietHours:
    """No normal or priority item from `evening` until `morning` (the night between)."""

    morning: time = time(5, 30)
    evening: time = time(21, 0)
    months: frozenset[int] = frozenset(range(1, 13))  # the months this applies in

    def covers(self, moment: time) -> bool:
        return moment < self.morning or moment >= self.evening


@dataclass(frozen=True)
class VolumeBand:
    """From `start` (until the next band's start), the volume is at most `max_volume`."""

    start: time
    max_volume: int


@dataclass(frozen=True)
class Rules:
    # Seasonal quiet hours come first: the first whose months hold the date applies.
    quiet: tuple[QuietHours, ...] = (QuietHours(),)
    volume: tuple[VolumeBand, ...] = ()

    def quiet_hours(self, local: datetime) -> QuietHours | None:
        return next((q for q in self.quiet if local.month in q.months), None)


def held_back(rules: Rules, priority: str, at: datetime) -> str | None:
    """Why an item may not air at `at` (in plain Vietnamese), or None if it may."""
    if priority == "emergency":
        return None  # disasters, fire, epidemics: at any hour (Thông tư 39/2020)
    local = at.astimezone(LOCAL)
    quiet = rules.quiet_hours(local)
    if quiet is None or not quiet.covers(local.time()):
        return None
    return (
        f"Giờ yên tĩnh: không phát tin thường trước {quiet.morning:%H:%M} "
        f"và sau {quiet.evening:%H:%M} ({local:%H:%M %d/%m/%Y})"
    )


def capped_volume(rules: Rules, requested: int | None, at: datetime) -> int | None:
    """The volume to use at `at`: the request, lowered to the band's cap (None: the speaker's)."""
    if not rules.volume:
        return requested
    moment = at.astimezone(LOCAL).time()
    bands = sorted(rules.volume, key=lambda band: band.start)
    # Before the first band of the day, the last band (from the evening before) holds.
    band = next((b for b in reversed(bands) if b.start <= moment), bands[-1])
    if requested is None:
        return band.max_volume
    return min(requested, band.max_volume)


@dataclass(frozen=True)
class Slot:
    """One airing: who, when, on which speakers, how urgent."""

    id: str
    start: datetime
    duration: timedelta
    speakers: frozenset[str]
    priority: str = "normal"

    @property
    def end(self) -> datetime:
        return self.start + self.duration


@dataclass(frozen=True)
class Conflict:
    other: Slot
    start: datetime  # the overlap
    end: datetime
    speakers: frozenset[str] = field(default_factory=frozenset)  # those both would use

    @property
    def pre_empts(self) -> bool:
        """True when the other item is an emergency (it takes the speakers anyway)."""
        return self.other.priority == "emergency"


def conflicts(new: Slot, existing: Iterable[Slot]) -> list[Conflict]:
    """Items that would play on some of the same speakers at the same time as `new`."""
    found = []
    for other in existing:
        if other.id == new.id:
            continue
        shared = new.speakers & other.speakers
        start, end = max(new.start, other.start), min(new.end, other.end)
        if shared and start < end:
            found.append(Conflict(other, start, end, shared))
    return sorted(found, key=lambda c: c.start)


def queued_start(new: Slot, existing: Iterable[Slot], gap: timedelta = timedelta(0)) -> datetime:
    """The earliest start at or after `new.start` with no conflict: the "queue" choice."""
    others = list(existing)
    start = new.start
    for _ in range(len(others) + 1):  # each step moves past one item: this ends
        moved = Slot(new.id, start, new.duration, new.speakers, new.priority)
        clash = conflicts(moved, others)
        if not clash:
            return start
        start = max(c.other.end for c in clash) + gap
    return start
