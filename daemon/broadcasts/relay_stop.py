"""Ending every relay at its end, whatever the speakers do.

Radio automation systems are known to leave a relay playing into the next programme
when nothing tells the player to stop. A speaker given a live play stops by itself at
its `ends_at`; loacam also sends `stop` (with the item's id) at the end, to the speakers
the play went to, so a speaker whose clock is wrong or whose firmware ignores `ends_at`
stops too. The state is in the database: an execution's `stopped_at` is claimed before
its stops are sent (as a slot's row is before it airs), so a restart, even one that
spans the end, sends them once it is back, and a second stopper never sends them again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.exc import SQLAlchemyError

from daemon.aio import wait_first
from daemon.broadcasts.dispatch import source_of
from daemon.broadcasts.relay import relay_end
from daemon.broadcasts.relay_store import mark_stopped, release_stopped, unstopped_relays
from daemon.broadcasts.store import BroadcastRecord, ExecState, ExecutionRecord, Status
from daemon.speakers.dispatcher import DispatcherNotReadyError
from daemon.speakers.outbox import CommandRecord, item_commands
from daemon.speakers.service import SpeakerService
from daemon.store import Store
from daemon.supervisor import LoacamError
from drivers.speaker.model import Op

log = logging.getLogger(__name__)

MAX_SLEEP_S = 30.0  # also catches a wall clock set forward while asleep
RETRY_S = 1.0  # the speaker service not ready yet


class RelayStoreError(LoacamError):
    """The store failed under the relay stopper (restarted with backoff)."""


def stop_source_of(broadcast_id: str) -> str:
    """The `source` of the stops that end a broadcast's relays.

    Not the broadcast's own source: its deliveries list one play per speaker, and a
    stop is not a delivery of the programme.
    """
    return f"relay-end:{broadcast_id}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RelayStopper:
    """Sends `stop` at each relay's end; `run()` is its loop, `tick()` one pass."""

    def __init__(
        self,
        store: Store,
        speakers: SpeakerService,
        *,
        clock: Callable[[], datetime] = _utcnow,
        max_sleep_s: float = MAX_SLEEP_S,
    ) -> None:
        self._store = store
        self._speakers = speakers
        self._clock = clock
        self._max_sleep_s = max_sleep_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Plan again now (a relay was sent, or a broadcast cancelled)."""
        self._wake.set()

    def _heard(self, record: CommandRecord) -> None:
        # A live play just written: its end may be sooner than the next planned pass.
        if record.live and record.attempts == 0:
            self._wake.set()

    async def tick(self) -> float:
        """Stop every relay whose end has come; seconds until the next end (capped)."""
        now = self._clock()
        delay = self._max_sleep_s
        for execution, broadcast in await unstopped_relays(self._store):
            # A cancelled broadcast's relay ends now: cancelling is the operator's stop.
            end = now if broadcast.status is Status.CANCELLED else relay_end(broadcast, execution)
            if end > now:
                delay = min(delay, (end - now).total_seconds())
            elif not await self._stop(broadcast, execution, now):
                delay = min(delay, RETRY_S)
        return max(delay, 0.0)

    async def _stop(
        self, broadcast: BroadcastRecord, execution: ExecutionRecord, now: datetime
    ) -> bool:
        """Send the end of one relay; False to try again shortly."""
        item_id = str(execution.id)
        stored = await item_commands(self._store, source_of(broadcast.id), item_id)
        plays = self._speakers.dispatcher.latest(stored)
        if not plays and execution.state is ExecState.PENDING:
            # Its stream still being checked, or the daemon stopped mid-way. Plays are
            # written all at once and expire at the end: any written from now on has
            # expired already. Seen again when they are written (`_heard`) or it fails.
            return True
        # Only where it may still play: not refused, expired, failed or already over.
        speaker_ids = sorted(
            {
                play.speaker_id
                for play in plays
                if play.op is Op.PLAY
                and not play.state.terminal
                and self._speakers.registry.get(play.speaker_id) is not None
            }
        )
        if not await mark_stopped(self._store, execution.id, now):
            return True  # stopped by another stopper meanwhile
        try:
            if speaker_ids:
                await self._speakers.command(
                    speaker_ids, Op.STOP, source=stop_source_of(broadcast.id), item_id=item_id
                )
        except (DispatcherNotReadyError, SQLAlchemyError) as exc:
            await release_stopped(self._store, execution.id)  # not sent: try again
            if isinstance(exc, SQLAlchemyError):
                raise
            log.warning("broadcast %s: relay %s not stopped yet: %s", broadcast.id, item_id, exc)
            return False
        log.info(
            "broadcast %s: relay %s ended (end %s), stop sent to %d speaker(s)",
            broadcast.id,
            item_id,
            relay_end(broadcast, execution).isoformat(),
            len(speaker_ids),
        )
        return True

    async def run(self, stop: asyncio.Event) -> None:
        unsubscribe = self._speakers.dispatcher.listen(self._heard)
        try:
            while not stop.is_set():
                self._wake.clear()  # a wake during the pass plans again at once
                delay = await self.tick()
                await self._sleep(stop, delay)
        except SQLAlchemyError as exc:
            # A locked or full database: the supervisor restarts this loop, nothing else.
            raise RelayStoreError(f"relays: database error: {exc}") from exc
        finally:
            unsubscribe()

    async def _sleep(self, stop: asyncio.Event, delay: float) -> None:
        await wait_first(stop, self._wake, within_s=delay)
