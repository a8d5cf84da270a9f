"""Probes behind the dispatch benchmark's analysis: where a broadcast's loop time goes.

    .venv/bin/python bench/dispatch_probe.py publish  # loop CPU of 1,000 publishes, per layer
    .venv/bin/python bench/dispatch_probe.py ingest   # MqttLink's intake of a burst of acks
    .venv/bin/python bench/dispatch_probe.py media    # daemon CPU per download of the tone

Each runs against a private mosquitto. `ingest` also shows what reading every waiting
packet and every queued message per wake-up would gain, by patching aiomqtt and
MqttLink in this process only (nothing in the daemon's tree changes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import aiomqtt
import httpx
import paho.mqtt.client as paho
from dispatch_daemon import SpeakerDaemon
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from procstat import cpu_times, threads

import drivers.mqtt as link_module
from audio.tone import tone_wav
from daemon.media import MediaSigner, MediaStore
from drivers.mqtt import MqttLink, MqttMessage, MqttSettings
from drivers.mqtt_packets import incoming_message
from drivers.sim.broker import PrivateBroker

N = 1000
BURST = 5000
# A `play` command as NativeDriver encodes it, with a signed URL: ~330 bytes.
PAYLOAD = (
    b'{"cmd_id": "' + b"a" * 32 + b'", "op": "play", "issued_at": "2026-11-27T05:29:58Z", '
    b'"expires_at": "2026-11-27T05:34:58Z", "url": "http://127.0.0.1:8080/media/'
    + b"0" * 32
    + b".wav?exp=1795800000&sig="
    + b"b" * 64
    + b'", "priority": "normal", "volume": null, "item_id": "test-tone"}'
)
ACK = b'{"cmd_id": "' + b"a" * 32 + b'", "ok": true, "error": null, "ts": "2026-11-27T05:29:58Z"}'


def _properties(i: int) -> Properties:
    """What MqttLink attaches to each command over MQTT 5."""
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    properties.MessageExpiryInterval = 300
    properties.ResponseTopic = f"loacam/p/spk/s{i}/ack"
    properties.CorrelationData = uuid.uuid4().hex.encode()
    return properties


async def _timed(label: str, work: Callable[[], Awaitable[None]]) -> None:
    wall, cpu = time.perf_counter(), time.thread_time()
    await work()
    print(
        f"  {label:<62} loop CPU {1000 * (time.thread_time() - cpu):4.0f} ms, "
        f"wall {1000 * (time.perf_counter() - wall):4.0f} ms"
    )


async def probe_publish(port: int) -> None:
    """1,000 QoS 1 publishes until every PUBACK: raw paho, aiomqtt, MqttLink."""
    for protocol in ("5", "3.1.1"):
        print(f"MQTT {protocol}, {N} publishes of a {len(PAYLOAD)}-byte command:")
        await _publish_via_aiomqtt(port, v5=protocol == "5")
        await _publish_via_link(port, protocol)


async def _publish_via_aiomqtt(port: int, *, v5: bool) -> None:
    version = aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311
    async with aiomqtt.Client("127.0.0.1", port, protocol=version, max_inflight_messages=N) as c:
        c.pending_calls_threshold = N  # a burst is expected here
        for with_properties in (True, False) if v5 else (False,):
            extra = " with MessageExpiry/ResponseTopic/Correlation" if with_properties else ""
            work = _raw(c, with_properties=with_properties)
            await _timed(f"paho publish(), then the PUBACKs{extra}", work)
        slots = asyncio.Semaphore(256)  # the dispatcher's MAX_PARALLEL_SENDS

        async def via_aiomqtt(i: int) -> None:
            async with slots:
                props = _properties(i) if v5 else None
                await c.publish(f"t/{i}", PAYLOAD, qos=1, properties=props, timeout=math.inf)

        await _timed("aiomqtt Client.publish, 256 at a time", _all(via_aiomqtt))


def _raw(client: aiomqtt.Client, *, with_properties: bool) -> Callable[[], Awaitable[None]]:
    async def work() -> None:
        mqttc = client._client  # paho's client under aiomqtt: the layer below it
        done = asyncio.get_running_loop().create_future()
        count, handed_on = [0], mqttc.on_publish

        def on_publish(*_: object) -> None:
            count[0] += 1
            if count[0] == N:
                done.set_result(None)

        mqttc.on_publish = on_publish
        for i in range(N):
            props = _properties(i) if with_properties else None
            mqttc.publish(f"t/{i}", PAYLOAD, qos=1, retain=False, properties=props)
        await done
        mqttc.on_publish = handed_on

    return work


def _all(one: Callable[[int], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    async def work() -> None:
        await asyncio.gather(*(one(i) for i in range(N)))

    return work


async def _publish_via_link(port: int, protocol: str) -> None:
    settings = MqttSettings("127.0.0.1", port, f"probe-{protocol}", "p/status", protocol=protocol)  # type: ignore[arg-type]
    link, stop = MqttLink(settings), asyncio.Event()
    running = asyncio.create_task(link.run(stop))
    await link.wait_connected()
    slots = asyncio.Semaphore(256)

    async def via_link(i: int) -> None:
        async with slots:
            await link.publish(
                f"t/{i}",
                PAYLOAD,
                expiry_s=300,
                response_topic=f"loacam/p/spk/s{i}/ack",
                correlation=uuid.uuid4().hex.encode(),
            )

    await _timed("drivers.mqtt MqttLink.publish, 256 at a time", _all(via_link))
    stop.set()
    await running


async def probe_ingest(port: int, busy_s: float, *, patched: bool) -> None:
    """A burst of BURST acks from mosquitto_pub into MqttLink's handler."""
    link, stop = MqttLink(MqttSettings("127.0.0.1", port, "probe-in", "p/status")), asyncio.Event()
    arrived: list[float] = []
    all_in = asyncio.Event()

    async def handler(_: MqttMessage) -> None:
        arrived.append(time.monotonic())
        if len(arrived) == BURST:
            all_in.set()

    link.subscribe("loacam/p/spk/+/ack", handler)
    running = asyncio.create_task(link.run(stop))
    await link.wait_connected()
    busy = asyncio.create_task(_busy_loop(busy_s, stop)) if busy_s else None
    started = time.monotonic()
    publisher = await asyncio.create_subprocess_exec(
        *("mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-V", "5"),
        *("-t", "loacam/p/spk/s1/ack", "-l"),
        stdin=asyncio.subprocess.PIPE,
    )
    await publisher.communicate(b"\n".join([ACK] * BURST) + b"\n")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_in.wait(), 120)
    took = (arrived[-1] if arrived else time.monotonic()) - started
    how = "every waiting packet and message" if patched else "as is (aiomqtt + paho)"
    print(
        f"  loop busy {1000 * busy_s:3.1f} ms per turn, {how:<32}: {len(arrived)} of {BURST} "
        f"in {took:5.2f} s = {len(arrived) / took:5.0f} messages/s"
    )
    stop.set()
    await running
    if busy is not None:
        await busy


async def _busy_loop(busy_s: float, stop: asyncio.Event) -> None:
    """Stands for the rest of a dispatch's work (downloads, publishes) in each loop turn."""
    while not stop.is_set():
        time.sleep(busy_s)  # noqa: ASYNC251 - blocking on purpose: it is the load
        await asyncio.sleep(0)


def patch_reading() -> None:
    """In this process only: aiomqtt reads every packet the socket has per wake-up (it
    reads one, paho's loop_read() allowing one when nothing is in flight), and MqttLink
    takes every queued message per wake-up (aiomqtt's iterator costs a task each)."""

    def on_socket_open(self: aiomqtt.Client, client: paho.Client, _: object, sock: object) -> None:
        def read_all() -> None:
            for _ in range(10_000):
                rc = client._packet_read()
                if rc == paho.MQTT_ERR_AGAIN:
                    return
                if rc > 0:
                    client._loop_rc_handle(rc)
                    return

        def start_misc() -> None:
            self._misc_task = self._loop.create_task(self._misc_loop())

        self._loop.call_soon_threadsafe(self._loop.add_reader, sock.fileno(), read_all)  # type: ignore[attr-defined]
        self._loop.call_soon_threadsafe(start_misc)

    async def dispatch(self: MqttLink, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            batch = [message]
            while not client._queue.empty():
                batch.append(client._queue.get_nowait())
            for each in batch:
                incoming = incoming_message(each)
                for topic_filter, handlers in list(self._handlers.items()):
                    if each.topic.matches(topic_filter):
                        for handler in list(handlers):
                            await link_module._call_handler(handler, incoming)

    aiomqtt.Client._on_socket_open = on_socket_open  # type: ignore[method-assign]
    MqttLink._dispatch = dispatch  # type: ignore[method-assign]


async def probe_media(port: int, workdir: Path, concurrent: int) -> None:
    """N downloads of the test tone from `loacam run`, `concurrent` at a time."""
    daemon = SpeakerDaemon(workdir, port, [])
    daemon.start_blocking()
    try:
        async with httpx.AsyncClient(base_url=daemon.base, headers=daemon.headers()) as api:
            await daemon.wait_ready(api, 60)
        tone = tone_wav(3.0)  # fleet.test_tone_s's default; the daemon stores it at start
        name = MediaStore(workdir).put_blocking(tone, "wav")  # only for its content name
        signer = MediaSigner(daemon.secret.encode(), daemon.base)
        url = signer.url(name, datetime.now(UTC) + timedelta(hours=1))
        before = cpu_times(daemon.pid) or (0.0, 0.0)
        wall = time.perf_counter()
        connector = aiohttp.TCPConnector(limit=concurrent)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(_: int) -> None:
                async with session.get(url) as response:
                    response.raise_for_status()
                    await response.read()

            await asyncio.gather(*(one(i) for i in range(N)))
        used = sum(cpu_times(daemon.pid) or before) - sum(before)
        print(
            f"  {N} downloads of {len(tone) / 1024:.0f} KB, {concurrent} at a time: "
            f"{time.perf_counter() - wall:.2f} s; daemon CPU {used:.2f} s = "
            f"{1000 * used / N:.2f} ms per download; daemon threads {threads(daemon.pid)}"
        )
    finally:
        daemon.stop_blocking()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("probe", choices=("publish", "ingest", "media"))
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="loacam-probe-") as tmp,
        PrivateBroker(Path(tmp) / "mosquitto", max_queued_messages=0) as broker,
    ):
        if args.probe == "publish":
            asyncio.run(probe_publish(broker.port))
        elif args.probe == "media":
            for concurrent in (100, 400):
                asyncio.run(
                    probe_media(broker.port, Path(tmp) / f"loacam-{concurrent}", concurrent)
                )
        else:
            print(f"MqttLink (MQTT 5) taking in {BURST} QoS 1 acks:")
            for patched in (False, True):
                if patched:
                    patch_reading()
                for busy_s in (0.0, 0.001):
                    asyncio.run(probe_ingest(broker.port, busy_s, patched=patched))
    return 0


if __name__ == "__main__":
    sys.exit(main())
