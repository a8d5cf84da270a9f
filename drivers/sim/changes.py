"""Waiting for a simulator's state to change, without polling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Changes:
    """Every `notify()` wakes every waiter; `wait_until` re-checks its condition then."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._event = asyncio.Event()

    def notify(self) -> None:
        # A fresh event per change: waiters woken by this one re-check and wait on the next.
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(self, holds: Callable[[], bool], timeout: float | None) -> None:  # noqa: ASYNC109 - the simulators' API
        try:
            async with asyncio.timeout(timeout):
                while True:
                    event = self._event
                    if holds():
                        return
                    await event.wait()
        except TimeoutError:
            raise TimeoutError(f"{self._name}: condition not met within {timeout} s") from None
