"""One simulated native speaker: its MQTT session and its answers to commands.

Playback is `speaker_playback.Amplifier`; fleets share a `MediaLibrary` and a connect
semaphore (see `speaker.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import aiomqtt

from drivers.backoff import Backoff, pause
from drivers.sim.changes import Changes
from drivers.sim.speaker_link import (
    MQTT_TIMEOUT_S,
    Reply,
    SpeakerLink,
    drop_connection,
    json_object,
    new_client,
    reply_properties,
    reply_to,
)
from drivers.sim.speaker_media import MediaLibrary
from drivers.sim.speaker_playback import ActivePlay, Amplifier
from drivers.sim.speaker_protocol import (
    OFFLINE,
    ONLINE,
    AckPayload,
    Command,
    CommandRefusedError,
    Leaf,
    SimSpeakerSpec,
    SpeakerFaults,
    ack_payload,
    answerable_cmd_id,
    codec_of,
    encode_ack,
    event_payload,
    info_payload,
    parse_command,
    state_payload,
    topic,
)

log = logging.getLogger(__name__)

STATE_EVERY_S = 600.0  # "republishes its state ... at least every 10 minutes"
REMEMBER_AT_LEAST = 1000  # handled cmd_ids: at least the last 1,000 ...
REMEMBER_FOR_S = 86400.0  # ... and every one for 24 hours


@dataclass(frozen=True)
class _Outgoing:
    kind: Literal["state", "ack", "event"]
    topic: str
    payload: bytes
    retain: bool = False
    correlation: bytes | None = None


class SimulatedSpeaker:
    """A speaker speaking docs/mqtt-speakers.md; observe it through its public fields."""

    def __init__(
        self,
        spec: SimSpeakerSpec,
        *,
        link: SpeakerLink,
        media: MediaLibrary,
        connect_slots: asyncio.Semaphore,
    ) -> None:
        self.spec = spec
        self.online = False
        self.volume = spec.volume
        self.handled: dict[str, AckPayload] = {}
        self.duplicates = 0
        self.acks_sent = 0
        self.connects = 0
        self._link = link
        self._slots = connect_slots
        self._faults = spec.faults
        self._amp = Amplifier(spec.id, host=self, media=media, speed=link.speed)
        self.plays = self._amp.plays  # the same list, updated in place
        self._handled_at: dict[str, float] = {}
        self._held: list[_Outgoing] = []
        # Acks, events and states in the order made; sent while connected, kept while not.
        self._outbox: deque[_Outgoing] = deque()
        self._outbox_filled = asyncio.Event()
        self._client: aiomqtt.Client | None = None  # the live connection, for go_offline
        # Replaced on every change, after waking whoever waited on the old one.
        self._changes = Changes(self.spec.id)
        self._stop = asyncio.Event()
        self._away_until = 0.0
        self._rebooting = False
        self._draining = False  # a clean end: the sender stops once the outbox is empty
        self._runner: asyncio.Task[None] | None = None

    @property
    def faults(self) -> SpeakerFaults:
        return self._faults

    def topic(self, leaf: Leaf) -> str:
        return topic(self._link.site, self.spec.id, leaf)

    def set_faults(self, faults: SpeakerFaults) -> None:
        """Change faults at run time; clearing `hold_acks` publishes the held acks in order."""
        self._faults = faults
        if not faults.hold_acks and self._held:
            held, self._held = self._held, []
            for message in held:
                self._send(message)
        self.notify_change()

    async def wait_for(
        self,
        predicate: Callable[[SimulatedSpeaker], bool],
        timeout: float | None = 10.0,  # noqa: ASYNC109 - the fleet API's contract
    ) -> None:
        """Return once `predicate(self)` holds, re-checked on every change; else TimeoutError."""
        await self._changes.wait_until(lambda: predicate(self), timeout)

    async def go_offline(self, seconds: float) -> None:
        """Lose the link uncleanly (the broker fires the will) and come back after `seconds`."""
        log.info("%s: going offline for %.1f s", self.spec.id, seconds)
        self._away_until = time.monotonic() + seconds
        client, self._client = self._client, None
        self._set_online(online=False)
        if client is not None:
            drop_connection(client)

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name=f"speaker-{self.spec.id}")
        self._runner.add_done_callback(lambda _: self.notify_change())

    async def wait_ready(self) -> None:
        """Wait for the first connection (status, subscription, info and state done)."""
        runner = self._runner
        await self.wait_for(lambda s: s.connects > 0 or runner is None or runner.done(), None)
        if runner is None or runner.done():
            raise RuntimeError(f"{self.spec.id}: not started, or stopped before connecting")

    async def stop(self) -> None:
        """A clean power-off: playback cut, `offline` published, DISCONNECT."""
        self._stop.set()
        self._amp.cancel_all()
        if self._runner is not None:
            await self._runner

    # -- the link -------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = Backoff(initial=0.5, cap=30.0)
        while not self._stop.is_set():
            away = self._away_until - time.monotonic()
            if away > 0:
                await pause(self._stop, away)
                continue
            try:
                await self._session(backoff)
            except aiomqtt.MqttError as exc:
                log.info("%s: connection lost or refused: %s", self.spec.id, exc)
            self._set_online(online=False)
            if self._rebooting:
                self._rebooting = False
            elif not self._stop.is_set() and self._away_until <= time.monotonic():
                await pause(self._stop, backoff.next_delay())

    async def _session(self, backoff: Backoff) -> None:
        client = new_client(self._link, self.spec.id, self.topic("status"))
        async with contextlib.AsyncExitStack() as stack:
            # A bounded number of connects in flight: a thousand speakers coming up
            # together (or back after a broker restart) must not stampede the broker.
            async with self._slots:
                await stack.enter_async_context(client)
                await self._announce(client)
            backoff.reset()
            if self._away_until > time.monotonic():  # go_offline came while connecting
                self._client = None
                drop_connection(client)
            else:
                self._set_online(online=True)
            try:
                await self._serve(client)
            finally:
                dropped = self._client is not client  # go_offline cut the link
                self._client = None
            if not dropped:
                # A clean DISCONNECT suppresses the will: say it ourselves first.
                await client.publish(self.topic("status"), OFFLINE, qos=1, retain=True)

    async def _announce(self, client: aiomqtt.Client) -> None:
        # The order the protocol asks for on every connection.
        await client.publish(self.topic("status"), ONLINE, qos=1, retain=True)
        await client.subscribe(self.topic("cmd"), qos=1)
        await client.publish(self.topic("info"), info_payload(self.spec), qos=1, retain=True)
        await client.publish(self.topic("state"), self._state_bytes(), qos=1, retain=True)
        # Acks and events from while we were away stay queued, oldest first; states
        # queued meanwhile are stale now that the current one is out.
        self._outbox = deque(m for m in self._outbox if m.kind != "state")
        self._client = client

    async def _serve(self, client: aiomqtt.Client) -> None:
        over = asyncio.Event()
        pump = asyncio.create_task(self._pump(client))
        sender = asyncio.create_task(self._sender(client, over))
        stopper = asyncio.create_task(self._stop.wait())
        tasks = [pump, sender, stopper, asyncio.create_task(self._heartbeat())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if stopper in done or (pump in done and pump.exception() is None):
                # A clean end (stop, reboot): what is queued (the reboot's ack) goes
                # out before `offline`.
                pump.cancel()
                self._draining = True
                self._outbox_filled.set()
                await asyncio.wait({sender}, timeout=MQTT_TIMEOUT_S)
        finally:
            self._draining = False
            over.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done - {stopper}:
            if not task.cancelled() and (exc := task.exception()) is not None:
                raise exc

    async def _sender(self, client: aiomqtt.Client, over: asyncio.Event) -> None:
        """Publish the outbox in order; the only task that awaits a publish, so
        cancelled playback or commands never cut one mid-way.

        It loops on `over` as well as ending on cancellation: Python 3.11's
        asyncio.wait_for, inside aiomqtt's publish, loses a cancellation that arrives
        together with the PUBACK.
        """
        while not over.is_set():
            if not self._outbox:
                if self._draining:
                    return
                self._outbox_filled.clear()
                await self._outbox_filled.wait()
                continue
            message = self._outbox[0]
            # MqttError ends the session; the message stays first for the next one.
            await client.publish(
                message.topic,
                message.payload,
                qos=1,
                retain=message.retain,
                properties=reply_properties(self._link, message.correlation),
            )
            if self._outbox and self._outbox[0] is message:
                self._outbox.popleft()
            if message.kind == "ack":
                self.acks_sent += 1
                self.notify_change()

    async def _pump(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            await self._on_message(message)
            if self._rebooting:
                return

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(STATE_EVERY_S)
            self.send_state()

    def _set_online(self, *, online: bool) -> None:
        if self.online != online:
            self.online = online
            self.connects += online
            log.debug("%s: %s", self.spec.id, "online" if online else "offline")
            self.notify_change()

    # -- commands -------------------------------------------------------------------

    async def _on_message(self, message: aiomqtt.Message) -> None:
        data = json_object(message.payload)
        cmd_id = answerable_cmd_id(data) if data is not None else None
        if data is None or cmd_id is None:
            log.warning("%s: ignored a cmd that is no JSON object with a cmd_id", self.spec.id)
            return
        reply = reply_to(message, self.topic("ack"))
        known = self.handled.get(cmd_id)
        if known is not None:
            self.duplicates += 1
            log.info("%s: cmd %s seen before: ack repeated, not executed", self.spec.id, cmd_id)
            self.notify_change()
            self._publish_ack(known, reply)
            return
        try:
            command = parse_command(data, datetime.now(UTC))
        except CommandRefusedError as exc:
            log.info("%s: cmd %s refused: %s", self.spec.id, cmd_id, exc)
            self._ack(cmd_id, exc.error, reply)
            return
        await self._execute(command, reply)

    async def _execute(self, command: Command, reply: Reply) -> None:
        if command.live and not self.spec.streams:
            log.info("%s: cmd %s refused: no stream capability", self.spec.id, command.cmd_id)
            self._ack(command.cmd_id, "unsupported", reply)
        elif command.live:
            await self._play(command, reply)  # a stream's URL names no format: decoding tells
        elif command.op in {"play", "prefetch"} and not self._plays_codec(command.url):
            log.info("%s: cmd %s refused: codec of %s", self.spec.id, command.cmd_id, command.url)
            self._ack(command.cmd_id, "codec", reply)
        elif command.op == "play":
            await self._play(command, reply)
        else:
            self._ack(command.cmd_id, None, reply)
            await self._carry_out(command)

    async def _carry_out(self, command: Command) -> None:
        if command.op == "stop":
            await self._amp.stop(command.item_id)
        elif command.op == "set_volume" and command.volume is not None:
            self.volume = command.volume
            self.notify_change()
            self.send_state()
        elif command.op == "prefetch":
            self._amp.prefetch(command.url)
        elif command.op == "reboot":
            log.info("%s: rebooting", self.spec.id)
            await self._amp.stop(None)
            self._rebooting = True  # the pump ends after this message; see `_run`

    async def _play(self, command: Command, reply: Reply) -> None:
        if self._amp.refuses(command.priority):
            log.info("%s: play %s refused: busy", self.spec.id, command.cmd_id)
            self._ack(command.cmd_id, "busy", reply)
            return
        play, previous = self._amp.accept(command, self.volume)
        self._ack(command.cmd_id, None, reply)  # accepted: before the download
        await self._amp.start(play, previous)

    def _plays_codec(self, url: str) -> bool:
        codec = codec_of(url)
        if codec is None:
            return True  # no extension to judge by: decoding will tell
        return codec in self.spec.codecs and codec not in self._faults.refuse_codecs

    def _ack(self, cmd_id: str, error: str | None, reply: Reply) -> None:
        ack = ack_payload(cmd_id, error, datetime.now(UTC))
        self._remember(cmd_id, ack)
        self._publish_ack(ack, reply)

    def _remember(self, cmd_id: str, ack: AckPayload) -> None:
        now = time.monotonic()
        self.handled[cmd_id] = ack
        self._handled_at[cmd_id] = now
        # dicts keep insertion order: the first entry is the oldest
        while len(self._handled_at) > REMEMBER_AT_LEAST:
            oldest, at = next(iter(self._handled_at.items()))
            if now - at < REMEMBER_FOR_S:
                break
            del self._handled_at[oldest], self.handled[oldest]
        self.notify_change()

    def _publish_ack(self, ack: AckPayload, reply: Reply) -> None:
        message = _Outgoing("ack", reply.topic, encode_ack(ack), correlation=reply.correlation)
        if self._faults.hold_acks:
            self._held.append(message)
            self.notify_change()
            return
        self._send(message)

    # -- publishing (also what the amplifier calls) ----------------------------------

    def send_event(self, event: str, play: ActivePlay, extra: Mapping[str, object]) -> None:
        payload = event_payload(event, play.cmd_id, play.item_id, datetime.now(UTC), extra)
        self._send(_Outgoing("event", self.topic("event"), payload))

    def send_state(self) -> None:
        self._send(_Outgoing("state", self.topic("state"), self._state_bytes(), retain=True))

    def notify_change(self) -> None:
        """Wake every `wait_for`."""
        self._changes.notify()

    def _state_bytes(self) -> bytes:
        play = self._amp.playing
        playing = None
        if play is not None:
            playing = {"cmd_id": play.cmd_id, "item_id": play.item_id, "priority": play.priority}
        volume = play.volume if play is not None else self.volume
        return state_payload(playing, volume, self.spec.signal_dbm, datetime.now(UTC))

    def _send(self, message: _Outgoing) -> None:
        """Queue for `_sender`; while offline the queue waits, as a device's would."""
        self._outbox.append(message)
        self._outbox_filled.set()
