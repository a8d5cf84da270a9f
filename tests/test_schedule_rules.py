"""Quiet hours, volume by time of day and conflicts: pure rules, Vietnam's wall clock."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from pydantic import ValidationError

from daemon.config_audio import BroadcastsConfig
from daemon.schedule.recurrence import LOCAL
from daemon.schedule.rules import (
    QuietHours,
    Rules,
    Slot,
    VolumeBand,
    capped_volume,
    conflicts,
    held_back,
    queued_start,
)
from daemon.service import broadcast_rules_of as rules_of

SUMMER = QuietHours(morning=time(5, 0), evening=time(21, 30), months=frozenset({5, 6, 7, 8}))
RULES = Rules(quiet=(SUMMER, QuietHours(morning=time(5, 30), evening=time(21, 0))))


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=LOCAL)


@pytest.mark.parametrize(
    ("when", "priority", "held"),
    [
        ("2026-12-01 05:29", "normal", True),
        ("2026-12-01 05:30", "normal", False),
        ("2026-12-01 20:59", "priority", False),
        ("2026-12-01 21:00", "priority", True),
        ("2026-12-01 23:30", "emergency", False),  # a storm warning at any hour
        ("2026-12-01 03:00", "emergency", False),
        ("2026-06-01 05:10", "normal", False),  # summer mornings start at 05:00
        ("2026-06-01 21:10", "normal", False),  # ... and evenings end at 21:30
        ("2026-06-01 21:30", "normal", True),
    ],
)
def test_quiet_hours_hold_back_all_but_emergencies(when: str, priority: str, held: bool) -> None:
    reason = held_back(RULES, priority, local(when))
    assert (reason is not None) is held
    if reason is not None:
        assert "Giờ yên tĩnh" in reason
        assert when[-5:] in reason  # the local time, as the operator wrote it


def test_quiet_hours_are_read_in_vietnams_time_whatever_the_offset_given() -> None:
    # 22:45 UTC is 05:45 the next morning in Vietnam: allowed.
    at = datetime.fromisoformat("2026-11-30T22:45:00+00:00")
    assert held_back(RULES, "normal", at) is None
    assert held_back(RULES, "normal", at - timedelta(minutes=30)) is not None


def test_no_quiet_hours_in_a_month_no_rule_covers() -> None:
    only_summer = Rules(quiet=(SUMMER,))
    assert held_back(only_summer, "normal", local("2026-12-01 02:00")) is None


def test_volume_is_capped_by_the_band_of_the_time_of_day() -> None:
    rules = Rules(
        volume=(
            VolumeBand(time(5, 30), 60),
            VolumeBand(time(7, 0), 90),
            VolumeBand(time(20, 0), 50),
        )
    )
    assert capped_volume(rules, 100, local("2026-12-01 06:00")) == 60
    assert capped_volume(rules, 100, local("2026-12-01 12:00")) == 90
    assert capped_volume(rules, 70, local("2026-12-01 12:00")) == 70
    assert capped_volume(rules, 100, local("2026-12-01 20:30")) == 50
    assert capped_volume(rules, 100, local("2026-12-01 02:00")) == 50  # the evening band goes on
    assert capped_volume(rules, None, local("2026-12-01 12:00")) == 90
    assert capped_volume(Rules(), 100, local("2026-12-01 06:00")) == 100


def slot(item: str, start: str, minutes: int, speakers: str, priority: str = "normal") -> Slot:
    return Slot(
        item, local(start), timedelta(minutes=minutes), frozenset(speakers.split()), priority
    )


def test_overlaps_on_shared_speakers_are_conflicts_and_others_are_not() -> None:
    morning = slot("morning", "2026-12-01 05:30", 30, "loa-1 loa-2 loa-3")
    existing = [
        slot("news", "2026-12-01 05:50", 20, "loa-3 loa-4"),  # overlaps on loa-3
        slot("other-village", "2026-12-01 05:40", 10, "loa-9"),  # other speakers
        slot("before", "2026-12-01 05:00", 30, "loa-1"),  # ends when morning starts
        slot("storm", "2026-12-01 05:35", 5, "loa-1", "emergency"),
        morning,  # itself, when edited
    ]
    found = conflicts(morning, existing)
    assert [(c.other.id, c.speakers) for c in found] == [
        ("storm", frozenset({"loa-1"})),
        ("news", frozenset({"loa-3"})),
    ]
    assert found[0].pre_empts
    assert not found[1].pre_empts
    assert (found[1].start, found[1].end) == (local("2026-12-01 05:50"), local("2026-12-01 06:00"))


def test_queueing_moves_an_item_after_what_it_collides_with() -> None:
    new = slot("notice", "2026-12-01 17:00", 10, "loa-1")
    existing = [
        slot("evening", "2026-12-01 16:55", 15, "loa-1"),  # ends 17:10
        slot("music", "2026-12-01 17:12", 10, "loa-1"),  # then this one, until 17:22
        slot("late", "2026-12-01 17:40", 10, "loa-1"),  # leaves room before it
    ]
    assert queued_start(new, existing, gap=timedelta(minutes=1)) == local("2026-12-01 17:23")
    assert queued_start(new, []) == new.start


def test_the_configured_seasons_and_volume_profile_become_the_rules() -> None:
    config = BroadcastsConfig.model_validate(
        {
            "quiet_seasons": [{"months": [5, 6, 7, 8], "morning": "05:00", "evening": "21:30"}],
            "volume_profile": [
                {"start": "05:30", "max_volume": 70},
                {"start": "11:00", "max_volume": 50},
                {"start": "21:00", "max_volume": 30},
            ],
        }
    )
    rules = rules_of(config)
    assert held_back(rules, "normal", local("2026-06-01 05:10")) is None  # summer
    assert held_back(rules, "normal", local("2026-12-01 05:10")) is not None  # winter: 05:30
    assert capped_volume(rules, 90, local("2026-12-01 06:00")) == 70
    assert capped_volume(rules, None, local("2026-12-01 12:00")) == 50
    assert capped_volume(rules, 90, local("2026-12-01 02:00")) == 30  # the evening's step holds
    off = rules_of(BroadcastsConfig.model_validate({"quiet_morning": None, "quiet_evening": None}))
    assert held_back(off, "normal", local("2026-12-01 02:00")) is None


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"quiet_seasons": [{"months": [13], "morning": "05:00", "evening": "21:00"}]}, "12"),
        ({"quiet_seasons": [{"months": [6], "morning": "22:00", "evening": "21:00"}]}, "before"),
        ({"volume_profile": [{"start": "05:30", "max_volume": 70},
                             {"start": "05:30", "max_volume": 50}]}, "same time"),
        ({"volume_profile": [{"start": "5h", "max_volume": 70}]}, "pattern"),
        ({"after_preemption": "later"}, "resume"),
    ],
)  # fmt: skip
def test_bad_rules_settings_are_refused(settings: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        BroadcastsConfig.model_validate(settings)
