"""The supervisor: restarts with backoff, visible state, ordered stop, programming errors end it."""

from __future__ import annotations

import asyncio
import random

import pytest

from daemon.supervisor import ChildStatus, LoacamError, Supervisor
from drivers.backoff import Backoff


def fast_supervisor(**kwargs: float) -> Supervisor:
    return Supervisor(backoff=lambda: Backoff(initial=0.01, cap=0.05), **kwargs)


async def test_failing_child_is_restarted_and_its_state_is_visible() -> None:
    supervisor = fast_supervisor()
    runs = 0
    third_run = asyncio.Event()

    async def flaky(stop: asyncio.Event) -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise ConnectionRefusedError(111, "Connection refused")
        third_run.set()
        await stop.wait()

    supervisor.add("flaky", flaky)
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    await asyncio.wait_for(third_run.wait(), 5)
    (state,) = supervisor.states
    assert state.status == ChildStatus.RUNNING
    assert state.restarts == 2
    assert state.last_error == "ConnectionRefusedError: [Errno 111] Connection refused"
    stop.set()
    await asyncio.wait_for(task, 5)
    assert supervisor.states[0].status == ChildStatus.STOPPED


async def test_child_returning_by_itself_is_restarted() -> None:
    supervisor = fast_supervisor()
    second = asyncio.Event()
    calls = 0

    async def quits(stop: asyncio.Event) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            second.set()
            await stop.wait()

    supervisor.add("quits", quits)
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    await asyncio.wait_for(second.wait(), 5)
    assert supervisor.states[0].last_error == "stopped by itself"
    stop.set()
    await task


async def test_loacam_errors_are_recoverable() -> None:
    supervisor = fast_supervisor()
    again = asyncio.Event()
    failed = False

    async def child(stop: asyncio.Event) -> None:
        nonlocal failed
        if not failed:
            failed = True
            raise LoacamError("camera said no")
        again.set()
        await stop.wait()

    supervisor.add("c", child)
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    await asyncio.wait_for(again.wait(), 5)
    assert supervisor.states[0].last_error == "LoacamError: camera said no"
    stop.set()
    await task


async def test_programming_error_ends_the_supervisor_and_cancels_siblings() -> None:
    supervisor = fast_supervisor()
    sibling_cancelled = asyncio.Event()
    sibling_started = asyncio.Event()

    async def sibling(stop: asyncio.Event) -> None:
        sibling_started.set()
        try:
            await stop.wait()
        except asyncio.CancelledError:
            sibling_cancelled.set()
            raise

    async def buggy(stop: asyncio.Event) -> None:
        await sibling_started.wait()
        raise TypeError("unsupported operand")

    supervisor.add("sibling", sibling)
    supervisor.add("buggy", buggy)
    with pytest.raises(ExceptionGroup) as caught:
        await asyncio.wait_for(supervisor.run(asyncio.Event()), 5)
    assert caught.group_contains(TypeError)
    assert sibling_cancelled.is_set()


async def test_children_stop_in_reverse_start_order() -> None:
    supervisor = fast_supervisor()
    order: list[str] = []
    started = {name: asyncio.Event() for name in ("store", "mqtt", "http")}

    def make(name: str):  # type: ignore[no-untyped-def]
        async def child(stop: asyncio.Event) -> None:
            started[name].set()
            await stop.wait()
            order.append(name)

        return child

    for name in started:
        supervisor.add(name, make(name))
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started.values())), 5)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert order == ["http", "mqtt", "store"]


async def test_child_ignoring_stop_is_cancelled_at_the_deadline() -> None:
    supervisor = fast_supervisor(stop_timeout_s=0.2)
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def stubborn(stop: asyncio.Event) -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # never looks at `stop`
        except asyncio.CancelledError:
            cancelled.set()
            raise

    supervisor.add("stubborn", stubborn)
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    await asyncio.wait_for(started.wait(), 5)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert cancelled.is_set()


def test_backoff_grows_caps_jitters_and_resets() -> None:
    backoff = Backoff(initial=1.0, cap=60.0, factor=2.0, jitter=0.2, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(10)]
    for attempt, delay in enumerate(delays):
        nominal = min(60.0, 2.0**attempt)
        assert nominal * 0.8 <= delay <= min(60.0, nominal * 1.2)
    assert delays[-1] <= 60.0
    assert len(set(delays)) == len(delays)  # jitter spreads equal nominal delays
    backoff.reset()
    assert 0.8 <= backoff.next_delay() <= 1.2


async def test_a_stubborn_child_does_not_rob_the_others_of_their_stop() -> None:
    supervisor = fast_supervisor(stop_timeout_s=0.1, min_stop_slice_s=2.0)
    started = {name: asyncio.Event() for name in ("mqtt", "http")}
    said_offline = asyncio.Event()

    async def mqtt(stop: asyncio.Event) -> None:
        started["mqtt"].set()
        await stop.wait()
        await asyncio.sleep(0)  # publishing `offline` takes a moment of its own
        said_offline.set()

    async def http(stop: asyncio.Event) -> None:
        started["http"].set()
        await asyncio.Event().wait()  # a viewer that never leaves

    supervisor.add("mqtt", mqtt)
    supervisor.add("http", http)
    stop = asyncio.Event()
    task = asyncio.create_task(supervisor.run(stop))
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started.values())), 5)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert said_offline.is_set()
