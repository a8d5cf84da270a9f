"""Small asyncio helpers the daemon's loops share."""

from __future__ import annotations

import asyncio


async def wait_first(*events: asyncio.Event, within_s: float | None) -> None:
    """Return when any of `events` is set, or after `within_s` seconds (None: no limit)."""
    waiters = {asyncio.ensure_future(event.wait()) for event in events}
    try:
        await asyncio.wait(waiters, timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
