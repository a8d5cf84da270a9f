"""Relaying a radio station's stream: checked before it airs, played live, ended on time.

The station is tests/stream_server.py, a real endless MP3 stream on loopback; the
check is the real ffprobe; the speakers are the simulator, each decoding the stream
with its own ffmpeg (so the station sees them tune in and hang up); the daemon runs
in this process on a real private mosquitto.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from daemon.auth import Role
from daemon.broadcasts.dispatch import BroadcastDispatch, source_of
from daemon.broadcasts.engine import DispatchError
from daemon.broadcasts.relay import (
    RelayError,
    StreamInfo,
    check_stream,
    display_url,
    relay_end,
)
from daemon.broadcasts.relay_stop import RelayStopper, stop_source_of
from daemon.broadcasts.store import (
    BroadcastRecord,
    ExecState,
    ExecutionRecord,
    Kind,
    Targets,
    executions,
    insert_broadcast,
)
from daemon.schedule.rules import Rules
from daemon.speakers.outbox import item_commands, recent_commands
from daemon.state import AppState
from drivers.mqtt import MqttLink, MqttMessage, MqttSettings
from drivers.sim.broker import PrivateBroker
from drivers.sim.speaker import SimSpeakerSpec, SpeakerFaults, SpeakerFleet
from drivers.speaker.hermes import HermesDriver
from drivers.speaker.model import Command, Op, SpeakerAddress, UnsupportedOperationError
from drivers.speaker.native import NativeDriver, encode_command
from tests.speaker_rig import bearer, declared, running_daemon, speaker_config, until
from tests.stream_server import StreamServer, make_stream_mp3
from tests.support import refusing_port
from tests.test_sim_speaker import cmd, observing

SECRET = "tok3n-S3CRET"
LIVE = f"/live.mp3?token={SECRET}"
MISBEHAVING = SpeakerFaults(ignore_ends_at=True)  # plays on until loacam says stop
CMD = "9d1c7c7e0a8d4f2f9a3c1b2d4e5f6a7b"


@pytest.fixture(scope="module")
def station_mp3(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_stream_mp3(tmp_path_factory.mktemp("station"))


@pytest.fixture
async def radio(station_mp3: bytes) -> AsyncIterator[StreamServer]:
    async with StreamServer(station_mp3) as server:
        yield server


def children(name: str) -> list[int]:
    """Processes called `name` whose parent is this test process (zombies included)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
        except OSError:  # it exited while we looked
            continue
        if fields.get("PPid") == str(os.getpid()) and fields.get("Name") == name:
            found.append(int(status.parent.name))
    return found


async def no_children(*names: str) -> bool:
    return not any(children(name) for name in names)


# -- which URLs, and what is shown of them ---------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("file:///etc/passwd", "Chỉ tiếp sóng được địa chỉ http:// hoặc https://"),
        ("rtsp://192.168.1.10/radio", "Chỉ tiếp sóng được địa chỉ http:// hoặc https://"),
        ("ftp://radio.example.vn/kenh1.mp3", "Chỉ tiếp sóng được địa chỉ http:// hoặc https://"),
        ("/relative/kenh1.mp3", "Chỉ tiếp sóng được địa chỉ http:// hoặc https://"),
        ("http://admin:matkhau@radio.example.vn/kenh1.mp3", "không được chứa tên đăng nhập"),
        ("https://:matkhau@radio.example.vn/kenh1.mp3", "không được chứa tên đăng nhập"),
        ("http:///kenh1.mp3", "thiếu tên máy chủ"),
        ("http://radio.example.vn/kenh 1.mp3", "không hợp lệ"),
        ("http://[::1/kenh1.mp3", "không hợp lệ"),
        ("http://radio.example.vn/" + "a" * 2000, "không hợp lệ"),
    ],
)
async def test_only_plain_http_and_https_urls_are_relayed(url: str, says: str) -> None:
    with pytest.raises(RelayError, match=says) as refused:
        await check_stream(url)
    assert "matkhau" not in str(refused.value)
    assert not children("ffprobe")  # refused before anything was opened


def test_only_scheme_host_and_path_of_a_url_are_shown() -> None:
    assert display_url(f"https://radio.example.vn:8443/kenh1.mp3?token={SECRET}#x") == (
        "https://radio.example.vn:8443/kenh1.mp3"
    )
    assert display_url("http://[::1]:8000/live") == "http://[::1]:8000/live"


def test_a_relay_ends_its_length_after_its_slot_even_when_sent_late() -> None:
    slot = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
    broadcast = BroadcastRecord(
        "b1", "Thời sự", Kind.URL, Targets(all=True), "normal", slot, "radio", slot, slot,
        url="http://radio.example.vn/kenh1.mp3", duration_s=1800,
    )  # fmt: skip
    late = ExecutionRecord(
        7, "b1", slot, ExecState.DISPATCHED, slot, fired_at=slot + timedelta(minutes=4)
    )
    assert relay_end(broadcast, late) == slot + timedelta(minutes=30)


def test_a_live_play_carries_the_station_url_live_and_its_end() -> None:
    issued = datetime(2026, 11, 27, 5, 59, 58, tzinfo=UTC)
    ends = datetime(2026, 11, 27, 6, 30, tzinfo=UTC)
    live = Command(
        CMD, Op.PLAY, issued, issued + timedelta(minutes=5), url=f"https://radio.example.vn{LIVE}",
        item_id="42", live=True, ends_at=ends,
    )  # fmt: skip
    body = json.loads(encode_command(live))
    assert body["url"] == f"https://radio.example.vn{LIVE}"
    assert (body["live"], body["ends_at"], body["item_id"]) == (True, "2026-11-27T06:30:00Z", "42")
    # A file's play keeps the keys speakers from before relays know, and no others.
    plain = json.loads(encode_command(replace(live, live=False, ends_at=None)))
    assert "live" not in plain
    assert "ends_at" not in plain


async def test_no_live_play_goes_to_a_speaker_that_announced_no_stream_capability() -> None:
    link = MqttLink(MqttSettings("127.0.0.1", 1, "unit", "loacam/x/daemon/status"))
    native = NativeDriver(link, "xa", {})
    info = b'{"protocol": 1, "capabilities": ["volume", "prefetch"]}'
    assert native.parse(MqttMessage("loacam/xa/spk/loa-old/info", info, retain=True))
    now = datetime.now(UTC)
    live = Command(CMD, Op.PLAY, now, now + timedelta(minutes=5), url="http://r/x", live=True)
    with pytest.raises(UnsupportedOperationError, match="không tiếp sóng được"):
        await native.send(SpeakerAddress("loa-old", "loa-old"), live)
    with pytest.raises(UnsupportedOperationError, match="Hermes"):
        await HermesDriver(link, "xa", {"bep": "loa-bep"}).send(
            SpeakerAddress("loa-bep", "bep"), live
        )


# -- the check against a real station ---------------------------------------------------


async def test_a_live_mp3_stream_passes_the_check_which_then_hangs_up(
    radio: StreamServer,
) -> None:
    info = await check_stream(radio.url(LIVE))
    assert info == StreamInfo(codec="mp3", sample_rate=44100, channels=1)
    assert radio.tuned_in == 1
    await radio.wait_for(lambda r: r.listeners == 0)
    await until(lambda: no_children("ffprobe"))


@pytest.fixture
def hls_dir(tmp_path: Path) -> Path:
    """A station's HLS: a playlist of 2 s AAC segments in MPEG-TS."""
    playlist = tmp_path / "hls"
    playlist.mkdir()
    subprocess.run(
        [
            "ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=duration=6",
            "-c:a", "aac", "-b:a", "64k", "-f", "hls", "-hls_time", "2", "-hls_list_size", "0",
            str(playlist / "index.m3u8"),
        ],
        check=True,
    )  # fmt: skip
    return playlist


async def test_an_hls_stream_passes_the_check(hls_dir: Path) -> None:
    app = web.Application()
    app.router.add_static("/hls/", hls_dir)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        info = await check_stream(f"http://127.0.0.1:{port}/hls/index.m3u8")
    finally:
        await runner.cleanup()
    assert (info.codec, info.channels) == ("aac", 1)


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/missing", "Không mở được luồng tiếp sóng: máy chủ báo lỗi 404"),
        ("/page.html", "Luồng không có âm thanh giải mã được"),
        ("/notes.mp3", "Luồng không có âm thanh giải mã được"),
        ("/silent", "Không mở được luồng tiếp sóng: máy chủ không trả lời trong 3 giây"),
    ],
)
async def test_what_is_no_stream_fails_the_check_in_plain_words(
    radio: StreamServer, path: str, says: str
) -> None:
    with pytest.raises(RelayError) as refused:
        await check_stream(radio.url(f"{path}?token={SECRET}"), timeout_s=3)
    assert str(refused.value).startswith(says), refused.value
    assert SECRET not in str(refused.value)
    # A server that never answers: ffprobe was killed, not left behind.
    await until(lambda: no_children("ffprobe"))


async def test_a_refused_connection_fails_the_check_as_unreachable() -> None:
    with refusing_port() as port, pytest.raises(RelayError) as refused:
        await check_stream(f"http://127.0.0.1:{port}{LIVE}")
    message = str(refused.value)
    assert message.startswith("Không mở được luồng tiếp sóng: máy chủ không trả lời (")
    assert "Connection refused" in message
    assert SECRET not in message


# -- the simulated speaker's side of the protocol ----------------------------------------


def live_play(url: str, ends_in_s: float, **keys: Any) -> dict[str, Any]:
    ends_at = datetime.now(UTC) + timedelta(seconds=ends_in_s)
    return cmd(
        "play", expires_in_s=ends_in_s, url=url, priority="normal", volume=None,
        item_id="42", live=True, ends_at=ends_at.strftime("%Y-%m-%dT%H:%M:%SZ"), **keys,
    )  # fmt: skip


async def test_a_speaker_plays_a_live_stream_and_stops_itself_at_ends_at(
    broker: PrivateBroker, site: str, radio: StreamServer
) -> None:
    spec = SimSpeakerSpec("loa-1", zone="thon-1")
    async with (
        observing(broker, site) as seen,
        SpeakerFleet(host="127.0.0.1", port=broker.port, site=site, speakers=[spec]) as fleet,
    ):
        await seen.wait(lambda: seen.on("loa-1", "info"))
        assert "stream" in seen.on("loa-1", "info")[-1].json()["capabilities"]
        cmd_id = await seen.send("loa-1", live_play(radio.url(LIVE), ends_in_s=4))
        assert (await seen.ack(cmd_id))["ok"] is True
        started = await seen.event(cmd_id, "started")
        assert "duration_s" not in started  # a stream has no length
        assert radio.listeners == 1
        finished = await seen.event(cmd_id, "finished")
        assert finished["reason"] == "completed"
        await radio.wait_for(lambda r: r.listeners == 0)
        play = fleet["loa-1"].plays[0]
        assert (play.live, play.outcome, play.url) == (True, "completed", radio.url(LIVE))
    await until(lambda: no_children("ffmpeg"))


async def test_a_speaker_without_the_stream_capability_refuses_a_live_play(
    broker: PrivateBroker, site: str, radio: StreamServer
) -> None:
    specs = [SimSpeakerSpec("loa-1", zone="thon-1", streams=False)]
    async with (
        observing(broker, site) as seen,
        SpeakerFleet(host="127.0.0.1", port=broker.port, site=site, speakers=specs) as fleet,
    ):
        await seen.wait(lambda: seen.on("loa-1", "info"))
        assert "stream" not in seen.on("loa-1", "info")[-1].json()["capabilities"]
        refused = await seen.send("loa-1", live_play(radio.url(LIVE), ends_in_s=30))
        assert (await seen.ack(refused))["error"] == "unsupported"
        no_end = live_play(radio.url(LIVE), ends_in_s=30)
        del no_end["ends_at"]
        malformed = await seen.send("loa-1", no_end)
        assert (await seen.ack(malformed))["error"] == "bad_request"
        assert fleet["loa-1"].plays == []
    assert radio.tuned_in == 0


# -- end to end: the daemon relays, the speakers play, loacam ends it --------------------


def relay_config(
    tmp_path: Path, port: int, site: str, specs: Sequence[SimSpeakerSpec]
) -> dict[str, Any]:
    hermes = {"id": "hermes-1", "name": "Loa Hermes", "zone": "thon-2", "driver": "hermes"}
    data = speaker_config(tmp_path, port, site=site, speakers=[*declared(specs), hermes])
    # Tests run at any hour: quiet hours would hold a normal relay back at night.
    data["broadcasts"] = {"quiet_morning": None, "quiet_evening": None}
    return data


async def air_relay(
    state: AppState, url: str, *, duration_s: int, zones: tuple[str, ...]
) -> BroadcastRecord:
    """A relay starting now, written as the API writes one; the engine airs it."""
    now = datetime.now(UTC)
    record = BroadcastRecord(
        uuid.uuid4().hex, "Tiếp sóng Đài tỉnh", Kind.URL, Targets(zones=zones), "normal",
        now, "radio", now, now, url=url, duration_s=duration_s,
    )  # fmt: skip
    await insert_broadcast(state.store, record)
    state.broadcasts.wake()
    return record


async def aired(state: AppState, broadcast_id: str) -> ExecutionRecord | None:
    runs = await executions(state.store, broadcast_id)
    return runs[0] if runs and runs[0].state is not ExecState.PENDING else None


async def deliveries(state: AppState, broadcast_id: str) -> dict[str, tuple[str, str | None]]:
    runs = await executions(state.store, broadcast_id)
    if not runs:
        return {}
    stored = await item_commands(state.store, source_of(broadcast_id), str(runs[0].id))
    return {
        c.speaker_id: (c.state.value, c.error) for c in state.speakers.dispatcher.latest(stored)
    }


async def online(state: AppState, count: int) -> bool:
    return len(state.speakers.registry.speakers(status="online")) == count


async def stops_of(state: AppState, broadcast_id: str) -> list[tuple[str, str, str | None]]:
    sent = await recent_commands(state.store, source=stop_source_of(broadcast_id), limit=100)
    return sorted((c.speaker_id, c.op.value, c.item_id) for c in sent)


async def test_a_relay_plays_on_stream_speakers_until_loacam_stops_it_at_its_end(
    broker: PrivateBroker,
    tmp_path: Path,
    site: str,
    radio: StreamServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    specs = [
        SimSpeakerSpec("loa-1", zone="thon-1", faults=MISBEHAVING),
        SimSpeakerSpec("loa-2", zone="thon-2", faults=MISBEHAVING),
        SimSpeakerSpec("loa-3", zone="thon-1", streams=False),
    ]
    data = relay_config(tmp_path, broker.port, site, specs)
    async with (
        running_daemon(data) as (state, _api),
        SpeakerFleet(host="127.0.0.1", port=broker.port, site=site, speakers=specs) as fleet,
    ):
        await until(lambda: online(state, len(specs)))
        relay = await air_relay(state, radio.url(LIVE), duration_s=8, zones=("thon-1", "thon-2"))
        await radio.wait_for(lambda r: r.listeners == 2)
        await until(
            lambda: _equal(
                deliveries(state, relay.id),
                {
                    "loa-1": ("started", None),
                    "loa-2": ("started", None),
                    "loa-3": ("failed", "unsupported"),
                    "hermes-1": ("failed", "unsupported"),
                },
            )
        )
        # The speakers ignore ends_at: what ends it is loacam's stop.
        await radio.wait_for(lambda r: r.listeners == 0)
        await until(
            lambda: _equal(
                deliveries(state, relay.id),
                {
                    "loa-1": ("finished", "stopped"),
                    "loa-2": ("finished", "stopped"),
                    "loa-3": ("failed", "unsupported"),
                    "hermes-1": ("failed", "unsupported"),
                },
            )
        )
        run = await aired(state, relay.id)
        assert run is not None
        assert run.state is ExecState.DISPATCHED
        assert run.stopped_at is not None
        assert run.stopped_at >= relay_end(relay, run)
        assert await stops_of(state, relay.id) == [
            ("loa-1", "stop", str(run.id)),
            ("loa-2", "stop", str(run.id)),
        ]
        for speaker_id in ("loa-1", "loa-2"):
            plays = fleet[speaker_id].plays
            assert [(p.live, p.outcome) for p in plays] == [(True, "stopped")]
            assert plays[0].url == radio.url(LIVE)  # passed through, token and all
        assert fleet["loa-3"].plays == []
        # The check at air time, then the two speakers; the token reached the station.
        assert radio.tuned_in == 3
        assert set(radio.requests) == {LIVE}
    await until(lambda: no_children("ffmpeg", "ffprobe"))
    assert SECRET not in caplog.text


async def _equal(got: Any, wanted: Any) -> bool:
    return bool(await got == wanted)


async def test_a_station_off_air_at_air_time_fails_the_air_time_with_the_reason(
    broker: PrivateBroker, tmp_path: Path, site: str, radio: StreamServer
) -> None:
    specs = [SimSpeakerSpec("loa-1", zone="thon-1")]
    data = relay_config(tmp_path, broker.port, site, specs)
    async with running_daemon(data) as (state, _api):
        with refusing_port() as port:
            down = await air_relay(
                state, f"http://127.0.0.1:{port}{LIVE}", duration_s=60, zones=("thon-1",)
            )
            run = await until(lambda: aired(state, down.id))
        assert run.state is ExecState.FAILED
        assert run.error.startswith("Không mở được luồng tiếp sóng: máy chủ không trả lời")
        assert SECRET not in run.error
        assert await deliveries(state, down.id) == {}

        # Sent too late to matter: the check passes, but its end has gone by.
        dispatch = BroadcastDispatch(state.speakers, state.audio, state.library, Rules())
        slot = datetime.now(UTC) - timedelta(minutes=5)
        over = BroadcastRecord(
            "b-over", "Thời sự", Kind.URL, Targets(all=True), "normal", slot, "radio", slot, slot,
            url=radio.url(LIVE), duration_s=60,
        )  # fmt: skip
        late = ExecutionRecord(99, "b-over", slot, ExecState.PENDING, slot, fired_at=slot)
        with pytest.raises(DispatchError, match="Đã quá giờ kết thúc tiếp sóng"):
            await dispatch(over, late)
    assert radio.tuned_in == 1


async def test_a_restart_across_the_end_still_stops_the_relay_exactly_once(
    broker: PrivateBroker, tmp_path: Path, site: str, radio: StreamServer
) -> None:
    specs = [
        SimSpeakerSpec("loa-1", zone="thon-1", faults=MISBEHAVING),
        SimSpeakerSpec("loa-2", zone="thon-2", faults=MISBEHAVING),
    ]
    data = relay_config(tmp_path, broker.port, site, specs)
    async with SpeakerFleet(host="127.0.0.1", port=broker.port, site=site, speakers=specs) as fleet:
        async with running_daemon(data) as (state, _api):
            await until(lambda: online(state, len(specs)))
            relay = await air_relay(
                state, radio.url(LIVE), duration_s=8, zones=("thon-1", "thon-2")
            )
            playing = {
                "loa-1": ("started", None),
                "loa-2": ("started", None),
                "hermes-1": ("failed", "unsupported"),
            }
            await until(lambda: _equal(deliveries(state, relay.id), playing))
            run = await until(lambda: aired(state, relay.id))
        # loacam is down when the relay ends.
        end = relay_end(relay, run)
        await until(lambda: _past(end + timedelta(seconds=1)))
        assert radio.listeners == 2  # nobody has stopped them
        async with running_daemon(data) as (state, _api):
            await radio.wait_for(lambda r: r.listeners == 0)
            await until(lambda: _stopped(state, relay.id))
            wanted = [("loa-1", "stop", str(run.id)), ("loa-2", "stop", str(run.id))]
            assert await stops_of(state, relay.id) == wanted
            # Another stopper (a second restart) finds it stopped and sends nothing.
            await RelayStopper(state.store, state.speakers).tick()
            assert await stops_of(state, relay.id) == wanted
        assert [p.outcome for p in fleet["loa-1"].plays] == ["stopped"]
        assert [p.outcome for p in fleet["loa-2"].plays] == ["stopped"]


async def _past(moment: datetime) -> bool:
    return datetime.now(UTC) > moment


async def _stopped(state: AppState, broadcast_id: str) -> bool:
    runs = await executions(state.store, broadcast_id)
    return bool(runs) and runs[0].stopped_at is not None


async def test_a_relay_created_through_the_api_is_checked_and_a_cancel_stops_it_on_air(
    broker: PrivateBroker, tmp_path: Path, site: str, radio: StreamServer
) -> None:
    specs = [SimSpeakerSpec("loa-1", zone="thon-1", faults=MISBEHAVING)]
    data = relay_config(tmp_path, broker.port, site, specs)
    radio_role = bearer(Role.RADIO, "radio")
    async with (
        running_daemon(data) as (state, api),
        SpeakerFleet(host="127.0.0.1", port=broker.port, site=site, speakers=specs) as fleet,
    ):
        await until(lambda: online(state, len(specs)))
        with refusing_port() as port:
            down = await api.post(
                "/api/v1/broadcasts",
                json={"url": f"http://127.0.0.1:{port}/live.mp3", "duration_s": 600,
                      "targets": {"zones": ["thon-1"]}},
                headers=radio_role,
            )  # fmt: skip
        assert down.status_code == 422
        assert "Không mở được luồng tiếp sóng" in down.json()["detail"]
        created = await api.post(
            "/api/v1/broadcasts",
            json={"title": "Thời sự Đài tỉnh", "url": radio.url(LIVE),
                  "duration_s": 600, "targets": {"zones": ["thon-1"]}},
            headers=radio_role,
        )  # fmt: skip
        assert created.status_code == 201, created.text
        relay_id = created.json()["id"]
        assert created.json()["url"].endswith(SECRET)  # the radio station sees its token
        leader = bearer(Role.LEADER, "leader")
        shown = (await api.get(f"/api/v1/broadcasts/{relay_id}", headers=leader)).json()
        assert shown["url"] == radio.url("/live.mp3")  # a leader sees no token
        await until(lambda: _equal(deliveries(state, relay_id), {"loa-1": ("started", None)}))
        await radio.wait_for(lambda r: r.listeners == 1)

        cancelled = await api.post(f"/api/v1/broadcasts/{relay_id}/cancel", headers=radio_role)
        assert cancelled.status_code == 200

        async def stopped() -> dict[str, Any] | None:
            body = (await api.get(f"/api/v1/broadcasts/{relay_id}", headers=radio_role)).json()
            runs = body["executions"]
            return runs[0] if runs and runs[0]["stopped_at"] is not None else None

        run = await until(stopped)
        await radio.wait_for(lambda r: r.listeners == 0)
        assert run["state"] == "dispatched"
        assert datetime.fromisoformat(run["stopped_at"]) < datetime.fromisoformat(
            run["slot"]
        ) + timedelta(seconds=600)
        assert [p.outcome for p in fleet["loa-1"].plays] == ["stopped"]
        # Checked at creation, checked again at air time, played by the speaker.
        assert radio.tuned_in == 3
