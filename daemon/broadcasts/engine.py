"""The execution engine: which broadcast slots air now, exactly once, whatever the clock does.

Each tick looks at every active broadcast's slots that are due and not yet decided. The
latest due slot airs if it is late by at most the broadcast's `lateness_s`; every older
one is MISSED (a later slot of the same broadcast supersedes it: the same announcement
is not aired twice in a row after downtime), with an alarm each. A slot is decided by
inserting its execution row under the unique (broadcast, slot) constraint *before* it is
dispatched, so a crash, a restart, a clock set back or a second engine on the same
database never airs it twice.

Commune offices run on small boxes whose clock can be wrong after a power cut (no RTC
battery, NTP not yet synced): the engine refuses to fire while the clock is behind the
last execution, and reports jumps of the wall clock against the monotonic one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from daemon.aio import wait_first
from daemon.broadcasts.store import (
    BroadcastRecord,
    ExecState,
    ExecutionRecord,
    active_broadcasts,
    claim,
    fail_stale_pending,
    finish_broadcast,
    finish_execution,
    last_slot,
    latest_fired_at,
)
from daemon.schedule.lunar import LunarDateError
from daemon.schedule.recurrence import LOCAL, START_GRACE, Schedule, ScheduleError, occurrences
from daemon.store.db import Store

log = logging.getLogger(__name__)

# A new broadcast's slots count from its creation minus the start time's own grace
# (recurrence.validate accepts a start_at that far in the past): a one-off created "now"
# for "now" fires once, and nothing from before the broadcast existed is ever MISSED.
NEW_BROADCAST_GRACE = START_GRACE
# Slots decided per broadcast per tick: an hourly rule after a month of downtime must not
# stall the loop (or raise 700 alarms); older due slots are skipped with one log line.
SLOTS_PER_TICK = 100
# Wall clock against monotonic clock between two ticks: NTP slews by milliseconds, a
# difference beyond this is somebody (or a first NTP sync) setting the clock.
JUMP_THRESHOLD_S = 60.0
# The clock may be this much behind the last execution (two engines, NTP slew) and fire.
BEHIND_TOLERANCE = timedelta(seconds=1)
_PAGE = 1000  # occurrences asked for at once when counting a long backlog
STALE_PENDING = timedelta(minutes=15)
_INTERRUPTED = "Bị gián đoạn khi đang gửi tới loa (interrupted while being sent)"

Dispatch = Callable[[BroadcastRecord, ExecutionRecord], Awaitable[None]]


class Alarm(Protocol):
    """Raises (or, `active=False`, clears) an alarm of `kind` about `subject`."""

    async def __call__(
        self, kind: str, message: str, *, subject: str = "broadcasts", active: bool = True
    ) -> None: ...


class DispatchError(Exception):
    """The slot could not be handed to the speakers; the message says why (Vietnamese first).

    The dispatch wiring translates its own failures into this: the execution is recorded
    FAILED with the message, and is not retried (a retry would air it late and unasked).
    """


def _utcnow() -> datetime:
    return datetime.now(UTC)


def local_text(moment: datetime) -> str:
    """A moment as the commune reads it: 05:30 02/12/2026 (Asia/Ho_Chi_Minh)."""
    return f"{moment.astimezone(LOCAL):%H:%M %d/%m/%Y}"


@dataclass(frozen=True)
class Backlog:
    """The due slots of one broadcast: the most recent ones, and how many older were left."""

    slots: list[datetime]  # ascending, at most `bound + 1`
    skipped: int


def due_slots(schedule: Schedule, after: datetime, now: datetime, bound: int) -> Backlog:
    """Slots strictly after `after` and at or before `now`, keeping the latest `bound + 1`."""
    recent: deque[datetime] = deque(maxlen=bound + 1)
    seen = 0
    # The usual tick has 0 or 1 due slot, and asking a lunar yearly rule for 100 slots
    # computes a century of calendars: start small, grow only while all are due.
    count = 2
    while True:
        page = occurrences(schedule, after, count)
        due = [slot for slot in page if slot <= now]
        recent.extend(due)
        seen += len(due)
        if len(due) < count:
            return Backlog(list(recent), seen - len(recent))
        after, count = due[-1], min(count * 4, _PAGE)


def missed_message(broadcast: BroadcastRecord, slot: datetime, now: datetime) -> str:
    late_min = int((now - slot).total_seconds() // 60)
    if now - slot <= timedelta(seconds=broadcast.lateness_s):
        why = "đã có lần phát mới hơn thay thế (superseded by a later slot)"
    else:
        why = (
            f"trễ {late_min} phút, quá {broadcast.lateness_s // 60} phút cho phép "
            f"(late by {late_min} min)"
        )
    return f'Bản tin "{broadcast.title}" lúc {local_text(slot)} không được phát: {why}'


class Engine:
    """Decides and dispatches broadcast slots; `run()` is its loop, `tick()` one pass."""

    def __init__(
        self,
        store: Store,
        *,
        dispatch: Dispatch,
        alarm: Alarm,
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        max_sleep_s: float = 30.0,
        slots_per_tick: int = SLOTS_PER_TICK,
    ) -> None:
        self._store = store
        self._dispatch = dispatch
        self._alarm = alarm
        self._clock = clock
        self._monotonic = monotonic
        self._max_sleep_s = max_sleep_s
        self._bound = slots_per_tick
        self._last_tick: tuple[datetime, float] | None = None
        self._behind = False
        self._broken: set[str] = set()  # broadcasts whose schedule was reported unreadable
        self._wake = asyncio.Event()
        self._listeners: list[Callable[[str], None]] = []
        self._urgent: set[asyncio.Task[list[ExecutionRecord]]] = set()
        self.stopped = asyncio.Event()  # set when run() ends (live views close then)

    def listen(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call `listener(broadcast_id)` when one of its executions changes; the unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _tell(self, broadcast_id: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(broadcast_id)
            except Exception:  # a broken live view never stops a broadcast
                log.exception("broadcast engine: a listener failed")

    def wake(self) -> None:
        """Plan again now (a broadcast was added or changed)."""
        self._wake.set()

    def air_urgent(self, broadcast: BroadcastRecord) -> None:
        """Decide an emergency's due slot now, beside the loop: a storm warning does not
        wait for the programme the loop may be rendering or relaying. The (broadcast,
        slot) claim keeps the two from airing it twice."""
        task = asyncio.create_task(self._tick_broadcast(broadcast, self._clock()))
        self._urgent.add(task)
        task.add_done_callback(self._urgent_done)

    def _urgent_done(self, task: asyncio.Task[list[ExecutionRecord]]) -> None:
        self._urgent.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("broadcast engine: an urgent slot failed", exc_info=error)

    async def _fail_interrupted(self, now: datetime) -> None:
        # A dispatch takes at most the TTS deadline (minutes): a slot PENDING for longer
        # was interrupted (a stop, a crash). It is not aired again (it may have reached
        # some speakers), but it no longer stays PENDING for ever unseen.
        ids = await fail_stale_pending(self._store, now - STALE_PENDING, _INTERRUPTED)
        for execution_id in ids:
            log.warning("execution %s: interrupted while being sent, marked failed", execution_id)
        if ids:
            await self._alarm("broadcast_interrupted", f"{len(ids)} lượt phát bị gián đoạn")

    async def tick(self) -> list[ExecutionRecord]:
        """Decide every due slot; the executions this engine claimed, in their final state."""
        now = self._clock()
        await self._check_jump(now, self._monotonic())
        behind = await self._clock_behind(now)
        await self._fail_interrupted(now)
        decided: list[ExecutionRecord] = []
        # Emergencies first: a storm warning never waits behind a programme's render. A
        # clock behind the last execution holds back everything else, not a storm warning.
        pending = sorted(
            await active_broadcasts(self._store), key=lambda b: b.priority != "emergency"
        )
        if behind:
            pending = [b for b in pending if b.priority == "emergency"]
        for broadcast in pending:
            decided += await self._tick_broadcast(broadcast, now)
        return decided

    async def plan(self) -> float:
        """Seconds until the next slot of any active broadcast, capped at `max_sleep_s`.

        The cap is what catches a wall clock set forward while asleep (the sleep itself
        runs on the monotonic clock).
        """
        now = self._clock()
        delay = self._max_sleep_s
        for broadcast in await active_broadcasts(self._store):
            try:
                upcoming = occurrences(broadcast.schedule, now, 1)
            except (ScheduleError, LunarDateError):
                continue  # reported by tick()
            if upcoming:
                delay = min(delay, (upcoming[0] - now).total_seconds())
        return max(delay, 0.0)

    async def run(self, stop: asyncio.Event) -> None:
        self.stopped.clear()
        try:
            while not stop.is_set():
                self._wake.clear()  # a wake() during the tick re-plans at once
                try:
                    await self.tick()
                    delay = await self.plan()
                except SQLAlchemyError as exc:
                    log.warning(
                        "broadcast engine: store unavailable, retrying in %s s: %s",
                        self._max_sleep_s,
                        exc,
                    )
                    delay = self._max_sleep_s
                await self._sleep(stop, delay)
        finally:
            for task in list(self._urgent):
                task.cancel()
            await asyncio.gather(*self._urgent, return_exceptions=True)
            self.stopped.set()

    async def _sleep(self, stop: asyncio.Event, delay: float) -> None:
        await wait_first(stop, self._wake, within_s=delay)

    async def _check_jump(self, now: datetime, mono: float) -> None:
        previous, self._last_tick = self._last_tick, (now, mono)
        if previous is None:
            return
        jump = (now - previous[0]).total_seconds() - (mono - previous[1])
        if abs(jump) <= JUMP_THRESHOLD_S:
            return
        # Forward: skipped slots go through the lateness policy. Backward: decided slots
        # keep their rows, so passing them again airs nothing.
        direction = "tới" if jump > 0 else "lùi"
        log.warning("broadcast engine: wall clock jumped %+.0f s (now %s)", jump, now)
        await self._alarm(
            "clock_jump",
            f"Đồng hồ máy chủ vừa nhảy {direction} {abs(jump):.0f} giây, "
            f"giờ hiện tại {local_text(now)} (clock jumped {jump:+.0f} s)",
            subject="clock",
        )

    async def _clock_behind(self, now: datetime) -> bool:
        latest = await latest_fired_at(self._store)
        if latest is None or now >= latest - BEHIND_TOLERANCE:
            if self._behind:
                log.info("broadcast engine: clock is past the last execution again, firing")
                self._behind = False
                await self._alarm(
                    "clock_behind",
                    "Đồng hồ máy chủ đã qua lần phát gần nhất, phát theo lịch trở lại "
                    "(clock is past the last execution again)",
                    subject="clock",
                    active=False,
                )
            return False
        if not self._behind:
            self._behind = True
            log.error(
                "broadcast engine: clock %s is behind the last execution %s, not firing",
                now,
                latest,
            )
            await self._alarm(
                "clock_behind",
                f"Đồng hồ máy chủ ({local_text(now)}) chậm hơn lần phát gần nhất "
                f"({local_text(latest)}): tạm dừng phát theo lịch cho đến khi đồng hồ đúng "
                "(server clock is behind the last execution)",
                subject="clock",
            )
        return True

    async def _tick_broadcast(
        self, broadcast: BroadcastRecord, now: datetime
    ) -> list[ExecutionRecord]:
        # Slots count from the latest decided one, and never from before the schedule was
        # last set: a changed rule does not raise alarms for slots it never had.
        after = broadcast.counts_from - NEW_BROADCAST_GRACE
        decided_last = await last_slot(self._store, broadcast.id)
        if decided_last is not None:
            after = max(after, decided_last)
        try:
            backlog = due_slots(broadcast.schedule, after, now, self._bound)
            over = not backlog.slots or not occurrences(broadcast.schedule, backlog.slots[-1], 1)
        except (ScheduleError, LunarDateError) as exc:
            if broadcast.id not in self._broken:
                self._broken.add(broadcast.id)
                log.warning("broadcast %s: unreadable schedule, not airing: %s", broadcast.id, exc)
            return []
        if not backlog.slots:
            return []
        decided = await self._decide(broadcast, backlog, now)
        # A one-off, or a rule that has ended: no slot left to air (unless it was changed
        # or cancelled meanwhile, which wins).
        if over and await finish_broadcast(self._store, broadcast, now):
            log.info("broadcast %s: last slot decided, done", broadcast.id)
        return decided

    async def _decide(
        self, broadcast: BroadcastRecord, backlog: Backlog, now: datetime
    ) -> list[ExecutionRecord]:
        lateness = timedelta(seconds=broadcast.lateness_s)
        latest = backlog.slots[-1]
        to_air = latest if now - latest <= lateness else None
        missed = backlog.slots[:-1] if to_air is not None else backlog.slots
        skipped = backlog.skipped + max(len(missed) - self._bound, 0)
        missed = missed[-self._bound :]
        if skipped:
            log.warning(
                "broadcast %s: %s older missed slots left unrecorded (before %s)",
                broadcast.id,
                skipped,
                missed[0] if missed else latest,
            )
        # Rows for the missed slots first (cheap, and a crash after them still airs the
        # latest on restart), then the air itself, then the alarms, which may be slow.
        claimed = [
            record
            for slot in missed
            if (record := await claim(self._store, broadcast.id, slot, ExecState.MISSED, now))
        ]
        if claimed:
            self._tell(broadcast.id)
        aired = await self._air(broadcast, to_air, now) if to_air is not None else None
        for record in claimed:
            log.warning("broadcast %s: slot %s missed", broadcast.id, record.slot)
            await self._alarm(
                "broadcast_missed",
                missed_message(broadcast, record.slot, now),
                subject=broadcast.id,
            )
        return claimed + ([aired] if aired is not None else [])

    async def _air(
        self, broadcast: BroadcastRecord, slot: datetime, now: datetime
    ) -> ExecutionRecord | None:
        record = await claim(self._store, broadcast.id, slot, ExecState.PENDING, now)
        if record is None:
            log.info("broadcast %s: slot %s already decided elsewhere", broadcast.id, slot)
            return None
        self._tell(broadcast.id)
        try:
            await self._dispatch(broadcast, record)
        except DispatchError as exc:
            log.warning("broadcast %s: slot %s failed: %s", broadcast.id, slot, exc)
            await finish_execution(self._store, record.id, ExecState.FAILED, str(exc))
            self._tell(broadcast.id)
            return replace(record, state=ExecState.FAILED, error=str(exc))
        await finish_execution(self._store, record.id, ExecState.DISPATCHED)
        self._tell(broadcast.id)
        log.info("broadcast %s: slot %s dispatched (%s late)", broadcast.id, slot, now - slot)
        return replace(record, state=ExecState.DISPATCHED)
