"""Checking a schedule (issue 7 point 7): how long an RRULE that never fires takes to refuse.

`validate` answers "does this rule air within five years?". dateutil compares UNTIL only with
a time it has found, so walked where it is, a rule that never fires (30 February) runs to the
year 9999. loacam asks a copy moved 400n years on (the calendar repeats every 400 years).
The peer is dateutil walking the rule where it is, bounded by the same horizon as before
that change, in the same run. Rules that do fire are timed too: they must stay instant.

    .venv/bin/python bench/schedule_check.py
    .venv/bin/python bench/schedule_check.py --runs 5
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from dateutil.rrule import rrulestr

from daemon.schedule.recurrence import (
    HORIZON,
    LOCAL,
    START_GRACE,
    Schedule,
    ScheduleError,
    validate,
)

START = datetime(2026, 11, 28, 5, 30, tzinfo=LOCAL)
NOW = datetime(2026, 11, 27, 22, 0, tzinfo=UTC)
NEVER = [
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
    "FREQ=WEEKLY;BYMONTH=2;BYMONTHDAY=30",
    "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30",
    "FREQ=DAILY;BYMONTH=4;BYMONTHDAY=31;BYHOUR=5,17",
    "FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30",
]
FIRES = ["FREQ=DAILY", "FREQ=MONTHLY;BYDAY=-1FR", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29"]


def loacam(rule: str) -> None:
    with contextlib.suppress(ScheduleError):
        validate(Schedule(START, rrule=rule), NOW)


def dateutil_in_place(rule: str) -> None:
    """What `validate` did before: walk the rule where it is, UNTIL at the horizon."""
    walked = rrulestr(rule, dtstart=START).replace(until=(NOW + HORIZON).astimezone(LOCAL))
    walked.after((NOW - START_GRACE).astimezone(LOCAL))


def timed(check: Callable[[str], None], rule: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        check(rule)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, ", end="")
    print(f"{platform.machine()}, median of {args.runs} runs (s)")
    print(f"{'rule':50} {'loacam':>8} {'in place':>9} {'ratio':>6}")
    for rule in NEVER + FIRES:
        ours = statistics.median(timed(loacam, rule, args.runs))
        peer = statistics.median(timed(dateutil_in_place, rule, args.runs))
        ratio = f"{peer / ours:5.1f}x" if ours > 0.001 else "   -"
        print(f"{rule:50} {ours:8.3f} {peer:9.3f} {ratio:>6}")


if __name__ == "__main__":
    main()
