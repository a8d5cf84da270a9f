"""The lunar calendar and recurrence rules: pure functions, an injected 'now'."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from dateutil.rrule import rrulestr

from daemon.schedule.lunar import LunarDate, LunarDateError, tet, to_lunar, to_solar, year_months
from daemon.schedule.recurrence import (
    HORIZON,
    LOCAL,
    START_GRACE,
    Lunar,
    Schedule,
    ScheduleError,
    day_already_aired,
    occurrences,
    validate,
)

CHINA = timezone(timedelta(hours=8))

# Tết Nguyên Đán in Vietnam (UTC+7). Where the Chinese New Year (UTC+8) falls on another
# day, the Chinese date is given: the new moon came after 23:00 in Vietnam (or, in 1985,
# the two calendars put the leap month in different years).
TET = [
    (1968, date(1968, 1, 29), date(1968, 1, 30)),  # Tết Mậu Thân: the North had moved to UTC+7
    (1969, date(1969, 2, 16), date(1969, 2, 17)),
    (1985, date(1985, 1, 21), date(1985, 2, 20)),
    (1990, date(1990, 1, 27), None),
    (2000, date(2000, 2, 5), None),
    (2001, date(2001, 1, 24), None),
    (2004, date(2004, 1, 22), None),
    (2005, date(2005, 2, 9), None),
    (2006, date(2006, 1, 29), None),
    (2007, date(2007, 2, 17), date(2007, 2, 18)),
    (2008, date(2008, 2, 7), None),
    (2010, date(2010, 2, 14), None),
    (2012, date(2012, 1, 23), None),
    (2015, date(2015, 2, 19), None),
    (2016, date(2016, 2, 8), None),
    (2017, date(2017, 1, 28), None),
    (2018, date(2018, 2, 16), None),
    (2019, date(2019, 2, 5), None),
    (2020, date(2020, 1, 25), None),
    (2021, date(2021, 2, 12), None),
    (2022, date(2022, 2, 1), None),
    (2023, date(2023, 1, 22), None),
    (2024, date(2024, 2, 10), None),
    (2025, date(2025, 1, 29), None),
    (2026, date(2026, 2, 17), None),
    (2027, date(2027, 2, 6), None),
    (2028, date(2028, 1, 26), None),
    (2029, date(2029, 2, 13), None),
    (2030, date(2030, 2, 2), date(2030, 2, 3)),
    (2031, date(2031, 1, 23), None),
    (2033, date(2033, 1, 31), None),
]

LEAP_MONTHS = {2001: 4, 2004: 2, 2006: 7, 2009: 5, 2012: 4, 2014: 9, 2017: 6, 2020: 4,
               2023: 2, 2025: 6, 2028: 5, 2031: 3, 2036: 6}  # fmt: skip


@pytest.mark.parametrize(("year", "vietnam", "china"), TET)
def test_tet_follows_vietnams_time_zone(year: int, vietnam: date, china: date | None) -> None:
    assert tet(year) == vietnam
    assert to_lunar(vietnam) == LunarDate(year, 1, 1)
    assert to_lunar(vietnam - timedelta(days=1)).year == year - 1  # giao thừa
    # The same rules at UTC+8: the Chinese New Year, which differs in the marked years.
    assert tet(year, CHINA) == (china or vietnam)


@pytest.mark.parametrize(("year", "month"), sorted(LEAP_MONTHS.items()))
def test_leap_months(year: int, month: int) -> None:
    leaps = [m for m in year_months(year) if m.leap]
    assert [m.month for m in leaps] == [month]
    assert to_lunar(leaps[0].start) == LunarDate(year, month, 1, leap=True)
    assert [m.leap for m in year_months(year - 1)].count(True) == 0 or year - 1 in LEAP_MONTHS


def test_the_2033_leap_month_is_the_eleventh() -> None:
    # The "2033 problem": the leap month falls after the winter solstice, in month 11.
    assert to_lunar(date(2033, 12, 22)) == LunarDate(2033, 11, 1, leap=True)
    assert to_lunar(date(2034, 2, 19)) == LunarDate(2034, 1, 1)


@pytest.mark.parametrize(
    ("solar", "lunar"),
    [
        (date(2024, 9, 17), LunarDate(2024, 8, 15)),  # Tết Trung thu
        (date(2025, 10, 6), LunarDate(2025, 8, 15)),
        (date(2025, 2, 12), LunarDate(2025, 1, 15)),  # Rằm tháng Giêng
        (date(2025, 1, 28), LunarDate(2024, 12, 29)),  # giao thừa of a 29-day Chạp
        (date(2025, 8, 8), LunarDate(2025, 6, 15, leap=True)),
        (date(2026, 4, 26), LunarDate(2026, 3, 10)),  # Giỗ Tổ Hùng Vương
    ],
)
def test_known_dates_both_ways(solar: date, lunar: LunarDate) -> None:
    assert to_lunar(solar) == lunar
    assert to_solar(lunar) == solar


def test_every_day_of_four_decades_converts_back_and_forth() -> None:
    day, previous = date(2000, 1, 1), to_lunar(date(1999, 12, 31))
    while day < date(2040, 1, 1):
        lunar = to_lunar(day)
        assert to_solar(lunar) == day
        assert 1 <= lunar.day <= 30
        assert lunar.day == 1 or lunar.day == previous.day + 1
        day, previous = day + timedelta(days=1), lunar


def test_impossible_lunar_dates_are_refused_in_plain_words() -> None:
    with pytest.raises(LunarDateError, match="chỉ có 29 ngày"):
        to_solar(LunarDate(2024, 12, 30))  # Chạp Giáp Thìn has 29 days
    with pytest.raises(LunarDateError, match="không có tháng 3 nhuận"):
        to_solar(LunarDate(2025, 3, 1, leap=True))
    with pytest.raises(LunarDateError, match="ngoài"):
        tet(2500)


# -- recurrence ------------------------------------------------------------------------

NOW = datetime(2026, 11, 27, 21, 0, tzinfo=UTC)  # 04:00 on 28/11 in Vietnam


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_daily_rrule_is_read_in_vietnams_time() -> None:
    schedule = Schedule(at("2026-11-28T05:30:00+07:00"), rrule="FREQ=DAILY;BYHOUR=5;BYMINUTE=30")
    assert validate(schedule, NOW) == at("2026-11-28T05:30:00+07:00")
    upcoming = occurrences(schedule, NOW, 3)
    assert [t.astimezone(LOCAL).isoformat() for t in upcoming] == [
        "2026-11-28T05:30:00+07:00",
        "2026-11-29T05:30:00+07:00",
        "2026-11-30T05:30:00+07:00",
    ]
    assert upcoming[0].tzinfo == UTC
    assert upcoming[0].hour == 22  # 05:30 in Vietnam is 22:30 UTC the day before


def test_weekly_rrule_with_an_end_and_twice_a_day() -> None:
    schedule = Schedule(
        at("2026-11-28T05:30:00+07:00"),
        rrule="FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=5,17;BYMINUTE=30;UNTIL=20261210T235959Z",
    )
    local = [t.astimezone(LOCAL).strftime("%a %d/%m %H:%M") for t in occurrences(schedule, NOW, 10)]
    assert local == [
        "Mon 30/11 05:30", "Mon 30/11 17:30", "Thu 03/12 05:30", "Thu 03/12 17:30",
        "Mon 07/12 05:30", "Mon 07/12 17:30", "Thu 10/12 05:30", "Thu 10/12 17:30",
    ]  # fmt: skip


def test_tet_greeting_every_lunar_new_year() -> None:
    schedule = Schedule(at("2026-11-28T07:00:00+07:00"), lunar=Lunar(day=1, month=1))
    assert validate(schedule, NOW) == at("2027-02-06T07:00:00+07:00")
    assert [t.astimezone(LOCAL).date() for t in occurrences(schedule, NOW, 4)] == [
        tet(2027),
        tet(2028),
        tet(2029),
        tet(2030),
    ]


def test_the_15th_of_every_lunar_month_includes_leap_months() -> None:
    schedule = Schedule(at("2025-06-01T19:00:00+07:00"), lunar=Lunar(day=15))
    upcoming = occurrences(schedule, at("2025-06-01T00:00+07:00"), 4)
    days = [t.astimezone(LOCAL).date() for t in upcoming]
    assert days == [date(2025, 6, 10), date(2025, 7, 9), date(2025, 8, 8), date(2025, 9, 6)]
    assert to_lunar(days[2]) == LunarDate(2025, 6, 15, leap=True)


@pytest.mark.parametrize(
    ("schedule", "says"),
    [
        (Schedule(at("2026-11-27T05:30:00+07:00")), "đã qua"),
        (Schedule(at("2026-11-28T05:30:00+07:00"), rrule="FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"),
         "không phát lần nào"),
        (Schedule(at("2026-11-28T05:30:00+07:00"), rrule="FREQ=SOMETIMES"), "RRULE không hợp lệ"),
        (Schedule(at("2026-11-28T05:30:00+07:00"), rrule="DTSTART:20200101T000000Z\nFREQ=DAILY"),
         "không kèm DTSTART"),
        (Schedule(at("2026-11-28T07:00:00+07:00"), lunar=Lunar(day=30, month=12)),
         "Tháng 12 âm lịch năm 2026 chỉ có 29 ngày"),
        (Schedule(at("2026-11-28T07:00:00+07:00"), lunar=Lunar(day=30)), "ngày 30"),
        (Schedule(at("2026-11-28T07:00:00+07:00"), lunar=Lunar(day=31)), "từ 1 đến 30"),
        (Schedule(at("2026-11-28T07:00:00+07:00"), lunar=Lunar(day=1, month=13)), "từ 1 đến 12"),
    ],
)  # fmt: skip
def test_impossible_schedules_are_refused_in_plain_words(schedule: Schedule, says: str) -> None:
    with pytest.raises(ScheduleError, match=says):
        validate(schedule, NOW)


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY",
        "FREQ=DAILY;INTERVAL=3;BYHOUR=6,17",
        "FREQ=WEEKLY;BYDAY=MO,TH",
        "FREQ=MONTHLY;BYDAY=-1FR",
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
        "FREQ=YEARLY;BYYEARDAY=366",
        "FREQ=YEARLY;BYWEEKNO=1;BYDAY=MO",
        "FREQ=YEARLY;INTERVAL=2;BYMONTH=9;BYMONTHDAY=2",
        "FREQ=DAILY;COUNT=3",
        "FREQ=DAILY;UNTIL=20301231T000000Z;BYMONTH=2;BYMONTHDAY=29",
    ],
)
@pytest.mark.parametrize("start", ["2024-02-29T05:30:00+07:00", "2026-11-28T19:00:00+07:00"])
def test_a_rule_is_checked_400_years_later_with_the_same_answer(rule: str, start: str) -> None:
    # The first air time comes from a copy of the rule moved 400n years on (see _first_within);
    # dateutil walking it where it is must agree.
    schedule = Schedule(at(start), rrule=rule)
    now = at(start)
    expected = rrulestr(rule, dtstart=at(start).astimezone(LOCAL)).after(now - START_GRACE)
    try:
        found = validate(schedule, now)
    except ScheduleError:
        found = None
    assert found == (expected if expected and expected - now <= HORIZON else None)


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=DAILY;BYMONTH=4;BYMONTHDAY=31;BYHOUR=5",
        "FREQ=DAILY;COUNT=4;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=DAILY;UNTIL=20290101T000000Z;BYMONTH=6;BYMONTHDAY=31",
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO",  # next in 2044: beyond five years
    ],
)
def test_rules_that_never_fire_within_five_years_are_refused(rule: str) -> None:
    with pytest.raises(ScheduleError, match="không phát lần nào trong 5 năm"):
        validate(Schedule(at("2026-11-28T05:30:00+07:00"), rrule=rule), NOW)


@pytest.mark.parametrize("start", ["2400-01-01T05:30:00+07:00", "9999-06-01T05:30:00+07:00"])
def test_a_start_centuries_ahead_is_refused_not_moved_past_9999(start: str) -> None:
    with pytest.raises(ScheduleError, match="không phát lần nào trong 5 năm"):
        validate(Schedule(at(start), rrule="FREQ=DAILY"), NOW)


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ("FREQ=DAILY;COUNT=3;UNTIL=20300101T000000Z", "COUNT hoặc UNTIL"),
        ("FREQ=YEARLY;BYEASTER=0", "BYEASTER"),
    ],
)
def test_rules_outside_rfc_5545_are_refused(rule: str, says: str) -> None:
    with pytest.raises(ScheduleError, match=says):
        validate(Schedule(at("2026-11-28T05:30:00+07:00"), rrule=rule), NOW)


def test_day_30_of_a_long_month_is_accepted_and_short_years_are_skipped() -> None:
    # Chạp of Quý Mão (2023) has 30 days; the next eight have 29: no occasion in those years.
    schedule = Schedule(at("2023-12-01T20:00:00+07:00"), lunar=Lunar(day=30, month=12))
    now = at("2023-12-01T00:00:00+07:00")
    first = validate(schedule, now)
    assert first == at("2024-02-09T20:00:00+07:00")  # giao thừa, the eve of Tết Giáp Thìn
    later = occurrences(schedule, first, 2)
    assert later
    for when in later:
        lunar = to_lunar(when.astimezone(LOCAL).date())
        assert (lunar.month, lunar.day) == (12, 30)
        assert lunar.year > 2031


def test_a_start_without_an_offset_is_refused() -> None:
    with pytest.raises(ScheduleError, match="múi giờ"):
        Schedule(datetime(2026, 11, 28, 5, 30))  # noqa: DTZ001 -- the point of the test


def test_skipped_dates_are_left_out_of_rrules_and_lunar_dates() -> None:
    daily = Schedule(
        at("2026-11-28T05:30:00+07:00"),
        rrule="FREQ=DAILY",
        skip=frozenset({date(2026, 11, 29), date(2026, 12, 1)}),
    )
    days = [t.astimezone(LOCAL).date() for t in occurrences(daily, NOW, 3)]
    assert days == [date(2026, 11, 28), date(2026, 11, 30), date(2026, 12, 2)]
    tet_only_2028 = Schedule(
        at("2026-11-28T07:00:00+07:00"), lunar=Lunar(day=1, month=1), skip=frozenset({tet(2027)})
    )
    assert [t.astimezone(LOCAL).date() for t in occurrences(tet_only_2028, NOW, 2)] == [
        tet(2028),
        tet(2029),
    ]


def test_a_skipped_day_with_several_air_times_does_not_end_the_rule() -> None:
    twice = Schedule(
        at("2026-11-28T06:00:00+07:00"),
        rrule="FREQ=DAILY;BYHOUR=6,17",
        skip=frozenset({date(2026, 11, 29), date(2026, 11, 30)}),
    )
    after_saturday = at("2026-11-28T18:00:00+07:00")
    local = [
        t.astimezone(LOCAL).strftime("%d/%m %H:%M") for t in occurrences(twice, after_saturday, 3)
    ]
    assert local == ["01/12 06:00", "01/12 17:00", "02/12 06:00"]
    hourly = Schedule(
        at("2026-11-28T00:00:00+07:00"), rrule="FREQ=HOURLY", skip=frozenset({date(2026, 11, 29)})
    )
    [first] = occurrences(hourly, at("2026-11-28T23:30:00+07:00"), 1)
    assert first.astimezone(LOCAL) == at("2026-11-30T00:00:00+07:00")


# A daily programme at 05:30 has aired this morning; at 08:00 its schedule is changed.
MORNING = at("2026-11-28T05:30:00+07:00")
EIGHT = at("2026-11-28T08:00:00+07:00")


@pytest.mark.parametrize(
    ("rule", "aired", "skipped"),
    [
        ("FREQ=DAILY;BYHOUR=17;BYMINUTE=0", 1, True),  # moved later: tomorrow at 17:00
        ("FREQ=DAILY;BYHOUR=17;BYMINUTE=0", 0, False),  # not aired yet today: today at 17:00
        ("FREQ=DAILY;BYHOUR=6,18;BYMINUTE=0", 1, False),  # a second slot is still owed today
        ("FREQ=DAILY;BYHOUR=6,18;BYMINUTE=0", 2, True),
        ("FREQ=DAILY;BYHOUR=7;BYMINUTE=0", 1, False),  # moved earlier: nothing left today
        ("FREQ=WEEKLY;BYDAY=SU;BYHOUR=17;BYMINUTE=0", 1, False),  # 28/11/2026 is a Saturday
        ("FREQ=WEEKLY;BYDAY=SA;BYHOUR=17;BYMINUTE=0", 1, True),
    ],
)
def test_a_changed_schedule_does_not_air_a_day_twice(rule: str, aired: int, skipped: bool) -> None:
    schedule = Schedule(MORNING, rrule=rule)
    assert day_already_aired(schedule, aired, EIGHT) == (date(2026, 11, 28) if skipped else None)


def test_a_start_moved_into_today_still_counts_the_whole_day() -> None:
    # 06:00 and 17:00 become 06:00 and 18:00 from 08:05: one of today's two is still owed.
    moved = Schedule(at("2026-11-28T08:05:00+07:00"), rrule="FREQ=DAILY;BYHOUR=6,18;BYMINUTE=0")
    assert day_already_aired(moved, 1, EIGHT) is None
    assert day_already_aired(moved, 2, EIGHT) == date(2026, 11, 28)


def test_a_day_already_skipped_or_a_one_off_is_left_alone() -> None:
    skipped = Schedule(MORNING, rrule="FREQ=DAILY;BYHOUR=17", skip=frozenset({date(2026, 11, 28)}))
    assert day_already_aired(skipped, 1, EIGHT) is None
    assert day_already_aired(Schedule(at("2026-11-28T17:00:00+07:00")), 1, EIGHT) is None


def test_a_lunar_programme_moved_later_on_its_day_waits_for_the_next_month() -> None:
    # 28/11/2026 is the 20th of the 10th lunar month: a greeting moved from 06:00 to 19:00.
    assert to_lunar(date(2026, 11, 28)).day == 20
    moved = Schedule(at("2026-11-01T19:00:00+07:00"), lunar=Lunar(day=20))
    assert day_already_aired(moved, 1, EIGHT) == date(2026, 11, 28)
    assert occurrences(replace(moved, skip=frozenset({date(2026, 11, 28)})), EIGHT, 1)[0] > (
        at("2026-12-01T00:00:00+07:00")
    )
