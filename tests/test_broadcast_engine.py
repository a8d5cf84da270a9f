"""The broadcast execution engine with a real store: each slot airs once, or is MISSED once.

Time is injected: a wall clock and a monotonic clock the tests move (together for time
passing, the wall clock alone for a jump), then call `tick()`. The leaves, dispatch and
alarm, are recording fakes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from daemon.broadcasts.clock import forget_the_future
from daemon.broadcasts.engine import DispatchError, Engine
from daemon.broadcasts.store import (
    BroadcastRecord,
    ExecState,
    ExecutionRecord,
    Kind,
    Status,
    Targets,
    active_broadcasts,
    claim,
    executions,
    get_broadcast,
    insert_broadcast,
    set_status,
    update_broadcast,
)
from daemon.schedule.recurrence import LOCAL
from daemon.store import Store
from daemon.store.schema import executions as executions_table
from tests.speaker_rig import holds, until

# 03:00 on 2 December 2026 in the commune; the daily 05:30 slot is 22:30 UTC.
T0 = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
SLOT1 = datetime(2026, 12, 1, 22, 30, tzinfo=UTC)
DAY = timedelta(days=1)
DAILY_0530 = "FREQ=DAILY;BYHOUR=5;BYMINUTE=30;BYSECOND=0"


@dataclass
class Clocks:
    """A wall clock and a monotonic clock; `advance` is time passing, `jump` a clock set."""

    now: datetime = T0
    mono: float = 1000.0

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, delta: timedelta) -> None:
        self.now += delta
        self.mono += delta.total_seconds()

    def set(self, moment: datetime) -> None:
        self.advance(moment - self.now)

    def jump(self, delta: timedelta) -> None:
        self.now += delta
        self.mono += 1.0


@dataclass
class Leaves:
    """Recording dispatch and alarm; dispatch fails with `fail_with` when set."""

    aired: list[tuple[str, datetime]] = field(default_factory=list)
    alarms: list[tuple[str, str]] = field(default_factory=list)
    cleared: list[tuple[str, str]] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    fail_with: str | None = None
    dispatched: asyncio.Event = field(default_factory=asyncio.Event)

    async def dispatch(self, broadcast: BroadcastRecord, execution: ExecutionRecord) -> None:
        assert execution.state is ExecState.PENDING
        self.aired.append((broadcast.id, execution.slot))
        self.dispatched.set()
        if self.fail_with is not None:
            raise DispatchError(self.fail_with)

    async def alarm(
        self, kind: str, message: str, *, subject: str = "broadcasts", active: bool = True
    ) -> None:
        (self.alarms if active else self.cleared).append((kind, message))
        self.subjects.append(subject)

    def kinds(self, kind: str) -> list[str]:
        return [message for k, message in self.alarms if k == kind]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "data")
    yield opened
    await opened.close()


def make_engine(store: Store, clocks: Clocks, leaves: Leaves, **options: int) -> Engine:
    return Engine(
        store,
        dispatch=leaves.dispatch,
        alarm=leaves.alarm,
        clock=clocks.wall,
        monotonic=clocks.monotonic,
        **options,
    )


async def add_broadcast(
    store: Store,
    *,
    created_at: datetime = T0,
    start_at: datetime = T0,
    rrule: str | None = DAILY_0530,
    lunar: tuple[int, int] | None = None,
    lateness_s: int = 600,
    title: str = "Thông báo tiêm phòng",
    priority: str = "normal",
) -> BroadcastRecord:
    record = BroadcastRecord(
        id=uuid.uuid4().hex,
        title=title,
        kind=Kind.TEXT,
        text="Kính mời bà con đưa trẻ đi tiêm phòng.",
        targets=Targets(zones=("thon-1",)),
        priority=priority,
        start_at=start_at,
        rrule=rrule,
        lunar_day=lunar[0] if lunar else None,
        lunar_month=lunar[1] if lunar else None,
        lateness_s=lateness_s,
        created_by="can-bo",
        created_at=created_at,
        updated_at=created_at,
    )
    await insert_broadcast(store, record)
    return record


def local(moment: datetime) -> str:
    return f"{moment.astimezone(LOCAL):%H:%M %d/%m/%Y}"


async def test_the_store_round_trips_a_broadcast_in_utc(store: Store) -> None:
    in_hanoi = datetime(2026, 12, 2, 5, 30, tzinfo=LOCAL)
    record = await add_broadcast(store, start_at=in_hanoi, lunar=None)
    loaded = await get_broadcast(store, record.id)
    assert loaded == record
    assert loaded is not None
    assert loaded.start_at == SLOT1
    assert loaded.start_at.tzinfo is not None
    assert loaded.targets == Targets(zones=("thon-1",))


async def test_a_daily_rule_fires_once_a_day_at_0530_local(store: Store) -> None:
    clocks, leaves = Clocks(), Leaves()
    record = await add_broadcast(store)
    engine = make_engine(store, clocks, leaves)

    clocks.set(SLOT1 - timedelta(seconds=1))
    assert await engine.tick() == []
    clocks.set(SLOT1)
    [decided] = await engine.tick()
    assert decided.state is ExecState.DISPATCHED
    assert decided.slot == SLOT1
    for _ in range(5):  # ticking on within the lateness airs nothing more
        clocks.advance(timedelta(seconds=30))
        assert await engine.tick() == []
    clocks.set(SLOT1 + DAY + timedelta(seconds=3))
    await engine.tick()
    await engine.tick()

    assert leaves.aired == [(record.id, SLOT1), (record.id, SLOT1 + DAY)]
    assert [local(slot) for _, slot in leaves.aired] == ["05:30 02/12/2026", "05:30 03/12/2026"]
    rows = await executions(store, record.id)
    assert [(r.slot, r.state, r.fired_at) for r in rows] == [
        (SLOT1, ExecState.DISPATCHED, SLOT1),
        (SLOT1 + DAY, ExecState.DISPATCHED, SLOT1 + DAY + timedelta(seconds=3)),
    ]
    assert leaves.alarms == []


async def test_back_within_lateness_after_downtime_airs_the_latest_and_misses_the_rest(
    store: Store,
) -> None:
    clocks, leaves = Clocks(), Leaves()
    record = await add_broadcast(store, lateness_s=600)
    await make_engine(store, clocks, leaves).tick()  # up at 03:00, then down for 3 days

    clocks.set(SLOT1 + 2 * DAY + timedelta(minutes=5))
    restarted = make_engine(store, clocks, leaves)
    decided = await restarted.tick()
    await restarted.tick()
    await make_engine(store, clocks, leaves).tick()  # and another restart

    assert leaves.aired == [(record.id, SLOT1 + 2 * DAY)]
    assert [(r.slot, r.state) for r in decided] == [
        (SLOT1, ExecState.MISSED),
        (SLOT1 + DAY, ExecState.MISSED),
        (SLOT1 + 2 * DAY, ExecState.DISPATCHED),
    ]
    missed = leaves.kinds("broadcast_missed")
    assert len(missed) == 2
    assert "05:30 02/12/2026" in missed[0]
    assert "05:30 03/12/2026" in missed[1]
    assert all("Thông báo tiêm phòng" in message for message in missed)
    assert leaves.subjects == [record.id, record.id]  # each alarm names its broadcast
    assert len(await executions(store, record.id)) == 3


async def test_back_beyond_lateness_misses_every_slot_and_airs_none(store: Store) -> None:
    clocks, leaves = Clocks(), Leaves()
    record = await add_broadcast(store, lateness_s=600)
    clocks.set(SLOT1 + 2 * DAY + timedelta(minutes=20))
    engine = make_engine(store, clocks, leaves)
    await engine.tick()
    await engine.tick()

    assert leaves.aired == []
    rows = await executions(store, record.id)
    assert [(r.slot, r.state, r.fired_at) for r in rows] == [
        (SLOT1 + n * DAY, ExecState.MISSED, None) for n in range(3)
    ]
    missed = leaves.kinds("broadcast_missed")
    assert len(missed) == 3
    assert "05:30 04/12/2026" in missed[2]
    assert "trễ 20 phút" in missed[2]


async def test_a_long_backlog_is_bounded_per_tick(store: Store) -> None:
    clocks, leaves = Clocks(), Leaves()
    record = await add_broadcast(store, rrule="FREQ=HOURLY;BYMINUTE=0;BYSECOND=0")
    # Down from 03:00 for 12 hours: 12 slots, back 5 minutes after the last.
    clocks.set(T0 + timedelta(hours=12, minutes=5))
    await make_engine(store, clocks, leaves, slots_per_tick=5).tick()

    rows = await executions(store, record.id)
    assert leaves.aired == [(record.id, T0 + timedelta(hours=12))]
    assert [r.slot for r in rows if r.state is ExecState.MISSED] == [
        T0 + timedelta(hours=h) for h in range(7, 12)
    ]
    assert len(leaves.kinds("broadcast_missed")) == 5


@pytest.mark.parametrize(
    ("lateness_s", "state"), [(7200, ExecState.DISPATCHED), (600, ExecState.MISSED)]
)
async def test_a_forward_jump_over_a_slot_airs_it_once_or_misses_it_once(
    store: Store, lateness_s: int, state: ExecState
) -> None:
    clocks, leaves = Clocks(), Leaves()
    record = await add_broadcast(store, lateness_s=lateness_s)
    engine = make_engine(store, clocks, leaves)
    clocks.set(SLOT1 - timedelta(minutes=30))
    await engine.tick()

    clocks.jump(timedelta(hours=1))
    await engine.tick()
    clocks.advance(timedelta(seconds=30))
    await engine.tick()

    rows = await executions(store, record.id)
    assert [(r.slot, r.state) for r in rows] == [(SLOT1, state)]
    assert len(leaves.aired) == (1 if state is ExecState.DISPATCHED else 0)
    assert len(leaves.kinds("broadcast_missed")) == (1 if state is ExecState.MISSED else 0)
    [jump] = leaves.kinds("clock_jump")
    assert "3599 giây" in jump


async def test_a_backward_jump_after_a_slot_neither_repeats_nor_skips(store: Store) -> None:
    clocks, leaves = Clocks(), Leaves()
    record = await add_broadcast(store, lateness_s=7200)
    engine = make_engine(store, clocks, leaves)
    clocks.set(SLOT1 + timedelta(seconds=5))
    await engine.tick()
    clocks.advance(timedelta(minutes=1))
    await engine.tick()

    clocks.jump(timedelta(hours=-1))  # back to 04:31: the 05:30 slot is ahead again
    await engine.tick()
    clocks.set(SLOT1 + timedelta(minutes=2))  # passing 05:30 a second time
    await engine.tick()
    clocks.advance(timedelta(minutes=30))
    await engine.tick()
    clocks.set(SLOT1 + DAY)
    await engine.tick()
    await engine.tick()

    assert leaves.aired == [(record.id, SLOT1), (record.id, SLOT1 + DAY)]
    assert [r.slot for r in await executions(store, record.id)] == [SLOT1, SLOT1 + DAY]
    assert len(leaves.kinds("clock_jump")) == 1
    assert leaves.kinds("broadcast_missed") == []


async def test_a_clock_behind_the_last_execution_fires_nothing_until_it_passes(
    store: Store,
) -> None:
    clocks, leaves = Clocks(), Leaves()
    daily = await add_broadcast(store)
    clocks.set(SLOT1)
    await make_engine(store, clocks, leaves).tick()

    # A restart after a power cut, with the clock two hours behind: the operator adds
    # an announcement for ten minutes later (by the wrong clock), late-tolerant.
    clocks.set(SLOT1 - timedelta(hours=2))
    wrong_now = clocks.now
    engine = make_engine(store, clocks, leaves)
    meeting = await add_broadcast(
        store,
        created_at=wrong_now,
        start_at=wrong_now + timedelta(minutes=10),
        rrule=None,
        lateness_s=3 * 3600,
        title="Họp khẩn",
    )
    assert await engine.tick() == []
    clocks.advance(timedelta(minutes=30))  # the meeting is due, but the clock is not trusted
    assert await engine.tick() == []
    assert leaves.aired == [(daily.id, SLOT1)]
    assert await executions(store, meeting.id) == []
    [behind] = leaves.kinds("clock_behind")
    assert "05:30 02/12/2026" in behind

    clocks.set(SLOT1 + timedelta(seconds=1))
    [decided] = await engine.tick()
    assert (decided.broadcast_id, decided.state) == (meeting.id, ExecState.DISPATCHED)
    assert leaves.aired == [(daily.id, SLOT1), (meeting.id, wrong_now + timedelta(minutes=10))]
    assert len(leaves.kinds("clock_behind")) == 1
    [(kind, cleared)] = leaves.cleared  # the alarm is cleared once the clock is right again
    assert kind == "clock_behind"
    assert "phát theo lịch trở lại" in cleared


async def test_two_engines_on_one_database_air_each_slot_once(tmp_path: Path) -> None:
    first, second = await Store.open(tmp_path / "db"), await Store.open(tmp_path / "db")
    try:
        clocks, leaves = Clocks(), Leaves()
        record = await add_broadcast(first, rrule="FREQ=HOURLY;BYMINUTE=0;BYSECOND=0")
        engines = [make_engine(first, clocks, leaves), make_engine(second, clocks, leaves)]
        for _ in range(5):
            await asyncio.gather(*(engine.tick() for engine in engines))
            clocks.advance(timedelta(hours=1))
        rows = await executions(second, record.id)
        slots = [T0 + timedelta(hours=h) for h in range(5)]
        assert sorted(slot for _, slot in leaves.aired) == slots
        assert [(r.slot, r.state) for r in rows] == [(s, ExecState.DISPATCHED) for s in slots]
    finally:
        await first.close()
        await second.close()


async def test_a_slot_can_be_claimed_only_once_even_concurrently(tmp_path: Path) -> None:
    first, second = await Store.open(tmp_path / "db"), await Store.open(tmp_path / "db")
    try:
        record = await add_broadcast(first)
        claims = await asyncio.gather(
            *(claim(s, record.id, SLOT1, ExecState.PENDING, T0) for s in (first, second, first))
        )
        assert len([c for c in claims if c is not None]) == 1
        async with second.engine.connect() as conn:
            count = (await conn.execute(sa.select(sa.func.count(executions_table.c.id)))).scalar()
        assert count == 1
    finally:
        await first.close()
        await second.close()


async def test_a_lunar_new_year_broadcast_fires_on_tet_2027_once(store: Store) -> None:
    start = datetime(2027, 1, 1, 7, 0, tzinfo=LOCAL)
    clocks, leaves = Clocks(now=start.astimezone(UTC)), Leaves()
    record = await add_broadcast(
        store, created_at=clocks.now, start_at=start, rrule=None, lunar=(1, 1)
    )
    engine = make_engine(store, clocks, leaves)
    # Every morning at 07:00 through January, lunar 1/12 (8/1/2027) included: nothing.
    for _ in range(36):
        await engine.tick()
        clocks.advance(DAY)
    tet = datetime(2027, 2, 6, 7, 0, tzinfo=LOCAL)
    assert clocks.now == tet
    assert leaves.aired == []
    await engine.tick()
    clocks.advance(timedelta(minutes=1))
    await engine.tick()

    assert leaves.aired == [(record.id, tet.astimezone(UTC))]
    assert len(await executions(store, record.id)) == 1


async def test_a_failed_dispatch_is_recorded_and_not_retried(store: Store) -> None:
    clocks, leaves = Clocks(), Leaves(fail_with="Không có loa nào trực tuyến")
    record = await add_broadcast(store)
    engine = make_engine(store, clocks, leaves)
    clocks.set(SLOT1)
    [decided] = await engine.tick()
    clocks.advance(timedelta(minutes=1))
    await engine.tick()

    assert decided.state is ExecState.FAILED
    [row] = await executions(store, record.id)
    assert (row.state, row.error) == (ExecState.FAILED, "Không có loa nào trực tuyến")
    assert len(leaves.aired) == 1


async def test_a_cancelled_broadcast_never_fires(store: Store) -> None:
    clocks, leaves = Clocks(), Leaves()
    record = await add_broadcast(store)
    await set_status(store, record.id, Status.CANCELLED, T0)
    engine = make_engine(store, clocks, leaves)
    clocks.set(SLOT1)
    await engine.tick()

    assert leaves.aired == []
    assert await executions(store, record.id) == []


async def test_a_one_off_created_for_now_fires_once_then_is_done(store: Store) -> None:
    clocks, leaves = Clocks(), Leaves()
    record = await add_broadcast(store, rrule=None)
    engine = make_engine(store, clocks, leaves)
    await engine.tick()
    clocks.advance(timedelta(seconds=30))
    await engine.tick()

    assert leaves.aired == [(record.id, T0)]
    loaded = await get_broadcast(store, record.id)
    assert loaded is not None
    assert loaded.status is Status.DONE
    assert await active_broadcasts(store) == []


async def test_plan_sleeps_until_the_next_slot_capped(store: Store) -> None:
    clocks, leaves = Clocks(now=SLOT1 - timedelta(seconds=12)), Leaves()
    engine = make_engine(store, clocks, leaves)
    assert await engine.plan() == 30.0
    await add_broadcast(store)
    assert await engine.plan() == 12.0


async def test_run_fires_and_wakes_for_a_new_broadcast(store: Store) -> None:
    clocks, leaves = Clocks(), Leaves()
    first = await add_broadcast(store, rrule=None)
    engine = make_engine(store, clocks, leaves)
    stop = asyncio.Event()
    task = asyncio.create_task(engine.run(stop))
    await asyncio.wait_for(leaves.dispatched.wait(), 5)
    leaves.dispatched.clear()

    # The clock stands still, so only wake() (not the 30 s cap) can air this one in time.
    second = await add_broadcast(store, rrule=None)
    engine.wake()
    await asyncio.wait_for(leaves.dispatched.wait(), 5)
    stop.set()
    await asyncio.wait_for(task, 5)

    assert leaves.aired == [(first.id, T0), (second.id, T0)]


async def test_a_slot_left_pending_by_a_stopped_daemon_is_marked_failed_not_aired_again(
    store: Store,
) -> None:
    clocks, leaves = Clocks(T0), Leaves()
    broadcast = await add_broadcast(store)
    slot = datetime(2026, 11, 27, 22, 30, tzinfo=UTC)  # 05:30 on 28/11 in Vietnam
    # The daemon claimed the slot, then stopped before its dispatch finished.
    interrupted = await claim(store, broadcast.id, slot, ExecState.PENDING, slot)
    assert interrupted is not None
    clocks.set(slot + timedelta(minutes=5))
    engine = make_engine(store, clocks, leaves)
    await engine.tick()
    assert [e.state for e in await executions(store, broadcast.id)] == [ExecState.PENDING]
    clocks.set(slot + timedelta(minutes=16))  # longer than any dispatch takes
    await engine.tick()
    (run,) = await executions(store, broadcast.id)
    assert run.state is ExecState.FAILED
    assert "gián đoạn" in (run.error or "")
    assert leaves.aired == []
    assert len(leaves.kinds("broadcast_interrupted")) == 1


async def test_an_emergency_due_with_a_programme_is_sent_first(store: Store) -> None:
    clocks, leaves = Clocks(T0), Leaves()
    # The programme was scheduled first: without the rule it would be sent first.
    earlier = T0 - timedelta(minutes=1)
    programme = await add_broadcast(store, rrule=None, created_at=earlier, title="Chương trình")
    storm = await add_broadcast(store, rrule=None, title="Bão", priority="emergency")
    await make_engine(store, clocks, leaves).tick()
    assert [broadcast_id for broadcast_id, _ in leaves.aired] == [storm.id, programme.id]


async def test_a_changed_rule_counts_from_the_change_and_raises_no_alarm_for_before(
    store: Store,
) -> None:
    clocks, leaves = Clocks(), Leaves()
    record = await add_broadcast(store, rrule="FREQ=DAILY;BYHOUR=23;BYMINUTE=0;BYSECOND=0")
    engine = make_engine(store, clocks, leaves)
    clocks.set(SLOT1 + timedelta(hours=1))  # 06:30: the 06:00 rule below would be 30 min late
    assert await engine.tick() == []
    changed = replace(record, rrule="FREQ=DAILY;BYHOUR=6;BYMINUTE=0;BYSECOND=0",
                      updated_at=clocks.now, planned_at=clocks.now)  # fmt: skip
    assert await update_broadcast(store, changed, record.updated_at)
    assert not await update_broadcast(store, changed, record.updated_at)  # read before: refused
    assert await engine.tick() == []
    assert leaves.alarms == []
    clocks.set(datetime(2026, 12, 3, 6, 0, tzinfo=LOCAL))
    [decided] = await engine.tick()
    assert decided.slot == datetime(2026, 12, 3, 6, 0, tzinfo=LOCAL)
    assert leaves.alarms == []


async def test_a_skipped_date_airs_nothing_that_day_and_misses_nothing(store: Store) -> None:
    clocks, leaves = Clocks(), Leaves()
    skipped = SLOT1.astimezone(LOCAL).date()
    record = await add_broadcast(store)
    assert await update_broadcast(store, replace(record, skip_dates=(skipped,)), record.updated_at)
    engine = make_engine(store, clocks, leaves)
    clocks.set(SLOT1 + timedelta(minutes=1))
    assert await engine.tick() == []
    clocks.set(SLOT1 + DAY)
    [decided] = await engine.tick()
    assert decided.slot == SLOT1 + DAY
    assert leaves.alarms == []
    assert (await get_broadcast(store, record.id)) == replace(record, skip_dates=(skipped,))


async def test_after_a_clock_set_a_year_ahead_forgetting_the_future_airs_again(
    store: Store,
) -> None:
    clocks, leaves = Clocks(), Leaves()
    daily = await add_broadcast(store)
    meeting = await add_broadcast(store, start_at=SLOT1 + timedelta(hours=3), rrule=None)
    clocks.jump(timedelta(days=365))  # booted with a wrong clock: both decided a year ahead
    wrong = await make_engine(store, clocks, leaves).tick()
    assert {r.broadcast_id for r in wrong} == {daily.id, meeting.id}
    assert (await get_broadcast(store, meeting.id)).status is Status.DONE  # type: ignore[union-attr]

    clocks.set(SLOT1)  # NTP puts it right, but the slots of a year ahead are decided
    engine = make_engine(store, clocks, leaves)
    assert await engine.tick() == []
    forgotten = await forget_the_future(store, clocks.now)
    assert forgotten.reactivated == (meeting.id,)
    assert forgotten.deleted == len(wrong)
    [aired] = await engine.tick()
    assert (aired.broadcast_id, aired.slot, aired.state) == (daily.id, SLOT1, ExecState.DISPATCHED)
    clocks.set(SLOT1 + timedelta(hours=3))
    [later] = await engine.tick()
    assert (later.broadcast_id, later.state) == (meeting.id, ExecState.DISPATCHED)


async def test_a_new_title_does_not_drop_a_slot_that_is_due(store: Store) -> None:
    clocks, leaves = Clocks(), Leaves()
    record = await add_broadcast(store)
    clocks.set(SLOT1 + timedelta(minutes=3))  # due, not yet decided (the loop was busy)
    renamed = replace(record, title="Tin mới", updated_at=clocks.now)
    assert await update_broadcast(store, renamed, record.updated_at)
    [decided] = await make_engine(store, clocks, leaves).tick()
    assert (decided.slot, decided.state) == (SLOT1, ExecState.DISPATCHED)


async def test_an_emergency_airs_while_the_clock_is_behind_and_nothing_else_does(
    store: Store,
) -> None:
    clocks, leaves = Clocks(), Leaves()
    daily = await add_broadcast(store)
    clocks.set(SLOT1)
    await make_engine(store, clocks, leaves).tick()
    clocks.jump(timedelta(hours=-1))
    storm = await add_broadcast(store, created_at=clocks.now, start_at=clocks.now, rrule=None,
                                priority="emergency", title="Bão")  # fmt: skip
    note = await add_broadcast(store, created_at=clocks.now, start_at=clocks.now, rrule=None)
    decided = await make_engine(store, clocks, leaves).tick()
    assert [(r.broadcast_id, r.state) for r in decided] == [(storm.id, ExecState.DISPATCHED)]
    assert leaves.aired == [(daily.id, SLOT1), (storm.id, clocks.now)]
    assert await executions(store, note.id) == []
    assert len(leaves.kinds("clock_behind")) == 1


async def test_a_cancel_during_the_dispatch_of_the_last_slot_stays_a_cancel(
    store: Store,
) -> None:
    clocks, leaves = Clocks(), Leaves()
    record = await add_broadcast(store, start_at=SLOT1, rrule=None)

    async def cancelled_meanwhile(broadcast: BroadcastRecord, execution: ExecutionRecord) -> None:
        await set_status(store, broadcast.id, Status.CANCELLED, clocks.now)
        await leaves.dispatch(broadcast, execution)

    engine = Engine(store, dispatch=cancelled_meanwhile, alarm=leaves.alarm,
                    clock=clocks.wall, monotonic=clocks.monotonic)  # fmt: skip
    clocks.set(SLOT1)
    [decided] = await engine.tick()
    assert decided.state is ExecState.DISPATCHED
    after = await get_broadcast(store, record.id)
    assert after is not None
    assert after.status is Status.CANCELLED


async def test_an_urgent_slot_airs_beside_a_tick_still_dispatching(store: Store) -> None:
    clocks, leaves = Clocks(), Leaves()
    clocks.set(SLOT1)
    programme = await add_broadcast(store, created_at=SLOT1, start_at=SLOT1, rrule=None)
    release = asyncio.Event()
    aired: list[str] = []
    urgent_aired = asyncio.Event()

    async def slow_then_fast(broadcast: BroadcastRecord, execution: ExecutionRecord) -> None:
        aired.append(broadcast.title)
        if broadcast.id == programme.id:
            await release.wait()  # a relay check or a render that takes its time
        else:
            urgent_aired.set()

    engine = Engine(store, dispatch=slow_then_fast, alarm=leaves.alarm,
                    clock=clocks.wall, monotonic=clocks.monotonic)  # fmt: skip
    ticking = asyncio.create_task(engine.tick())
    await until(lambda: holds(aired == [programme.title]))
    storm = await add_broadcast(store, created_at=SLOT1, start_at=SLOT1, rrule=None,
                                priority="emergency", title="Bão")  # fmt: skip
    engine.air_urgent(storm)
    await asyncio.wait_for(urgent_aired.wait(), 10)
    assert not ticking.done()  # the programme is still being sent
    release.set()
    decided = await ticking
    assert [r.broadcast_id for r in decided] == [programme.id]  # the storm was not aired twice
    assert [r.state for r in await executions(store, storm.id)] == [ExecState.DISPATCHED]


async def test_two_daemon_processes_on_one_store_air_each_slot_once(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db")
    try:
        hourly = [
            await add_broadcast(store, rrule="FREQ=HOURLY;BYMINUTE=0;BYSECOND=0", title=f"tin {n}")
            for n in range(20)
        ]
    finally:
        await store.close()
    command = [
        sys.executable,
        "-m",
        "tests.engine_process",
        str(tmp_path / "db"),
        T0.isoformat(),
        "6",
    ]
    processes = [
        await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [await process.communicate() for process in processes]
    assert [process.returncode for process in processes] == [0, 0]
    aired = [[json.loads(line) for line in stdout.decode().splitlines()] for stdout, _ in outputs]
    everything = [(a["broadcast"], a["slot"]) for lines in aired for a in lines]
    wanted = {(b.id, (T0 + timedelta(hours=h)).isoformat()) for b in hourly for h in range(6)}
    assert sorted(everything) == sorted(wanted)  # each slot once, by one process or the other
