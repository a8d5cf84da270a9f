"""Sending speaker commands through the outbox, and following each to its end.

A command is written to the store before it is published; the broker's PUBACK makes
it `sent`, the speaker's ack `acknowledged`, its events `started` and `finished`.
Unacknowledged commands are re-sent when the link (re)connects, when their speaker
comes back online, and when an online speaker has not answered for a while; the
speaker de-duplicates by `cmd_id`. A command that expires first is marked and never
sent again. Progress is saved in batches: a 1,000-speaker dispatch is a handful of
transactions, not thousands.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from daemon.aio import wait_first
from daemon.media import MediaError, MediaSigner, MediaStore
from daemon.speakers.outbox import (
    CommandRecord,
    DeliveryState,
    get_command,
    insert_commands,
    load_unfinished,
    recent_commands,
    save_progress,
)
from daemon.store import Store
from drivers.backoff import pause
from drivers.mqtt import MqttLink, MqttLinkError, MqttRefusedError
from drivers.speaker.model import (
    Ack,
    Command,
    EventKind,
    Op,
    PlaybackEvent,
    Priority,
    SpeakerAddress,
    SpeakerDriver,
    SpeakerError,
)

log = logging.getLogger(__name__)

TICK_S = 0.5
COALESCE_S = 0.05  # gather a burst of acks into one transaction
# Commands are handed to the MQTT link in chunks, one event-loop turn between them:
# a whole chunk goes out in one burst, before the speakers' downloads compete with it.
SEND_CHUNK = 1000
MAX_PARALLEL_SENDS = 5000
LOAD_WAIT_S = 10.0
URL_GRACE = timedelta(hours=1)  # a speaker may still be downloading when the command expires
OUTCOME_WAIT = timedelta(hours=6)  # taken but never finished: longer than any programme


# Only `play` has events after its ack; for the others the ack is the whole outcome.
_ENDS_WITH_ACK = frozenset({Op.STOP, Op.SET_VOLUME, Op.PREFETCH, Op.PING, Op.REBOOT})


class DispatcherNotReadyError(Exception):
    """The outbox has not been loaded (the speaker loop is not running)."""


@dataclass(frozen=True)
class CommandRequest:
    op: Op
    source: str = ""
    media: str | None = None
    item_id: str | None = None
    priority: Priority = Priority.NORMAL
    volume: int | None = None
    expires_in_s: float | None = None
    # A relayed stream (a live `play`): the station's URL, passed on as it is, and its
    # end; the command expires at the end at the latest.
    stream_url: str | None = None
    ends_at: datetime | None = None


@dataclass(frozen=True)
class Route:
    """How to reach one speaker: its driver's name and its address."""

    driver: str
    address: SpeakerAddress


class Dispatcher:
    """Owns the commands still in flight: sends, re-sends, follows and saves them."""

    def __init__(
        self,
        store: Store,
        link: MqttLink,
        drivers: Mapping[str, SpeakerDriver],
        media: MediaStore,
        signer: MediaSigner,
        *,
        route: Callable[[str], Route | None],
        is_online: Callable[[str], bool],
        expiry_s: float,
        resend_after_s: float,
    ) -> None:
        self._store = store
        self._link = link
        self._drivers = drivers
        self._media = media
        self._signer = signer
        self._route = route
        self._is_online = is_online
        self._expiry = timedelta(seconds=expiry_s)
        self._resend_after_s = resend_after_s
        self._live: dict[str, CommandRecord] = {}
        self._dirty: dict[str, CommandRecord] = {}
        self._wake = asyncio.Event()
        self._tried: dict[str, float] = {}
        self._sending: set[str] = set()
        self._loaded = asyncio.Event()
        self._limit = asyncio.Semaphore(MAX_PARALLEL_SENDS)
        self._listeners: list[Callable[[CommandRecord], None]] = []
        link.on_connect(self.resend_pending)

    def listen(self, listener: Callable[[CommandRecord], None]) -> Callable[[], None]:
        """Call `listener` with each command written or changed; returns the unsubscribe.

        Listeners run on the event loop inside the dispatcher: they must be quick and never
        raise (set an event, append to a queue).
        """
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _tell(self, record: CommandRecord) -> None:
        for listener in list(self._listeners):
            try:
                listener(record)
            except Exception:  # a broken listener never stops the speakers
                log.exception("speakers: a command listener failed")

    # -- submitting -------------------------------------------------------------

    async def submit(
        self, speaker_ids: Sequence[str], request: CommandRequest
    ) -> list[CommandRecord]:
        """Write one command per speaker, then publish them; returns the records."""
        try:
            async with asyncio.timeout(LOAD_WAIT_S):
                await self._loaded.wait()
        except TimeoutError:
            raise DispatcherNotReadyError(
                "Hệ thống loa chưa sẵn sàng, xin thử lại sau (speaker service not ready)"
            ) from None
        now = datetime.now(UTC)
        expiry = timedelta(seconds=request.expires_in_s) if request.expires_in_s else self._expiry
        expires_at = now + expiry
        if request.ends_at is not None:
            expires_at = min(expires_at, request.ends_at)  # never taken after its end
        records = []
        for speaker_id in speaker_ids:
            route = self._route(speaker_id)
            if route is None:
                raise KeyError(speaker_id)
            record = CommandRecord(
                cmd_id=uuid.uuid4().hex,
                speaker_id=speaker_id,
                driver=route.driver,
                op=request.op,
                source=request.source,
                item_id=request.item_id,
                media=request.media,
                priority=request.priority,
                volume=request.volume,
                issued_at=now,
                expires_at=expires_at,
                updated_at=now,
                stream_url=request.stream_url,
                ends_at=request.ends_at,
            )
            driver = self._drivers[route.driver]
            if request.op not in driver.operations or (record.live and not driver.plays_streams):
                record.advance(DeliveryState.FAILED, now, "unsupported")
            records.append(record)
        await insert_commands(self._store, records)
        for record in records:
            if not record.state.terminal:
                self._live[record.cmd_id] = record
            self._tell(record)
        sends: list[asyncio.Future[None]] = []
        for start in range(0, len(records), SEND_CHUNK):
            sends += [
                asyncio.ensure_future(self._send(r)) for r in records[start : start + SEND_CHUNK]
            ]
            await asyncio.sleep(0)  # the socket writes this chunk before the next is built
        await asyncio.gather(*sends)
        return records

    async def resend_pending(self, speaker_id: str | None = None) -> None:
        """Send again what no speaker has taken yet (all, or one speaker's)."""
        await self._loaded.wait()
        due = [
            record
            for record in list(self._live.values())
            if (speaker_id is None or record.speaker_id == speaker_id) and self._unanswered(record)
        ]
        if due:
            log.info("speakers: re-sending %d unacknowledged command(s)", len(due))
        await asyncio.gather(*(self._send(record) for record in due))

    def _unanswered(self, record: CommandRecord) -> bool:
        """Should this command be (re-)sent? Only to a speaker that de-duplicates, twice."""
        driver = self._drivers.get(record.driver)
        if driver is None:
            return False  # its driver is no longer configured: it just expires
        if driver.confirms_receipt:
            return record.state.rank < DeliveryState.ACKNOWLEDGED.rank
        # At most once (Hermes): a command handed to the broker even once may have played.
        return record.state is DeliveryState.QUEUED and record.attempts == 0

    async def _send(self, record: CommandRecord) -> None:
        if record.cmd_id in self._sending or not self._unanswered(record):
            return
        now = datetime.now(UTC)
        if record.expires_at <= now:
            self._update(record, DeliveryState.EXPIRED, now)
            return
        route = self._route(record.speaker_id)
        if route is None or not self._link.connected:
            return  # sent on the next (re)connect
        self._sending.add(record.cmd_id)
        try:
            async with self._limit:
                await self._publish(record, route)
        finally:
            self._sending.discard(record.cmd_id)

    async def _publish(self, record: CommandRecord, route: Route) -> None:
        driver = self._drivers[route.driver]
        try:
            command = await self._command(record, driver)
        except MediaError as exc:
            log.warning("%s: command %s cannot be sent: %s", record.speaker_id, record.cmd_id, exc)
            self._update(record, DeliveryState.FAILED, datetime.now(UTC), "media")
            return
        record.attempts += 1
        self._tried[record.cmd_id] = time.monotonic()
        if not driver.confirms_receipt:
            # Saved before it leaves: after a crash, a restart must not send it again.
            await save_progress(self._store, [record])
        try:
            await driver.send(route.address, command)
        except MqttRefusedError as exc:
            # The broker's configuration (its ACL, a size limit) has to change: sending again
            # would be refused again, and "sent" would be a lie.
            log.warning(
                "%s: command %s refused by the broker: %s", record.speaker_id, record.cmd_id, exc
            )
            self._update(record, DeliveryState.FAILED, datetime.now(UTC), "broker")
            return
        except MqttLinkError as exc:
            log.info("%s: command %s not confirmed: %s", record.speaker_id, record.cmd_id, exc)
            if driver.confirms_receipt:
                self._mark_dirty(record)  # sent again on reconnect; the speaker de-duplicates
            else:
                self._update(record, DeliveryState.SENT, datetime.now(UTC), "unconfirmed")
            return
        except SpeakerError as exc:
            log.warning("%s: command %s refused: %s", record.speaker_id, record.cmd_id, exc)
            self._update(record, DeliveryState.FAILED, datetime.now(UTC), "unsupported")
            return
        now = datetime.now(UTC)
        if not driver.confirms_receipt and record.op is not Op.PLAY:
            self._update(record, DeliveryState.FINISHED, now)  # no answer will ever come
            return
        online = self._is_online(record.speaker_id)
        self._update(record, DeliveryState.SENT if online else DeliveryState.OFFLINE, now)
        self._mark_dirty(record)  # a repeat changes no state, but its attempt counts

    async def _command(self, record: CommandRecord, driver: SpeakerDriver) -> Command:
        url = wav = None
        if record.stream_url is not None and record.op is Op.PLAY:
            url = record.stream_url  # the station's own: not signed, not fetched by loacam
        elif record.media is not None and record.op in {Op.PLAY, Op.PREFETCH}:
            if driver.wants_wav:
                wav = (await self._media.wav(record.media)).wav
            else:
                self._media.path(record.media)  # a malformed name fails here, not on the speaker
                url = self._signer.url(record.media, record.expires_at + URL_GRACE)
        return Command(
            cmd_id=record.cmd_id,
            op=record.op,
            issued_at=record.issued_at,
            expires_at=record.expires_at,
            url=url,
            priority=record.priority,
            volume=record.volume,
            item_id=record.item_id,
            wav=wav,
            live=record.live,
            ends_at=record.ends_at,
        )

    # -- what speakers answer ---------------------------------------------------

    def on_ack(self, ack: Ack) -> None:
        record = self._live.get(ack.cmd_id)
        if record is None or record.speaker_id != ack.speaker_id:
            return  # already finished, or not ours
        now = datetime.now(UTC)
        if ack.ok and record.op in _ENDS_WITH_ACK:
            self._update(record, DeliveryState.FINISHED, now)  # done, nothing more will come
        elif ack.ok:
            self._update(record, DeliveryState.ACKNOWLEDGED, now)
        elif ack.error == "expired":
            self._update(record, DeliveryState.EXPIRED, now, "expired")
        else:
            self._update(record, DeliveryState.FAILED, now, ack.error or "refused")

    def on_event(self, event: PlaybackEvent) -> None:
        record = self._live.get(event.cmd_id or "")
        if record is None or record.speaker_id != event.speaker_id:
            return
        now = datetime.now(UTC)
        if event.kind is EventKind.STARTED:
            if event.duration_s is not None:
                record.duration_s = event.duration_s
            self._update(record, DeliveryState.STARTED, now)
        elif event.kind is EventKind.FINISHED:
            reason = event.reason or "completed"
            if reason == "preempted":
                self._update(record, DeliveryState.FAILED, now, "preempted")
            else:
                self._update(
                    record, DeliveryState.FINISHED, now, None if reason == "completed" else reason
                )
        elif event.kind is EventKind.FAILED:
            self._update(record, DeliveryState.FAILED, now, event.reason or "failed")

    # -- reading ----------------------------------------------------------------

    async def get(self, cmd_id: str) -> CommandRecord | None:
        return self._live.get(cmd_id) or await get_command(self._store, cmd_id)

    async def recent(
        self, *, speaker_id: str | None = None, source: str | None = None, limit: int = 50
    ) -> list[CommandRecord]:
        """Recent commands, with the progress not yet saved taken from memory."""
        stored = await recent_commands(
            self._store, speaker_id=speaker_id, source=source, limit=limit
        )
        return [self._live.get(record.cmd_id, record) for record in stored]

    def forget(self, cmd_ids: Iterable[str]) -> None:
        """Stop following and sending these commands (their rows were deleted)."""
        for cmd_id in cmd_ids:
            self._live.pop(cmd_id, None)
            self._dirty.pop(cmd_id, None)

    def latest(self, records: Iterable[CommandRecord]) -> list[CommandRecord]:
        """These stored commands, with the progress not saved yet taken from memory."""
        return [self._live.get(record.cmd_id, record) for record in records]

    def counts(self) -> dict[DeliveryState, int]:
        counts = dict.fromkeys(DeliveryState, 0)
        for record in self._live.values():
            counts[record.state] += 1
        return counts

    # -- the loop ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Load what an earlier run left unfinished, then save progress and sweep."""
        if not self._loaded.is_set():
            now = datetime.now(UTC)
            for record in await load_unfinished(self._store):
                self._live[record.cmd_id] = record
                handed_over = record.state is DeliveryState.QUEUED and record.attempts > 0
                if handed_over and record.driver in self._drivers and not self._unanswered(record):
                    # Handed to the broker just before a crash: it is never sent twice.
                    self._update(record, DeliveryState.SENT, now, "unconfirmed")
            log.info("speakers: %d unfinished command(s) in the outbox", len(self._live))
            self._loaded.set()
            if self._link.connected:
                await self.resend_pending()
        try:
            while not stop.is_set():
                await self._sweep()
                await self.flush()
                await wait_first(self._wake, stop, within_s=TICK_S)
                if self._wake.is_set():
                    await pause(stop, COALESCE_S)
        finally:
            await self.flush()

    async def flush(self) -> None:
        self._wake.clear()
        if not self._dirty:
            return
        batch, self._dirty = self._dirty, {}
        try:
            await save_progress(self._store, batch.values())
        except BaseException:
            self._dirty = batch | self._dirty  # saved by the next flush, not lost
            raise
        for record in batch.values():
            if record.state.terminal and self._live.get(record.cmd_id) is record:
                del self._live[record.cmd_id]
                self._tried.pop(record.cmd_id, None)

    async def _sweep(self) -> None:
        now = datetime.now(UTC)
        stale = time.monotonic() - self._resend_after_s
        resend = []
        for record in list(self._live.values()):
            unanswered = self._unanswered(record)
            if unanswered and record.expires_at <= now:
                self._update(record, DeliveryState.EXPIRED, now)
            elif not unanswered and record.expires_at + OUTCOME_WAIT <= now:
                # Taken, but its end never reported (an event lost, a Hermes speaker
                # gone): say so rather than follow it forever.
                self._update(record, DeliveryState.FAILED, now, "no_outcome")
            elif (
                unanswered
                and self._tried.get(record.cmd_id, 0.0) < stale
                and self._is_online(record.speaker_id)
            ):
                resend.append(record)
        if resend and self._link.connected:
            log.info(
                "speakers: %d command(s) unanswered for %.0f s, re-sending",
                len(resend),
                self._resend_after_s,
            )
            await asyncio.gather(*(self._send(record) for record in resend))

    def _update(
        self, record: CommandRecord, state: DeliveryState, at: datetime, error: str | None = None
    ) -> None:
        if record.advance(state, at, error):
            self._mark_dirty(record)

    def _mark_dirty(self, record: CommandRecord) -> None:
        self._dirty[record.cmd_id] = record
        self._wake.set()
        self._tell(record)
