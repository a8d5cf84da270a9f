"""What happens to a broadcast item an emergency cut off (`broadcasts.after_preemption`).

A speaker ends the item it plays with `finished`/`preempted` when a higher priority
takes over (docs/mqtt-speakers.md); the dispatcher records that delivery `failed`,
error `preempted`. The Resumer follows every command through `Dispatcher.listen`:

- It only acts on a broadcast item cut off by an *emergency* (a play of emergency
  priority live on that speaker when the cut is reported). An item replaced by one of
  its own priority (a corrected announcement: the newest wins) or by a `priority` item
  stays as it is: that is what the operator asked for.
- Policy `resume`: once the speaker is idle again (no play command of loacam's still
  in flight on it: the emergency finished, was stopped, failed or expired, or ran past
  its known length with no end reported), the same item is sent again to that speaker
  only, from its start (the protocol has no seek): same source, item id, priority,
  volume and audio, so its delivery is found and reported like the first. Only while
  the execution is within its broadcast's lateness (slot + lateness_s), the quiet hours
  allow it now, and the broadcast is not cancelled.
- At most once per (speaker, execution): if the resumed play is cut off again (a storm
  warning repeated every few minutes), it stays interrupted. Restarting the same
  programme from its beginning again and again helps nobody while emergencies follow
  each other, and it bounds what one item can cost.
- Policy `interrupted`: nothing is sent again; the delivery stays `failed`/`preempted`,
  which reports read as "bị ngắt bởi tin khẩn cấp (interrupted)".

Nothing new is stored: a resume still waiting when the daemon stops is forgotten (the
cut delivery keeps showing as interrupted).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy.exc import SQLAlchemyError

from daemon.aio import wait_first
from daemon.broadcasts.dispatch import source_of
from daemon.broadcasts.store import (
    BroadcastRecord,
    ExecState,
    ExecutionRecord,
    Status,
    executions,
    get_broadcast,
)
from daemon.schedule.rules import Rules, held_back
from daemon.speakers.dispatcher import CommandRequest, Dispatcher, DispatcherNotReadyError
from daemon.speakers.outbox import CommandRecord, DeliveryState
from daemon.store import Store
from drivers.backoff import pause
from drivers.speaker.model import Op, Priority

log = logging.getLogger(__name__)

Policy = Literal["resume", "interrupted"]

BROADCAST_SOURCE = source_of("")  # "broadcast:", then the broadcast's id
TICK_S = 1.0  # how often an emergency overrunning its length is looked for
COALESCE_S = 0.1  # a fleet's emergency ends within moments: one resume for all of them
# A started emergency whose `finished` has not come this long after its known length
# ended is over (the event was lost, or the speaker restarted): the speaker is idle.
OVERDUE = timedelta(seconds=30)
REMEMBERED = 10_000  # decisions kept for `decisions` (the newest)


class Outcome(enum.StrEnum):
    """What became of one cut-off delivery."""

    RESUMED = "resumed"
    INTERRUPTED = "interrupted"  # the policy says so
    LATE = "late"  # past the broadcast's lateness
    HELD_BACK = "held_back"  # quiet hours
    ONCE = "once"  # it was already resumed once on this speaker
    GONE = "gone"  # broadcast cancelled or deleted, execution not aired
    FAILED = "failed"  # the speaker is no longer in the configuration


@dataclass(frozen=True)
class _Item:
    """The same play again: everything a resumed command copies."""

    source: str
    item_id: str
    media: str
    priority: Priority
    volume: int | None

    @classmethod
    def of(cls, record: CommandRecord) -> _Item:
        return cls(
            record.source, record.item_id or "", record.media or "", record.priority, record.volume
        )

    @property
    def broadcast_id(self) -> str:
        return self.source.removeprefix(BROADCAST_SOURCE)


def refusal(
    rules: Rules,
    broadcast: BroadcastRecord | None,
    execution: ExecutionRecord | None,
    now: datetime,
) -> Outcome | None:
    """Why a cut-off item of this execution may not be played again at `now` (None: it may)."""
    if (
        broadcast is None
        or execution is None
        or broadcast.status is Status.CANCELLED
        or execution.state not in {ExecState.DISPATCHED, ExecState.PENDING}
    ):
        return Outcome.GONE
    if now > execution.slot + timedelta(seconds=broadcast.lateness_s):
        return Outcome.LATE
    if held_back(rules, broadcast.priority, now) is not None:
        return Outcome.HELD_BACK
    return None


def _is_broadcast_play(record: CommandRecord) -> bool:
    return (
        record.op is Op.PLAY
        and record.source.startswith(BROADCAST_SOURCE)
        and record.item_id is not None
        and record.media is not None
    )


class Resumer:
    """Follows pre-empted broadcast plays and, per policy, plays them again; `run()` is its loop."""

    def __init__(self, store: Store, dispatcher: Dispatcher, rules: Rules, policy: Policy) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._rules = rules
        self._policy = policy
        self._plays: dict[str, dict[str, CommandRecord]] = {}  # in flight, per speaker
        self._cut: dict[tuple[str, _Item], CommandRecord] = {}  # waiting for their speaker
        self._resumed: dict[tuple[str, str, str], datetime] = {}  # -> the lateness deadline
        self.decisions: OrderedDict[tuple[str, str], Outcome] = OrderedDict()
        self._wake = asyncio.Event()
        # Listening from the start, not from run(): a restart of the loop must not miss
        # the end of an emergency. (A callback, no I/O: the dispatcher sends nothing.)
        self._unsubscribe = dispatcher.listen(self._on_command)

    def close(self) -> None:
        """Stop following the dispatcher (a test's daemon outlives its resumer)."""
        self._unsubscribe()

    @property
    def waiting(self) -> int:
        """Cut-off plays waiting for their speaker to be free."""
        return len(self._cut)

    # -- what the dispatcher tells (quick, on the event loop, never raises) ------

    def _on_command(self, record: CommandRecord) -> None:
        if record.op is not Op.PLAY:
            return
        speaker_id = record.speaker_id
        if not record.state.terminal:
            self._plays.setdefault(speaker_id, {})[record.cmd_id] = record
            return
        live = self._plays.get(speaker_id, {})
        live.pop(record.cmd_id, None)
        if not live:
            self._plays.pop(speaker_id, None)
        if record.error == "preempted" and _is_broadcast_play(record):
            self._on_cut(record, live.values())
        if self._cut:
            self._wake.set()

    def _on_cut(self, record: CommandRecord, live: Iterable[CommandRecord]) -> None:
        # The emergency that took over has been handed to this speaker: it is in flight.
        by_emergency = record.priority < Priority.EMERGENCY and any(
            other.priority is Priority.EMERGENCY for other in live
        )
        if not by_emergency:
            return  # replaced by its own or a `priority` item: as the operator asked
        item = _Item.of(record)
        key = (record.speaker_id, item.item_id)
        if self._policy == "interrupted":
            self._decide(key, Outcome.INTERRUPTED)
        elif (record.speaker_id, item.source, item.item_id) in self._resumed:
            self._decide(key, Outcome.ONCE)
            log.info(
                "%s: broadcast item %s cut off again by an emergency: stays interrupted",
                record.speaker_id,
                item.item_id,
            )
        else:
            self._cut[(record.speaker_id, item)] = record

    def _decide(self, key: tuple[str, str], outcome: Outcome) -> None:
        self.decisions[key] = outcome
        self.decisions.move_to_end(key)
        while len(self.decisions) > REMEMBERED:
            self.decisions.popitem(last=False)

    # -- the loop ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Resume what may be resumed as speakers become free, until `stop`."""
        while not stop.is_set():
            self._wake.clear()
            await self.resume_ready()
            await wait_first(self._wake, stop, within_s=TICK_S)
            if self._wake.is_set():
                await pause(stop, COALESCE_S)

    def _idle(self, speaker_id: str, now: datetime) -> bool:
        """No play of loacam's is in flight on this speaker (one overrunning its length
        with no end reported counts as over)."""
        for record in self._plays.get(speaker_id, {}).values():
            overran = (
                record.state is DeliveryState.STARTED
                and record.started_at is not None
                and record.duration_s is not None
                and record.started_at + timedelta(seconds=record.duration_s) + OVERDUE < now
            )
            if not overran:
                return False
        return True

    async def resume_ready(self) -> None:
        """Play again the cut-off plays whose speakers are free now, one per speaker."""
        now = datetime.now(UTC)
        self._forget_resumed(now)
        # Two items cut on one speaker (a `priority` item, itself cut by an emergency):
        # the higher first; the other waits until the speaker is free again.
        chosen: dict[str, _Item] = {}
        for speaker_id, item in self._cut:
            best = chosen.get(speaker_id)
            if (best is None or item.priority > best.priority) and self._idle(speaker_id, now):
                chosen[speaker_id] = item
        ready: dict[_Item, list[str]] = defaultdict(list)
        for speaker_id, item in chosen.items():
            ready[item].append(speaker_id)
        for item, speaker_ids in ready.items():
            try:
                await self._resume(item, speaker_ids)
            except SQLAlchemyError as exc:
                log.warning("broadcast %s: resume delayed, store error: %s", item.broadcast_id, exc)
            except DispatcherNotReadyError:
                log.info("broadcast %s: resume delayed, speakers not ready", item.broadcast_id)

    async def _resume(self, item: _Item, speaker_ids: list[str]) -> None:
        broadcast = await get_broadcast(self._store, item.broadcast_id)
        runs = await executions(self._store, item.broadcast_id) if broadcast is not None else []
        execution = next((run for run in runs if str(run.id) == item.item_id), None)
        now = datetime.now(UTC)
        why = refusal(self._rules, broadcast, execution, now)
        if why is None and broadcast is not None and execution is not None:
            deadline = execution.slot + timedelta(seconds=broadcast.lateness_s)
            sent = await self._submit(item, speaker_ids, deadline)
            outcome, speaker_ids = Outcome.RESUMED, sent
            log.info(
                "broadcast %s: execution %s cut off by an emergency, played again on %d speakers",
                item.broadcast_id,
                item.item_id,
                len(sent),
            )
        else:
            outcome = why or Outcome.GONE
            log.info(
                "broadcast %s: execution %s cut off by an emergency, not played again (%s) "
                "on %d speakers",
                item.broadcast_id,
                item.item_id,
                why,
                len(speaker_ids),
            )
        for speaker_id in speaker_ids:
            self._cut.pop((speaker_id, item), None)
            self._decide((speaker_id, item.item_id), outcome)

    async def _submit(self, item: _Item, speaker_ids: list[str], deadline: datetime) -> list[str]:
        request = CommandRequest(
            Op.PLAY,
            source=item.source,
            media=item.media,
            item_id=item.item_id,
            priority=item.priority,
            volume=item.volume,
        )
        targets = list(speaker_ids)
        # Remembered before it is sent: a cut of the new play may be reported before
        # submit() returns, and it must not be resumed a second time.
        for speaker_id in targets:
            self._resumed[(speaker_id, item.source, item.item_id)] = deadline
        while targets:
            try:
                await self._dispatcher.submit(targets, request)
            except KeyError as exc:  # a speaker removed from the configuration meanwhile
                gone = str(exc.args[0])
                targets.remove(gone)
                del self._resumed[(gone, item.source, item.item_id)]
                self._cut.pop((gone, item), None)
                self._decide((gone, item.item_id), Outcome.FAILED)
                continue
            break
        return targets

    def _forget_resumed(self, now: datetime) -> None:
        # Past its lateness an execution is never resumed again: no need to remember it.
        for key, deadline in list(self._resumed.items()):
            if deadline < now:
                del self._resumed[key]
