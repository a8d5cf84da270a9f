"""The speaker simulators against a real private mosquitto and real audio over HTTP.

Commands are published by hand, as the protocol page writes them, and the answers are
read off the broker: these tests check the simulator keeps docs/mqtt-speakers.md, so the
daemon's own tests can trust it as a peer.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import subprocess
import uuid
import wave
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from aiohttp import web
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from drivers.sim.broker import PrivateBroker
from drivers.sim.hermes import SimulatedHermesSpeaker
from drivers.sim.speaker import SimSpeakerSpec, SpeakerFaults, SpeakerFleet
from drivers.sim.speaker_protocol import CommandRefusedError, codec_of, parse_command

SPEED = 20.0  # a 1.5 s tone plays in 75 ms; the 60 s one in 3 s
TONE_S = 1.5
DECODE_TOLERANCE_S = 0.05


# -- media over HTTP ----------------------------------------------------------------


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("media")
    for name, seconds in [("tone.mp3", TONE_S), ("tone.wav", TONE_S), ("tone.ogg", TONE_S)]:
        _ffmpeg(f"sine=frequency=1000:duration={seconds}", directory / name)
    _ffmpeg("sine=frequency=440:duration=60", directory / "long.ogg")
    _ffmpeg("sine=frequency=440:duration=1.5:sample_rate=22050", directory / "hermes.wav")
    (directory / "broken.mp3").write_bytes(random.Random(7).randbytes(20_000))
    return directory


def _ffmpeg(source: str, out: Path) -> None:
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source, str(out)],
        check=True,
        timeout=60,
    )


@pytest.fixture
async def media(media_dir: Path) -> AsyncIterator[str]:
    """Base URL of a loopback HTTP server serving `media_dir` at /media/."""
    app = web.Application()
    app.router.add_static("/media/", media_dir)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/media"
    await runner.cleanup()


# -- a test-side MQTT client ----------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    topic: str
    payload: bytes
    retain: bool
    correlation: bytes | None

    @property
    def leaf(self) -> str:
        return self.topic.rsplit("/", 1)[-1]

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Observer:
    """Everything published under the site (and any extra filters), in arrival order."""

    client: aiomqtt.Client
    site: str
    seen: list[Seen] = field(default_factory=list)
    change: asyncio.Event = field(default_factory=asyncio.Event)

    def collect(self, message: aiomqtt.Message) -> None:
        payload = message.payload if isinstance(message.payload, bytes) else b""
        correlation = getattr(message.properties, "CorrelationData", None)
        self.seen.append(Seen(str(message.topic), payload, bool(message.retain), correlation))
        self.change.set()
        self.change = asyncio.Event()

    async def wait(self, condition: Callable[[], Any], within_s: float = 10.0) -> Any:
        async with asyncio.timeout(within_s):
            while True:
                change = self.change
                if result := condition():
                    return result
                await change.wait()

    def on(self, speaker_id: str, leaf: str) -> list[Seen]:
        return [s for s in self.seen if s.topic == f"loacam/{self.site}/spk/{speaker_id}/{leaf}"]

    def status(self, speaker_id: str) -> bytes | None:
        said = self.on(speaker_id, "status")
        return said[-1].payload if said else None

    def acks(self, cmd_id: str) -> list[dict[str, Any]]:
        return [s.json() for s in self.seen if s.leaf == "ack" and s.json()["cmd_id"] == cmd_id]

    def events(self, cmd_id: str) -> list[dict[str, Any]]:
        found = [s.json() for s in self.seen if s.leaf == "event"]
        return [e for e in found if e["cmd_id"] == cmd_id]

    async def ack(self, cmd_id: str) -> dict[str, Any]:
        acks: list[dict[str, Any]] = await self.wait(lambda: self.acks(cmd_id))
        return acks[0]

    async def event(self, cmd_id: str, name: str) -> dict[str, Any]:
        def found() -> list[dict[str, Any]]:
            return [e for e in self.events(cmd_id) if e["event"] == name]

        events: list[dict[str, Any]] = await self.wait(found)
        return events[0]

    async def send(self, speaker_id: str, command: dict[str, Any], **kwargs: Any) -> str:
        topic = f"loacam/{self.site}/spk/{speaker_id}/cmd"
        await self.client.publish(topic, json.dumps(command).encode(), qos=1, **kwargs)
        return str(command.get("cmd_id"))


@asynccontextmanager
async def observing(
    broker: PrivateBroker, site: str, *extra: str, v5: bool = True
) -> AsyncIterator[Observer]:
    client = aiomqtt.Client(
        "127.0.0.1",
        broker.port,
        identifier=f"observer-{uuid.uuid4().hex[:12]}",
        protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
    )
    async with client:
        observer = Observer(client, site)
        for topic_filter in (f"loacam/{site}/#", *extra):
            await client.subscribe(topic_filter, qos=1)

        async def pump() -> None:
            async for message in client.messages:
                observer.collect(message)

        task = asyncio.create_task(pump())
        try:
            yield observer
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def fleet(broker: PrivateBroker, site: str, *specs: SimSpeakerSpec, **kwargs: Any) -> SpeakerFleet:
    return SpeakerFleet(
        host="127.0.0.1",
        port=broker.port,
        site=site,
        speakers=specs or [SimSpeakerSpec("loa-1", zone="thon-1")],
        speed=kwargs.pop("speed", SPEED),
        **kwargs,
    )


def cmd(op: str, *, expires_in_s: float = 300, **keys: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "cmd_id": uuid.uuid4().hex,
        "op": op,
        "issued_at": _iso(now),
        "expires_at": _iso(now + timedelta(seconds=expires_in_s)),
        **keys,
    }


def play(
    url: str, *, priority: str = "normal", volume: int | None = None, item: str = "bc-1"
) -> dict[str, Any]:
    return cmd("play", url=url, priority=priority, volume=volume, item_id=item)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# -- native speakers ------------------------------------------------------------------


async def test_connect_publishes_retained_status_info_and_state(
    broker: PrivateBroker, site: str
) -> None:
    specs = [
        SimSpeakerSpec("loa-1", zone="thon-1", name="Cụm loa thôn 1"),
        SimSpeakerSpec("loa-2", zone="thon-2"),
    ]
    async with fleet(broker, site, *specs) as speakers:
        assert [s.online for s in speakers] == [True, True]
        # subscribed after the fact: what it gets is retained
        async with observing(broker, site) as seen:
            await seen.wait(
                lambda: all(
                    seen.on(i, leaf)
                    for i in ("loa-1", "loa-2")
                    for leaf in ("status", "info", "state")
                )
            )
            assert all(s.retain for s in seen.seen)
            assert seen.on("loa-1", "status")[0].payload == b"online"
            info = seen.on("loa-1", "info")[0].json()
            assert info["protocol"] == 1
            assert info["zones"] == ["thon-1"]
            assert info["name"] == "Cụm loa thôn 1"
            assert "mp3" in info["codecs"]
            assert seen.on("loa-2", "info")[0].json()["name"] == "loa-2"
            state = seen.on("loa-2", "state")[0].json()
            assert state["playing"] is None
            assert state["volume"] == 70
            assert state["faults"] == []
            assert state["ts"].endswith("Z")
    async with observing(broker, site) as seen:
        await seen.wait(lambda: seen.on("loa-1", "status") and seen.on("loa-2", "status"))
        assert [s.payload for s in seen.seen if s.leaf == "status"] == [b"offline", b"offline"]


@pytest.mark.parametrize(
    ("name", "volume"), [("tone.mp3", None), ("tone.wav", 40), ("tone.ogg", 0)]
)
async def test_play_acks_then_starts_and_completes(
    broker: PrivateBroker, site: str, media: str, name: str, volume: int | None
) -> None:
    async with observing(broker, site) as seen, fleet(broker, site) as speakers:
        cmd_id = await seen.send("loa-1", play(f"{media}/{name}?exp=1&sig=abc", volume=volume))
        finished = await seen.event(cmd_id, "finished")
        ack = await seen.ack(cmd_id)
        started = await seen.event(cmd_id, "started")
        assert (ack["ok"], ack["error"]) == (True, None)
        assert finished["reason"] == "completed"
        assert started["item_id"] == "bc-1"
        assert abs(started["duration_s"] - TONE_S) < DECODE_TOLERANCE_S
        order = [s.leaf for s in seen.on("loa-1", "ack") + seen.on("loa-1", "event")]
        assert order == ["ack", "event", "event"]
        assert [s.leaf for s in seen.seen if s.leaf in {"ack", "event"}] == [
            "ack",
            "event",
            "event",
        ]
        effective = 70 if volume is None else volume
        states = [s.json() for s in seen.on("loa-1", "state")]
        playing = [s for s in states if s["playing"] is not None]
        assert playing
        assert playing[0]["playing"] == {
            "cmd_id": cmd_id,
            "item_id": "bc-1",
            "priority": "normal",
        }
        assert playing[0]["volume"] == effective
        await seen.wait(lambda: seen.on("loa-1", "state")[-1].json()["playing"] is None)
        assert seen.on("loa-1", "state")[-1].json()["volume"] == 70
        speaker = speakers["loa-1"]
        await speaker.wait_for(lambda s: s.plays[0].outcome == "completed")
        record = speaker.plays[0]
        assert (record.cmd_id, record.volume, record.priority) == (cmd_id, effective, "normal")
        assert record.duration_s is not None
        assert abs(record.duration_s - TONE_S) < DECODE_TOLERANCE_S
        await speaker.wait_for(lambda s: s.acks_sent == 1)


async def test_same_file_is_decoded_once_for_the_whole_fleet(
    broker: PrivateBroker, site: str, media: str
) -> None:
    specs = [SimSpeakerSpec(f"loa-{n}", zone="thon-1") for n in range(5)]
    async with observing(broker, site) as seen, fleet(broker, site, *specs) as speakers:
        ids = [await seen.send(s.spec.id, play(f"{media}/tone.mp3")) for s in speakers]
        for cmd_id in ids:
            await seen.event(cmd_id, "finished")
        assert speakers.media.downloads == 5
        assert speakers.media.decodes == 1


async def test_duplicate_cmd_id_repeats_the_ack_and_plays_once(
    broker: PrivateBroker, site: str, media: str
) -> None:
    async with observing(broker, site) as seen, fleet(broker, site) as speakers:
        command = play(f"{media}/tone.mp3")
        cmd_id = await seen.send("loa-1", command)
        await seen.send("loa-1", command)
        await seen.wait(lambda: len(seen.acks(cmd_id)) == 2)
        await seen.event(cmd_id, "finished")
        first, second = seen.acks(cmd_id)
        assert first == second
        speaker = speakers["loa-1"]
        assert speaker.duplicates == 1
        assert len(speaker.plays) == 1
        assert [e["event"] for e in seen.events(cmd_id)] == ["started", "finished"]
        assert speaker.handled[cmd_id] == first


async def test_expired_command_is_refused_and_not_played(
    broker: PrivateBroker, site: str, media: str
) -> None:
    async with observing(broker, site) as seen, fleet(broker, site) as speakers:
        cmd_id = await seen.send(
            "loa-1",
            cmd(
                "play",
                expires_in_s=-60,
                url=f"{media}/tone.mp3",
                priority="normal",
                volume=None,
                item_id="x",
            ),
        )
        ack = await seen.ack(cmd_id)
        assert (ack["ok"], ack["error"]) == (False, "expired")
        ping = await seen.send("loa-1", cmd("ping"))  # handled after the play would have started
        assert (await seen.ack(ping))["ok"] is True
        assert speakers["loa-1"].plays == []
        assert seen.events(cmd_id) == []


async def test_undecodable_or_missing_file_fails_after_the_ack(
    broker: PrivateBroker, site: str, media: str
) -> None:
    async with observing(broker, site) as seen, fleet(broker, site) as speakers:
        broken = await seen.send("loa-1", play(f"{media}/broken.mp3"))
        assert (await seen.event(broken, "failed"))["error"] == "decode"
        missing = await seen.send("loa-1", play(f"{media}/missing.mp3"))
        assert (await seen.event(missing, "failed"))["error"] == "download"
        assert (await seen.ack(broken))["ok"] is True
        assert (await seen.ack(missing))["ok"] is True
        speaker = speakers["loa-1"]
        await speaker.wait_for(lambda s: s.plays[-1].outcome is not None)
        assert [p.outcome for p in speaker.plays] == ["failed:decode", "failed:download"]
        assert [e["event"] for e in seen.events(broken)] == ["failed"]


async def test_codec_refusals(broker: PrivateBroker, site: str, media: str) -> None:
    picky = SimSpeakerSpec(
        "loa-1", zone="z", faults=SpeakerFaults(refuse_codecs=frozenset({"mp3"}))
    )
    wav_only = SimSpeakerSpec("loa-2", zone="z", codecs=("wav",))
    async with observing(broker, site) as seen, fleet(broker, site, picky, wav_only) as speakers:
        refused = [
            await seen.send("loa-1", play(f"{media}/tone.mp3")),
            await seen.send("loa-2", play(f"{media}/tone.ogg")),
        ]
        for cmd_id in refused:
            ack = await seen.ack(cmd_id)
            assert (ack["ok"], ack["error"]) == (False, "codec")
        accepted = await seen.send("loa-2", play(f"{media}/tone.wav"))
        await seen.event(accepted, "finished")
        assert [len(s.plays) for s in speakers] == [0, 1]


async def test_emergency_preempts_and_lower_priority_is_busy_then_stop(
    broker: PrivateBroker, site: str, media: str
) -> None:
    long = f"{media}/long.ogg"
    async with observing(broker, site) as seen, fleet(broker, site) as speakers:
        normal = await seen.send("loa-1", play(long, item="bc-normal"))
        await seen.event(normal, "started")
        emergency = await seen.send("loa-1", play(long, priority="emergency", item="bc-alarm"))
        assert (await seen.event(normal, "finished"))["reason"] == "preempted"
        await seen.event(emergency, "started")
        assert (await seen.ack(emergency))["ok"] is True
        late = await seen.send("loa-1", play(long, priority="priority", item="bc-late"))
        assert (await seen.ack(late))["error"] == "busy"
        other = await seen.send("loa-1", cmd("stop", item_id="bc-other"))  # not what plays
        assert (await seen.ack(other))["ok"] is True
        stop = await seen.send("loa-1", cmd("stop", item_id="bc-alarm"))
        assert (await seen.event(emergency, "finished"))["reason"] == "stopped"
        assert (await seen.ack(stop))["ok"] is True
        await seen.wait(lambda: seen.on("loa-1", "state")[-1].json()["playing"] is None)
        speaker = speakers["loa-1"]
        await speaker.wait_for(lambda s: s.plays[-1].outcome == "stopped")
        assert [(p.item_id, p.outcome) for p in speaker.plays] == [
            ("bc-normal", "preempted"),
            ("bc-alarm", "stopped"),
        ]
        assert seen.events(late) == []


async def test_equal_priority_replaces_and_emergency_is_never_busy(
    broker: PrivateBroker, site: str, media: str
) -> None:
    long = f"{media}/long.ogg"
    async with observing(broker, site) as seen, fleet(broker, site) as speakers:
        first = await seen.send("loa-1", play(long, priority="emergency", item="a"))
        await seen.event(first, "started")
        second = await seen.send("loa-1", play(long, priority="emergency", item="b"))
        assert (await seen.event(first, "finished"))["reason"] == "preempted"
        await seen.event(second, "started")
        stop = await seen.send("loa-1", cmd("stop"))  # no item_id: whatever plays
        assert (await seen.event(second, "finished"))["reason"] == "stopped"
        assert (await seen.ack(stop))["ok"] is True
        assert len(speakers["loa-1"].plays) == 2


async def test_set_volume_changes_state_and_default_play_volume(
    broker: PrivateBroker, site: str, media: str
) -> None:
    async with observing(broker, site) as seen, fleet(broker, site) as speakers:
        cmd_id = await seen.send("loa-1", cmd("set_volume", volume=35))
        assert (await seen.ack(cmd_id))["ok"] is True
        await seen.wait(lambda: seen.on("loa-1", "state")[-1].json()["volume"] == 35)
        speaker = speakers["loa-1"]
        assert speaker.volume == 35
        played = await seen.send("loa-1", play(f"{media}/tone.wav"))
        await seen.event(played, "finished")
        assert speaker.plays[0].volume == 35
        bad = await seen.send("loa-1", cmd("set_volume", volume=101))
        assert (await seen.ack(bad))["error"] == "bad_request"
        assert speaker.volume == 35


async def test_offline_fires_the_will_and_queued_command_plays_after_reconnect(
    broker: PrivateBroker, site: str, media: str
) -> None:
    async with observing(broker, site) as seen, fleet(broker, site) as speakers:
        speaker = speakers["loa-1"]
        await seen.wait(lambda: seen.status("loa-1") == b"online")
        await speaker.go_offline(2.0)
        assert not speaker.online
        # the speaker says nothing when its link dies: this `offline` is the broker's will
        await seen.wait(lambda: seen.status("loa-1") == b"offline")
        cmd_id = await seen.send("loa-1", play(f"{media}/tone.mp3"))
        await seen.event(cmd_id, "finished")
        assert [s.payload for s in seen.on("loa-1", "status")] == [b"online", b"offline", b"online"]
        assert (await seen.ack(cmd_id))["ok"] is True
        assert speaker.online
        assert speaker.connects == 2
        assert len(speaker.plays) == 1


async def test_events_while_offline_are_sent_after_reconnect(
    broker: PrivateBroker, site: str, media: str
) -> None:
    async with observing(broker, site) as seen, fleet(broker, site, speed=1.0) as speakers:
        speaker = speakers["loa-1"]
        cmd_id = await seen.send("loa-1", play(f"{media}/tone.mp3"))  # plays 1.5 s
        await seen.event(cmd_id, "started")
        await speaker.go_offline(2.5)
        await speaker.wait_for(lambda s: s.plays[0].outcome == "completed")
        assert not speaker.online  # it finished while away
        assert (await seen.event(cmd_id, "finished"))["reason"] == "completed"
        statuses = seen.on("loa-1", "status")
        assert [s.payload for s in statuses] == [b"online", b"offline", b"online"]
        finished = [s for s in seen.on("loa-1", "event") if s.json()["event"] == "finished"]
        # QoS 1: `started` may come twice (its PUBACK lost with the link); `finished` is
        # sent once the speaker is back
        assert seen.seen.index(finished[0]) > seen.seen.index(statuses[-1])


async def test_speakers_come_back_after_a_broker_restart(
    own_broker: PrivateBroker, site: str
) -> None:
    specs = [SimSpeakerSpec(f"loa-{n}", zone="z") for n in range(3)]
    async with fleet(own_broker, site, *specs) as speakers:
        own_broker.stop_blocking()
        for speaker in speakers:
            await speaker.wait_for(lambda s: not s.online)
        own_broker.start_blocking()
        for speaker in speakers:
            await speaker.wait_for(lambda s: s.online, timeout=15)
        assert [s.connects for s in speakers] == [2, 2, 2]
        async with observing(own_broker, site) as seen:
            ping = await seen.send("loa-0", cmd("ping"))
            assert (await seen.ack(ping))["ok"] is True
            await seen.wait(lambda: all(seen.status(s.spec.id) == b"online" for s in speakers))


async def test_held_acks_are_published_on_release(
    broker: PrivateBroker, site: str, media: str
) -> None:
    spec = SimSpeakerSpec("loa-1", zone="z", faults=SpeakerFaults(hold_acks=True))
    async with observing(broker, site) as seen, fleet(broker, site, spec) as speakers:
        ping = await seen.send("loa-1", cmd("ping"))
        command = play(f"{media}/tone.mp3")
        played = await seen.send("loa-1", command)
        await seen.event(played, "finished")  # executed all the same
        await seen.send("loa-1", command)  # loacam re-sends for want of an ack
        speaker = speakers["loa-1"]
        await speaker.wait_for(lambda s: s.duplicates == 1)
        assert seen.acks(ping) == seen.acks(played) == []
        assert speaker.acks_sent == 0
        speaker.set_faults(SpeakerFaults())
        await seen.wait(lambda: len(seen.acks(played)) == 2)
        acks = [s.json()["cmd_id"] for s in seen.on("loa-1", "ack")]
        assert acks == [ping, played, played]
        await speaker.wait_for(lambda s: s.acks_sent == 3)
        assert len(speaker.plays) == 1


async def test_mqtt_311_speaker_plays_and_answers_on_the_ack_topic(
    broker: PrivateBroker, site: str, media: str
) -> None:
    async with (
        observing(broker, site, v5=False) as seen,
        fleet(broker, site, protocol="3.1.1") as speakers,
    ):
        cmd_id = await seen.send("loa-1", play(f"{media}/tone.ogg"))
        assert (await seen.event(cmd_id, "finished"))["reason"] == "completed"
        assert seen.on("loa-1", "ack")[0].json()["cmd_id"] == cmd_id
        await seen.wait(lambda: seen.status("loa-1") == b"online")
        await speakers["loa-1"].go_offline(0.5)
        await seen.wait(lambda: seen.status("loa-1") == b"offline")
        queued = await seen.send("loa-1", cmd("ping"))
        assert (await seen.ack(queued))["ok"] is True


async def test_mqtt5_ack_goes_to_the_response_topic_with_correlation_data(
    broker: PrivateBroker, site: str
) -> None:
    reply_topic = f"replies/{site}"
    async with observing(broker, site, reply_topic) as seen, fleet(broker, site):
        command = cmd("ping")
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.ResponseTopic = reply_topic
        properties.CorrelationData = command["cmd_id"].encode()
        await seen.send("loa-1", command, properties=properties)
        reply = await seen.wait(lambda: [s for s in seen.seen if s.topic == reply_topic])
        assert reply[0].json()["cmd_id"] == command["cmd_id"]
        assert reply[0].correlation == command["cmd_id"].encode()


async def test_bad_input_is_ignored_or_refused_without_harm(
    broker: PrivateBroker, site: str
) -> None:
    async with observing(broker, site) as seen, fleet(broker, site) as speakers:
        topic = f"loacam/{site}/spk/loa-1/cmd"
        junk = [b"\xff\xfe not json", b"[1, 2]", b'{"op": "ping"}', b"[" * 100_000]
        junk.append(json.dumps(cmd("ping") | {"cmd_id": "\ud800"}).encode())  # a lone surrogate
        for payload in junk:
            await seen.client.publish(topic, payload, qos=1)
        refusals = {
            await seen.send("loa-1", play("http://[::1/a.mp3")): "bad_request",
            await seen.send("loa-1", play("http://h/a.mp3", item="\ud800")): "bad_request",
            await seen.send("loa-1", cmd("ping") | {"cmd_id": "ABC"}): "bad_request",
            await seen.send("loa-1", cmd("dance")): "unsupported",
            await seen.send(
                "loa-1", cmd("play", priority="normal", volume=None, item_id="x")
            ): "bad_request",
            await seen.send(
                "loa-1",
                cmd("play", url="http://h/a.mp3", priority="loud", volume=None, item_id="x"),
            ): "bad_request",
            await seen.send("loa-1", cmd("ping") | {"expires_at": "tomorrow"}): "bad_request",
        }
        for cmd_id, error in refusals.items():
            ack = await seen.ack(cmd_id)
            assert (ack["ok"], ack["error"]) == (False, error)
        bad_port = await seen.send("loa-1", play("http://127.0.0.1:99999/a.mp3"))
        assert (await seen.event(bad_port, "failed"))["error"] == "download"
        ping = await seen.send("loa-1", cmd("ping"))
        assert (await seen.ack(ping))["ok"] is True
        speaker = speakers["loa-1"]
        assert (speaker.online, speaker.connects) == (True, 1)
        assert [p.outcome for p in speaker.plays] == ["failed:download"]
        assert len(speaker.handled) == len(refusals) + 2


async def test_reboot_reconnects_and_remembers_handled_commands(
    broker: PrivateBroker, site: str
) -> None:
    async with observing(broker, site) as seen, fleet(broker, site) as speakers:
        reboot = cmd("reboot")
        await seen.send("loa-1", reboot)
        assert (await seen.ack(reboot["cmd_id"]))["ok"] is True
        await seen.wait(
            lambda: (
                [s.payload for s in seen.on("loa-1", "status")]
                == [b"online", b"offline", b"online"]
            )
        )
        speaker = speakers["loa-1"]
        await speaker.wait_for(lambda s: s.connects == 2)
        await seen.send("loa-1", reboot)  # redelivered: answered, not rebooted again
        await speaker.wait_for(lambda s: s.duplicates == 1)
        await seen.wait(lambda: len(seen.acks(reboot["cmd_id"])) == 2)
        assert speaker.connects == 2


async def test_prefetch_is_acked_and_does_not_play(
    broker: PrivateBroker, site: str, media: str
) -> None:
    async with observing(broker, site) as seen, fleet(broker, site) as speakers:
        cmd_id = await seen.send("loa-1", cmd("prefetch", url=f"{media}/tone.mp3", item_id="bc-1"))
        assert (await seen.ack(cmd_id))["ok"] is True
        played = await seen.send("loa-1", play(f"{media}/tone.mp3"))
        await seen.event(played, "finished")
        assert seen.events(cmd_id) == []
        assert len(speakers["loa-1"].plays) == 1


def test_parse_command_refuses_with_the_protocol_words() -> None:
    now = datetime.now(UTC)
    good = cmd("play", url="https://x/a.mp3", priority="normal", volume=50, item_id="i")
    assert parse_command(good, now).volume == 50
    cases = {
        "bad_request": [good | {"volume": True}, good | {"issued_at": "2026-01-01T00:00:00"}, {}],
        "expired": [good | {"expires_at": _iso(now - timedelta(seconds=1))}],
        "unsupported": [good | {"op": "dance"}],
    }
    for error, commands in cases.items():
        for command in commands:
            with pytest.raises(CommandRefusedError) as refused:
                parse_command(command, now)
            assert refused.value.error == error


def test_codec_is_read_from_the_url_path() -> None:
    assert codec_of("https://loacam/media/Tone.MP3?exp=1&sig=a.b") == "mp3"
    assert codec_of("https://loacam/media/tone") is None
    assert codec_of("https://loacam.example/") is None


# -- Rhasspy Hermes ---------------------------------------------------------------------


@asynccontextmanager
async def hermes(
    broker: PrivateBroker, site_id: str, **kwargs: Any
) -> AsyncIterator[SimulatedHermesSpeaker]:
    async with SimulatedHermesSpeaker(
        host="127.0.0.1", port=broker.port, site_id=site_id, speed=SPEED, **kwargs
    ) as speaker:
        yield speaker


async def test_hermes_plays_wav_bytes_and_says_play_finished(
    broker: PrivateBroker, site: str, media_dir: Path
) -> None:
    prefix = f"hermes/audioServer/{site}"
    async with (
        observing(broker, site, f"{prefix}/#") as seen,
        hermes(broker, site, announce_every_s=0.1) as speaker,
    ):
        frames = await seen.wait(
            lambda: [s for s in seen.seen if s.topic == f"{prefix}/audioFrame"]
        )
        with wave.open(io.BytesIO(frames[0].payload)) as frame:
            assert frame.getnframes() > 0
        wav = (media_dir / "hermes.wav").read_bytes()
        await seen.client.publish(f"{prefix}/playBytes/not-a-wav", b"RIFF junk", qos=1)
        await seen.client.publish(f"{prefix}/playBytes/req-1", wav, qos=1)
        await seen.client.publish(f"{prefix}/playBytes/req-2", wav, qos=1)

        def finished() -> list[Any]:
            return [s.json() for s in seen.seen if s.topic == f"{prefix}/playFinished"]

        await seen.wait(lambda: len(finished()) == 2)
        await speaker.wait_for(lambda s: s.finished == ["req-1", "req-2"])
        assert finished() == [{"id": "req-1", "siteId": site}, {"id": "req-2", "siteId": site}]
        first = speaker.plays[0]
        assert (first.request_id, first.sample_rate, first.channels, first.sample_width) == (
            "req-1",
            22050,
            1,
            2,
        )
        assert first.frames == 33075
        assert abs(first.duration_s - TONE_S) < 0.001
        assert [p.request_id for p in speaker.plays] == ["req-1", "req-2"]


async def test_hermes_obeys_set_volume_for_its_site_only(broker: PrivateBroker, site: str) -> None:
    async with (
        observing(broker, site) as seen,
        hermes(broker, site, announce_every_s=None) as speaker,
    ):
        for site_id, volume in ((f"{site}-other", 0.9), (site, 0.4)):
            payload = json.dumps({"volume": volume, "siteId": site_id}).encode()
            await seen.client.publish("rhasspy/audioServer/setVolume", payload, qos=1)
        await speaker.wait_for(lambda s: s.volume is not None)
        assert speaker.volume == 0.4
        assert speaker.announcements == 0
