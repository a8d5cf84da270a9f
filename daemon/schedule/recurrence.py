"""When a broadcast airs: once, by an RFC 5545 RRULE, or on Vietnamese lunar dates.

Times are stored in UTC and read in Vietnam's time (Asia/Ho_Chi_Minh): an RRULE's
BYHOUR=5 means 05:30 in the commune, whatever the server's own zone. A lunar
recurrence airs at the time of day of `start_at` on the lunar day, every lunar month
(leap months included: the 1st and 15th are kept in them too) or in one lunar month
each year (a leap month of that number is not a second occasion).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import MAXYEAR, UTC, date, datetime, timedelta
from itertools import islice, takewhile
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr

from daemon.schedule.lunar import LAST_YEAR, LunarDateError, lunar_month, to_lunar, year_months

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
_FREQUENCY = re.compile(r"FREQ\s*=\s*(MINUTELY|SECONDLY)")
# A schedule whose next air time is further away than this is a mistake, not a plan.
HORIZON = timedelta(days=5 * 366)
# The past a start time may be in: the form was filled in a moment ago.
START_GRACE = timedelta(minutes=2)
_CALENDAR_CYCLE = 400  # years after which the Gregorian calendar repeats, weekdays included


class ScheduleError(ValueError):
    """An impossible schedule; the message says why, in Vietnamese first."""


@dataclass(frozen=True)
class Lunar:
    day: int
    month: int | None = None  # None: every lunar month


@dataclass(frozen=True)
class Schedule:
    start_at: datetime  # aware; the first air time, and the time of day of lunar dates
    rrule: str | None = None
    lunar: Lunar | None = None
    skip: frozenset[date] = frozenset()  # Vietnam dates with no air time (exceptions)

    def __post_init__(self) -> None:
        if self.start_at.tzinfo is None:
            raise ScheduleError("Thời điểm phải có múi giờ (start_at needs a UTC offset)")
        if self.rrule is not None and self.lunar is not None:
            raise ScheduleError("Chọn lặp theo RRULE hoặc theo âm lịch, không cả hai")

    @property
    def recurring(self) -> bool:
        return self.rrule is not None or self.lunar is not None


def _rule(schedule: Schedule) -> rrule:
    text = schedule.rrule or ""
    if any(part in text.upper() for part in ("DTSTART", "\n")):
        raise ScheduleError("RRULE chỉ gồm quy tắc lặp, không kèm DTSTART (rule only)")
    names = {part.partition("=")[0].strip() for part in text.upper().split(";")}
    if {"COUNT", "UNTIL"} <= names:  # dateutil only warns, and walks it wrongly
        raise ScheduleError("RRULE có COUNT hoặc UNTIL, không cả hai (RFC 5545)")
    if "BYEASTER" in names:  # not RFC 5545; Easter breaks the 400-year cycle of _first_within
        raise ScheduleError("RRULE không nhận BYEASTER (not RFC 5545)")
    try:
        rule = rrulestr(text, dtstart=schedule.start_at.astimezone(LOCAL))
    except (ValueError, TypeError) as exc:
        raise ScheduleError(f"RRULE không hợp lệ (invalid RRULE: {exc})") from None
    if not isinstance(rule, rrule):  # an RRULE set (EXDATE...) is not accepted here
        raise ScheduleError("Chỉ nhận một RRULE (a single RRULE)")
    if _FREQUENCY.search(text.upper()):
        # A loudspeaker programme repeats hourly at most; a finer rule is a mistake, and
        # walking it from its start would cost the scheduler seconds on every tick.
        raise ScheduleError("Lặp nhiều nhất mỗi giờ một lần (FREQ=MINUTELY/SECONDLY refused)")
    return rule


def _lunar_days(lunar: Lunar, start_year: int) -> Iterator[date]:
    """Solar days of the lunar recurrence, from lunar year `start_year` on."""
    for year in range(start_year, LAST_YEAR + 1):
        # year_months(y) runs from month 11 of y-1: ask for the year after too and keep y's.
        months = [m for y in (year, year + 1) for m in year_months(y) if m.year == year]
        for month in months:
            if lunar.month is not None and (month.month != lunar.month or month.leap):
                continue
            if lunar.day <= month.days:  # day 30 of a 29-day month: no occasion that month
                yield month.start + timedelta(days=lunar.day - 1)


def occurrences(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    """The next `count` air times strictly after `after`, in UTC (fewer if it ends)."""
    return [t.astimezone(UTC) for t in islice(_times(schedule, after), count)]


def _times(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    """The air times strictly after `after`, lazily, in order (aware, any zone)."""
    if schedule.rrule is not None:
        # Lazily, with no count: skipped dates (a day may hold several air times) are
        # filtered below and islice stops once `count` are kept.
        times: Iterator[datetime] = _rule(schedule).xafter(after.astimezone(LOCAL))
    elif schedule.lunar is not None:
        local = schedule.start_at.astimezone(LOCAL)
        first = max(after.astimezone(LOCAL).date(), local.date())
        days = _lunar_days(schedule.lunar, to_lunar(first).year - 1)
        moments = (datetime.combine(day, local.timetz()) for day in days)
        times = (t for t in moments if t > after and t >= schedule.start_at)
    else:
        times = iter([schedule.start_at] if schedule.start_at > after else [])
    if schedule.skip:
        times = (t for t in times if t.astimezone(LOCAL).date() not in schedule.skip)
    return times


def validate(schedule: Schedule, now: datetime) -> datetime:
    """The first air time, or ScheduleError saying why there is none."""
    if schedule.start_at < now - START_GRACE:
        raise ScheduleError(
            "Thời điểm bắt đầu đã qua (start_at is in the past): "
            f"{schedule.start_at.astimezone(LOCAL):%H:%M %d/%m/%Y}"
        )
    try:
        if schedule.lunar is not None:
            _check_lunar(schedule.lunar, now)
        if schedule.rrule is not None:
            found = _first_within(schedule, now - START_GRACE, HORIZON)
            upcoming = [found] if found is not None else []
        else:
            upcoming = occurrences(schedule, now - START_GRACE, 1)
    except LunarDateError as exc:
        raise ScheduleError(f"Ngày âm lịch ngoài phạm vi ({exc})") from None
    if not upcoming or upcoming[0] - now > HORIZON:
        raise ScheduleError(
            "Lịch này không phát lần nào trong 5 năm tới (the schedule never fires)"
        )
    return upcoming[0]


def _first_within(schedule: Schedule, after: datetime, horizon: timedelta) -> datetime | None:
    """The rule's first air time after `after`, if within `horizon`; in bounded time.

    dateutil compares UNTIL only with a time it has found, so a rule that never fires (30
    February, daily) is walked to the year 9999: 5 s of CPU holding the GIL, the daemon's
    HTTP stalled meanwhile. The Gregorian calendar (leap years, weekdays) repeats every 400
    years, so the question is asked that many years later, in the last cycle before 9999
    (at most ~400 years left to walk, 20 times less), and the answer moved back.
    """
    rule = _rule(schedule)
    local_after = after.astimezone(LOCAL)
    end = local_after + horizon
    if schedule.start_at > end:
        return None  # and a start in 2400 would be moved past the year 9999
    until: datetime | None = rule._until  # type: ignore[attr-defined] # dateutil keeps it there
    if until is not None:
        end = min(end, until.astimezone(LOCAL))
    years = max(0, (MAXYEAR - 1 - end.year) // _CALENDAR_CYCLE * _CALENDAR_CYCLE)
    start = _years_later(schedule.start_at.astimezone(LOCAL), years)
    if rule._count is None:  # type: ignore[attr-defined] # COUNT with UNTIL is refused by _rule
        rule = rule.replace(dtstart=start, until=_years_later(end, years))
    else:
        rule = rule.replace(dtstart=start)
    found = rule.after(_years_later(local_after, years))
    return None if found is None else _years_later(found, -years).astimezone(UTC)


def _years_later(moment: datetime, years: int) -> datetime:
    # A whole number of 400-year cycles: 29 February stays a leap day, Monday a Monday.
    return moment.replace(year=moment.year + years)


def _check_lunar(lunar: Lunar, now: datetime) -> None:
    if not 1 <= lunar.day <= 30:
        raise ScheduleError(f"Ngày âm lịch phải từ 1 đến 30 (lunar day {lunar.day})")
    if lunar.month is not None and not 1 <= lunar.month <= 12:
        raise ScheduleError(f"Tháng âm lịch phải từ 1 đến 12 (lunar month {lunar.month})")
    if lunar.day < 30:
        return
    if lunar.month is None:
        raise ScheduleError(
            "Không phải tháng âm lịch nào cũng có ngày 30: hãy chọn một tháng, hoặc ngày 29 "
            "(not every lunar month has a day 30)"
        )
    # Day 30 of a month that is short this time is refused, not moved: the operator
    # decides (a later year whose month is short has no occasion; /next shows which).
    today = now.astimezone(LOCAL).date()
    year = to_lunar(today).year
    month = lunar_month(year, lunar.month)
    if month.start + timedelta(days=month.days) <= today:  # this year's is over: next year's
        year += 1
        month = lunar_month(year, lunar.month)
    if month.days < 30:
        raise ScheduleError(
            f"Tháng {lunar.month} âm lịch năm {year} chỉ có 29 ngày, không có ngày 30 "
            f"(lunar month {lunar.month} of {year} has 29 days)"
        )


def day_already_aired(schedule: Schedule, aired: int, now: datetime) -> date | None:
    """Today (Vietnam's date) if a changed schedule would air again a day already aired out.

    `aired` is how many times the programme aired today before the change. Moving a daily
    05:30 programme to 17:00 at 08:00 would give it a second air time today: if it has
    already aired as many times today as its new schedule has slots today, the rest of
    today is not the operator's intent. A day with a slot still owed (06:00 and 17:00 made
    06:00 and 18:00) keeps its remaining slots.
    """
    today = now.astimezone(LOCAL).date()
    if not schedule.recurring or aired == 0 or today in schedule.skip:
        return None
    midnight = datetime.combine(today, datetime.min.time(), LOCAL)
    # The day's slots as if the schedule had run all day: a start moved to 08:05 today must
    # not hide its 06:00. Whole weeks back keep the time of day and the weekdays.
    weeks = max(0, (schedule.start_at - midnight).days // 7 + 1)
    whole_day = replace(schedule, start_at=schedule.start_at - timedelta(weeks=weeks))
    walk = _times(whole_day, midnight - timedelta(microseconds=1))
    slots = list(takewhile(lambda slot: slot.astimezone(LOCAL).date() == today, walk))
    still_to_air = [slot for slot in slots if slot > now]
    return today if still_to_air and aired >= len(slots) else None
