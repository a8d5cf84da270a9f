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
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr

from daemon.schedule.lunar import LAST_YEAR, LunarDateError, lunar_month, to_lunar, year_months

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
_FREQUENCY = re.compile(r"FREQ\s*=\s*(MINUTELY|SECONDLY)")
# A schedule whose next air time is further away than this is a mistake, not a plan.
HORIZON = timedelta(days=5 * 366)
# The past a start time may be in: the form was filled in a moment ago.
START_GRACE = timedelta(minutes=2)


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
    return [t.astimezone(UTC) for t in islice(times, count)]


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
            # Walk the rule no further than the horizon: a rule that never fires (30
            # February, daily) would otherwise be walked for seconds before giving up.
            rule = _rule(schedule)
            if not any(part in schedule.rrule.upper() for part in ("UNTIL", "COUNT")):
                rule = rule.replace(until=(now + HORIZON).astimezone(LOCAL))
            found = rule.after((now - START_GRACE).astimezone(LOCAL))
            upcoming = [found.astimezone(UTC)] if found is not None else []
        else:
            upcoming = occurrences(schedule, now - START_GRACE, 1)
    except LunarDateError as exc:
        raise ScheduleError(f"Ngày âm lịch ngoài phạm vi ({exc})") from None
    if not upcoming or upcoming[0] - now > HORIZON:
        raise ScheduleError(
            "Lịch này không phát lần nào trong 5 năm tới (the schedule never fires)"
        )
    return upcoming[0]


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
