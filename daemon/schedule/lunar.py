"""The Vietnamese lunar calendar (âm lịch): solar date ↔ lunar date.

The rules are the Chinese calendar's, computed for Vietnam's time zone (UTC+7), which
is why Tết sometimes falls on another day than the Chinese New Year (UTC+8): 1968,
1985, 2007, 2030...

- A month starts on the day (in UTC+7) of a new moon.
- Month 11 is the month that holds the winter solstice.
- A year from one month 11 to the next with 13 months has a leap month: the first
  month after month 11 that holds no major solar term (the sun's longitude crosses no
  multiple of 30°); it repeats the number of the month before it.

The astronomy (new moons, solstices, the sun's apparent longitude) is PyEphem's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from functools import lru_cache
from itertools import pairwise

import ephem

VIETNAM = timezone(timedelta(hours=7))
# Years this calendar answers for: PyEphem is accurate far beyond, but a schedule needs no more.
FIRST_YEAR, LAST_YEAR = 1900, 2199


class LunarDateError(ValueError):
    """No such lunar date (e.g. day 30 of a 29-day month, or a leap month that year lacks)."""


@dataclass(frozen=True, order=True)
class LunarDate:
    year: int
    month: int
    day: int
    leap: bool = False

    def __str__(self) -> str:
        leap = " nhuận" if self.leap else ""
        return f"ngày {self.day} tháng {self.month}{leap} năm {self.year} (âm lịch)"


@dataclass(frozen=True)
class LunarMonth:
    year: int  # the lunar year it belongs to
    month: int
    leap: bool
    start: date  # its first day, in the solar calendar
    days: int  # 29 or 30


def _day_in(moment: ephem.Date, zone: timezone) -> date:
    utc: datetime = ephem.Date(moment).datetime()
    return utc.replace(tzinfo=UTC).astimezone(zone).date()


def _instant(day: date, zone: timezone) -> ephem.Date:
    """The start of `day` in `zone`, as PyEphem's (UTC) date."""
    return ephem.Date(datetime.combine(day, time(), zone).astimezone(UTC).replace(tzinfo=None))


def _sun_term(day: date, zone: timezone) -> int:
    """Which 30° sector (0-11) the sun's apparent longitude is in at the start of `day`."""
    moment = _instant(day, zone)
    sun = ephem.Sun(moment)
    of_date = ephem.Ecliptic(ephem.Equatorial(sun.ra, sun.dec, epoch=moment), epoch=moment)
    return int(math.degrees(of_date.lon) // 30) % 12


@lru_cache(maxsize=64)
def _month11(year: int, zone: timezone) -> date:
    """The first day of the lunar month that holds `year`'s winter solstice."""
    solstice = _day_in(ephem.next_solstice(f"{year}/12/1"), zone)
    # The last new moon before the solstice's day ends, in `zone`.
    return _day_in(ephem.previous_new_moon(_instant(solstice + timedelta(days=1), zone)), zone)


def _new_moon_days(first: date, end: date, zone: timezone) -> list[date]:
    """Days (in `zone`) of the new moons from `first` (itself one) up to, not including, `end`."""
    days = [first]
    moment = _instant(first, zone)
    while True:
        moment = ephem.next_new_moon(moment + 1)
        day = _day_in(moment, zone)
        if day >= end:
            return days
        days.append(day)


@lru_cache(maxsize=64)
def year_months(year: int, zone: timezone = VIETNAM) -> tuple[LunarMonth, ...]:
    """The lunar months from month 11 of the year before `year` to month 10 of `year`."""
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise LunarDateError(f"năm {year} nằm ngoài {FIRST_YEAR}-{LAST_YEAR}")
    start, end = _month11(year - 1, zone), _month11(year, zone)
    starts = _new_moon_days(start, end, zone)
    bounds = [*starts, end]
    leap_at = None
    if len(starts) == 13:
        leap_at = next(
            i for i in range(1, 13) if _sun_term(bounds[i], zone) == _sun_term(bounds[i + 1], zone)
        )
    months = []
    number = 10
    for index, (first, following) in enumerate(pairwise(bounds)):
        leap = index == leap_at
        if not leap:
            number = number % 12 + 1
        # Month 11 and 12 (and a leap 11 or 12) still belong to the lunar year before.
        owner = year - 1 if number >= 11 and index < 3 else year
        months.append(LunarMonth(owner, number, leap, first, (following - first).days))
    return tuple(months)


def to_lunar(day: date, zone: timezone = VIETNAM) -> LunarDate:
    """The lunar date of a solar (Gregorian) date."""
    year = day.year + 1 if day >= _month11(day.year, zone) else day.year
    for month in reversed(year_months(year, zone)):
        if month.start <= day:
            return LunarDate(month.year, month.month, (day - month.start).days + 1, month.leap)
    raise AssertionError(f"{day} precedes its own lunar year")  # pragma: no cover


def lunar_month(year: int, month: int, *, leap: bool = False) -> LunarMonth:
    """Lunar month `month` (the leap one if `leap`) of lunar year `year`."""
    if not 1 <= month <= 12:
        raise LunarDateError(f"tháng {month} không có trong âm lịch (1-12)")
    table = year_months(year + 1) if month >= 11 else year_months(year)
    for candidate in table:
        if (candidate.year, candidate.month, candidate.leap) == (year, month, leap):
            return candidate
    raise LunarDateError(f"năm {year} âm lịch không có tháng {month} nhuận")


def to_solar(lunar: LunarDate) -> date:
    """The solar date of a lunar date; LunarDateError if that date does not exist."""
    month = lunar_month(lunar.year, lunar.month, leap=lunar.leap)
    if not 1 <= lunar.day <= month.days:
        leap = " nhuận" if lunar.leap else ""
        raise LunarDateError(
            f"tháng {lunar.month}{leap} năm {lunar.year} âm lịch chỉ có {month.days} ngày"
        )
    return month.start + timedelta(days=lunar.day - 1)


def tet(year: int, zone: timezone = VIETNAM) -> date:
    """New Year's Day (Tết Nguyên Đán) of lunar year `year`."""
    return next(m.start for m in year_months(year, zone) if m.month == 1 and not m.leap)
