"""One supervisor on a TaskGroup: it starts the daemon's loops, restarts them, stops them in order.

A child is a coroutine function taking its own stop event. An error the child can
meet in the world (a socket, a device, a disk) makes it restart after a capped,
jittered backoff, and its state says why. Anything else is a programming error:
it cancels every child and ends the process, so systemd restarts a clean one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum

from drivers.backoff import Backoff, pause

log = logging.getLogger(__name__)

ChildRun = Callable[[asyncio.Event], Awaitable[None]]


class LoacamError(Exception):
    """Base of errors a child may meet in the world: the supervisor restarts the child."""


RECOVERABLE: tuple[type[BaseException], ...] = (OSError, LoacamError)


class ChildStatus(StrEnum):
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPED = "stopped"


@dataclass(frozen=True)
class ChildState:
    name: str
    status: ChildStatus
    since: datetime
    restarts: int = 0
    last_error: str | None = None


@dataclass
class _Child:
    name: str
    run: ChildRun
    backoff: Backoff
    stop: asyncio.Event = field(default_factory=asyncio.Event)


class Supervisor:
    def __init__(
        self,
        *,
        recoverable: tuple[type[BaseException], ...] = RECOVERABLE,
        backoff: Callable[[], Backoff] = lambda: Backoff(initial=1.0, cap=60.0),
        healthy_after_s: float = 30.0,
        stop_timeout_s: float = 7.0,
        min_stop_slice_s: float = 0.5,
    ) -> None:
        self._recoverable = recoverable
        self._backoff = backoff
        self._healthy_after = healthy_after_s
        self._stop_timeout = stop_timeout_s
        self._min_slice = min_stop_slice_s
        self._children: list[_Child] = []
        self._states: dict[str, ChildState] = {}

    def add(self, name: str, run: ChildRun) -> None:
        """Children start in the order added and stop in reverse order."""
        self._children.append(_Child(name, run, self._backoff()))
        self._states[name] = ChildState(name, ChildStatus.STOPPED, datetime.now(UTC))

    @property
    def states(self) -> list[ChildState]:
        return [self._states[child.name] for child in self._children]

    async def run(self, stop: asyncio.Event) -> None:
        """Run every child until `stop` is set, then stop them in reverse order."""
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self._keep(child), name=f"child:{child.name}")
                for child in self._children
            ]
            await stop.wait()
            await self._stop_all(tasks)

    async def _stop_all(self, tasks: list[asyncio.Task[None]]) -> None:
        # One budget for all, but every child gets at least a short slice: a child that
        # overran (HTTP draining a slow viewer) must not rob MQTT of its `offline`.
        # Worst case: stop_timeout + children * min_slice, inside systemd's 10 s promise.
        deadline = time.monotonic() + self._stop_timeout
        for child, task in reversed(list(zip(self._children, tasks, strict=True))):
            child.stop.set()
            budget = max(deadline - time.monotonic(), self._min_slice)
            await asyncio.wait({task}, timeout=budget)
            if not task.done():
                log.warning(
                    "supervisor: %s did not stop in %.1f s, cancelling it", child.name, budget
                )
                task.cancel()

    async def _keep(self, child: _Child) -> None:
        try:
            while not child.stop.is_set():
                started = time.monotonic()
                self._set(child.name, ChildStatus.RUNNING)
                try:
                    await child.run(child.stop)
                    if child.stop.is_set():
                        break
                    error = "stopped by itself"
                except self._recoverable as exc:
                    error = f"{type(exc).__name__}: {exc}"
                if time.monotonic() - started >= self._healthy_after:
                    child.backoff.reset()
                delay = child.backoff.next_delay()
                log.warning(
                    "supervisor: %s failed (%s); restart in %.1f s", child.name, error, delay
                )
                self._set(child.name, ChildStatus.BACKOFF, error=error, restarted=True)
                await pause(child.stop, delay)
        finally:
            self._set(child.name, ChildStatus.STOPPED)

    def _set(
        self, name: str, status: ChildStatus, *, error: str | None = None, restarted: bool = False
    ) -> None:
        old = self._states[name]
        self._states[name] = replace(
            old,
            status=status,
            since=datetime.now(UTC) if status != old.status else old.since,
            restarts=old.restarts + (1 if restarted else 0),
            last_error=error if error is not None else old.last_error,
        )
