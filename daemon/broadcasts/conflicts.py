"""Two programmes on the same speakers at the same time: found when scheduling, with a choice.

The radio station is told at once, not at air time, when a new broadcast would overlap
one already planned on some of the same speakers. It then chooses: queue the new one
after the other, put it first and move the other (one-off) item after it, replace the
other (a one-off is cancelled, a repeating one skips that day), or air both anyway (the
speakers' priorities decide). An emergency is never asked: it pre-empts.

Lengths are estimates: a recording's or a relay's own, speech from its text at the
pace of Vietnamese TTS (bench/tts.py: 7.5-8 characters a second) plus the chimes.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from daemon.broadcasts.store import BroadcastRecord, Kind, Status
from daemon.schedule.recurrence import LOCAL, occurrences
from daemon.schedule.rules import Conflict, Slot, conflicts, queued_start

# Conflicts are looked for this far ahead, over at most this many air times of each.
HORIZON = timedelta(days=7)
SLOTS_EACH = 60
SPEECH_CHARS_PER_S = 7.5
CHIMES_S = 4.0
GAP = timedelta(seconds=5)  # between a queued item and the one before it
_PASSES = 5  # queueing moves past one item at a time; a few passes settle it


class Choice(enum.StrEnum):
    ASK = "ask"  # report the conflicts (409), create nothing
    QUEUE = "queue"  # the new item starts after the other
    REORDER = "reorder"  # the new item keeps its time, the other (one-off) moves after it
    REPLACE = "replace"  # the other is cancelled (one-off) or skips that day (repeating)
    ALLOW = "allow"  # both air; the speakers' priority rules decide


class ConflictError(Exception):
    """The choice cannot be carried out; the message says why (Vietnamese first)."""


@dataclass(frozen=True)
class Planned:
    """A broadcast with what conflict finding needs: its speakers and its length."""

    record: BroadcastRecord
    speakers: frozenset[str]
    length: timedelta


def speech_length(spoken_text: str) -> timedelta:
    return timedelta(seconds=math.ceil(len(spoken_text) / SPEECH_CHARS_PER_S + CHIMES_S))


def slots(planned: Planned, now: datetime) -> list[Slot]:
    """Its air times from now to the horizon, as rule slots."""
    record = planned.record
    # A one-off already sent is still a slot while it may be playing.
    sent = record.status is Status.DONE and not record.schedule.recurring
    if record.status is not Status.ACTIVE and not sent:
        return []
    times = occurrences(record.schedule, now - planned.length, SLOTS_EACH)
    return [
        Slot(record.id, start, planned.length, planned.speakers, record.priority)
        for start in times
        if start <= now + HORIZON
    ]


def find(new: Planned, others: Iterable[Planned], now: datetime) -> list[Conflict]:
    """Overlaps of the new broadcast's air times with the others', earliest first."""
    if new.record.priority == "emergency":
        return []
    theirs = [
        slot for other in others if other.record.id != new.record.id for slot in slots(other, now)
    ]
    found = {
        (c.other.id, c.other.start): c for mine in slots(new, now) for c in conflicts(mine, theirs)
    }
    return sorted(found.values(), key=lambda c: (c.start, c.other.id))


def queue_after(new: Planned, others: list[Planned], now: datetime) -> BroadcastRecord:
    """The new broadcast moved later until none of its air times overlaps another's."""
    record = new.record
    for _ in range(_PASSES):
        clash = find(replace(new, record=record), others, now)
        if not clash:
            return record
        first = clash[0]
        mine = next(
            s
            for s in slots(replace(new, record=record), now)
            if s.start < first.end and s.end > first.start
        )
        theirs = [slot for other in others for slot in slots(other, now)]
        moved = queued_start(mine, theirs, GAP)
        shift = moved - mine.start
        if record.schedule.recurring:  # 06:03, not 06:02:41 every day
            shift = timedelta(minutes=math.ceil(shift.total_seconds() / 60))
        before = slots(replace(new, record=record), now)
        record = replace(record, start_at=record.start_at + shift)
        if slots(replace(new, record=record), now) == before:
            raise ConflictError(
                "Quy tắc lặp đặt giờ cố định (BYHOUR/BYMINUTE) nên không tự xếp sau được: hãy "
                "sửa giờ trong quy tắc, hoặc chọn Thay thế hay Vẫn phát (the rule fixes the time)"
            )
    if find(replace(new, record=record), others, now):
        raise ConflictError(
            "Không xếp sau được: lịch này vẫn trùng sau khi dời (still overlapping after queueing)"
        )
    return record


def moved_first(
    new: Planned, others: list[Planned], clash: list[Conflict], now: datetime
) -> list[BroadcastRecord]:
    """The one-off items in the way, each moved to start after the new broadcast."""
    by_id = {other.record.id: other for other in others}
    moved: list[BroadcastRecord] = []
    placed = [new]
    for conflict in clash:
        other = by_id[conflict.other.id]
        if conflict.other.start <= now:
            raise ConflictError(
                f'"{other.record.title}" đang phát, không dời được: hãy chọn Xếp sau '
                "(the other item is airing now)"
            )
        if other.record.schedule.recurring:
            raise ConflictError(
                f'"{other.record.title}" phát lặp lại nên không dời được: hãy chọn Xếp sau '
                "hoặc Thay thế (a repeating item cannot be moved)"
            )
        if any(m.id == other.record.id for m in moved):
            continue
        rest = [p for p in others if p.record.id != other.record.id] + placed
        start = queue_after(other, rest, now).start_at
        record = replace(other.record, start_at=start)
        moved.append(record)
        placed.append(replace(other, record=record))
    return moved


def replaced(
    others: Mapping[str, Planned], clash: list[Conflict]
) -> tuple[list[str], list[BroadcastRecord]]:
    """What replacing does: one-off ids to cancel, repeating records with the days skipped."""
    cancel: list[str] = []
    skipping: dict[str, BroadcastRecord] = {}
    for conflict in clash:
        other = others[conflict.other.id].record
        if not other.schedule.recurring:
            if other.id not in cancel:
                cancel.append(other.id)
            continue
        current = skipping.get(other.id, other)
        day = conflict.other.start.astimezone(LOCAL).date()
        if day not in current.skip_dates:
            skipping[other.id] = replace(current, skip_dates=(*current.skip_dates, day))
    return cancel, list(skipping.values())


def conflict_view(clash: list[Conflict], titles: Callable[[str], str]) -> list[dict[str, object]]:
    """The conflicts as the API reports them (times in Vietnam's time)."""
    return [
        {
            "id": c.other.id,
            "title": titles(c.other.id),
            "priority": c.other.priority,
            "start": c.other.start.astimezone(LOCAL).isoformat(),
            "end": c.other.end.astimezone(LOCAL).isoformat(),
            "speakers": sorted(c.speakers),
        }
        for c in clash
    ]


def length_of(record: BroadcastRecord, spoken: str | None, media_s: float | None) -> timedelta:
    """How long a broadcast airs, estimated where it is not known."""
    if record.kind is Kind.URL and record.duration_s is not None:
        return timedelta(seconds=record.duration_s)
    if record.kind is Kind.MEDIA and media_s is not None:
        return timedelta(seconds=math.ceil(media_s + CHIMES_S))
    return speech_length(spoken or record.text or "")
