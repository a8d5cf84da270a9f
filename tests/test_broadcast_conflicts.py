"""Conflicts when scheduling, as pure functions of broadcasts and an injected now."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from daemon.broadcasts.conflicts import (
    ConflictError,
    Planned,
    find,
    length_of,
    moved_first,
    queue_after,
    replaced,
    speech_length,
)
from daemon.broadcasts.store import BroadcastRecord, Kind, Status, Targets
from daemon.schedule.recurrence import LOCAL

NOW = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
AT = datetime(2026, 12, 2, 6, 0, tzinfo=LOCAL)
MINUTE = timedelta(minutes=1)


def planned(
    start: datetime,
    length_min: float = 3,
    speakers: tuple[str, ...] = ("loa-1", "loa-2"),
    *,
    rrule: str | None = None,
    priority: str = "normal",
    status: Status = Status.ACTIVE,
) -> Planned:
    record = BroadcastRecord(
        id=uuid.uuid4().hex,
        title=f"tin {start:%H:%M}",
        kind=Kind.TEXT,
        text="Thông báo.",
        targets=Targets(speakers=speakers),
        priority=priority,
        start_at=start.astimezone(UTC),
        created_by="radio",
        created_at=NOW,
        updated_at=NOW,
        rrule=rrule,
        status=status,
    )
    return Planned(record, frozenset(speakers), timedelta(minutes=length_min))


def test_overlaps_on_shared_speakers_are_found_and_others_are_not() -> None:
    new = planned(AT + MINUTE)
    same = planned(AT)
    other_speakers = planned(AT, speakers=("loa-9",))
    before = planned(AT - 2 * MINUTE, length_min=1)
    cancelled = planned(AT, status=Status.CANCELLED)
    [conflict] = find(new, [same, other_speakers, before, cancelled], NOW)
    assert conflict.other.id == same.record.id
    assert conflict.speakers == frozenset({"loa-1", "loa-2"})
    assert (conflict.start, conflict.end) == (AT + MINUTE, AT + 3 * MINUTE)


def test_a_repeating_programme_conflicts_on_each_day_it_overlaps_within_the_week() -> None:
    daily = planned(AT, rrule="FREQ=DAILY")
    weekly = planned(AT + MINUTE, rrule="FREQ=WEEKLY")
    clash = find(weekly, [daily], NOW)
    assert len(clash) == 1  # the weekly one's single day in the week ahead
    daily_too = planned(AT + MINUTE, rrule="FREQ=DAILY")
    assert len(find(daily_too, [daily], NOW)) == 7


def test_an_emergency_is_never_asked() -> None:
    assert find(planned(AT, priority="emergency"), [planned(AT)], NOW) == []


def test_queueing_moves_the_new_item_after_everything_in_its_way() -> None:
    first, second = planned(AT), planned(AT + 3 * MINUTE)
    moved = queue_after(planned(AT + MINUTE), [first, second], NOW)
    assert moved.start_at >= AT + 6 * MINUTE
    assert (
        find(Planned(moved, frozenset({"loa-1", "loa-2"}), 3 * MINUTE), [first, second], NOW) == []
    )


def test_queueing_a_repeating_item_keeps_whole_minutes() -> None:
    daily = planned(AT, length_min=2.5, rrule="FREQ=DAILY")
    moved = queue_after(planned(AT, rrule="FREQ=DAILY"), [daily], NOW)
    assert moved.start_at.astimezone(LOCAL).second == 0
    assert moved.start_at == (AT + 3 * MINUTE).astimezone(UTC)


def test_reordering_moves_one_offs_after_the_new_item_but_not_repeating_or_airing_ones() -> None:
    new = planned(AT)
    one_off = planned(AT + MINUTE)
    [moved] = moved_first(new, [one_off], find(new, [one_off], NOW), NOW)
    assert moved.id == one_off.record.id
    assert moved.start_at >= (AT + 3 * MINUTE).astimezone(UTC)
    daily = planned(AT, rrule="FREQ=DAILY")
    with pytest.raises(ConflictError, match="lặp lại"):
        moved_first(new, [daily], find(new, [daily], NOW), NOW)
    airing = planned(NOW - MINUTE)
    now_item = planned(NOW)
    with pytest.raises(ConflictError, match="đang phát"):
        moved_first(now_item, [airing], find(now_item, [airing], NOW), NOW)


def test_replacing_cancels_one_offs_and_skips_the_day_of_repeating_ones() -> None:
    new = planned(AT)
    one_off, daily = planned(AT), planned(AT, rrule="FREQ=DAILY")
    others = {p.record.id: p for p in (one_off, daily)}
    cancel, skipping = replaced(others, find(new, others.values(), NOW))
    assert cancel == [one_off.record.id]
    [skipped] = skipping
    assert skipped.id == daily.record.id
    assert skipped.skip_dates == (AT.date(),)


def test_lengths_are_the_known_ones_or_the_pace_of_speech() -> None:
    record = planned(AT).record
    assert length_of(record, "a" * 75, None) == speech_length("a" * 75) == timedelta(seconds=14)
    media = replace(record, kind=Kind.MEDIA, text=None)
    assert length_of(media, None, 60.2) == timedelta(seconds=65)
    relay = replace(record, kind=Kind.URL, duration_s=1800)
    assert length_of(relay, None, None) == timedelta(minutes=30)


def test_queueing_a_rule_with_fixed_hours_says_so_instead_of_looping() -> None:
    fixed = planned(AT, rrule="FREQ=DAILY;BYHOUR=6;BYMINUTE=0")
    with pytest.raises(ConflictError, match="BYHOUR"):
        queue_after(planned(AT + MINUTE, rrule="FREQ=DAILY;BYHOUR=6;BYMINUTE=1"), [fixed], NOW)


def test_a_one_off_already_sent_conflicts_while_it_may_still_be_playing() -> None:
    relay = planned(NOW - MINUTE, length_min=60, status=Status.DONE)
    [conflict] = find(planned(NOW + MINUTE), [relay], NOW)
    assert conflict.other.id == relay.record.id
    over = planned(NOW - 2 * MINUTE, length_min=1, status=Status.DONE)
    assert find(planned(NOW + MINUTE), [over], NOW) == []
    repeating_done = planned(NOW - MINUTE, length_min=60, rrule="FREQ=DAILY;COUNT=1",
                             status=Status.DONE)  # fmt: skip
    assert find(planned(NOW + MINUTE), [repeating_done], NOW) == []
