"""Speakers end to end inside one process: drivers, outbox, registry, API, simulators.

Real private mosquitto, real HTTP (speakers download their audio from the daemon),
real audio files made by ffmpeg and decoded by the simulators.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import httpx
import pytest

from daemon.auth import Role
from daemon.config import Config
from daemon.speakers.outbox import CommandRecord, insert_commands
from daemon.store import Store
from drivers.sim.broker import PrivateBroker
from drivers.sim.hermes import SimulatedHermesSpeaker
from drivers.sim.speaker import SimSpeakerSpec, SpeakerFleet
from drivers.speaker.model import Op, Priority
from tests.speaker_rig import (
    bearer,
    declared,
    make_audio,
    native,
    running_daemon,
    speaker_config,
    until,
)

SPEED = 10.0


async def _statuses(api: httpx.AsyncClient, expected: dict[str, str]) -> bool:
    response = await api.get("/api/v1/speakers")
    found = {s["id"]: s["status"] for s in response.json()}
    return all(found.get(k) == v for k, v in expected.items())


async def _commands(api: httpx.AsyncClient, speaker_id: str) -> list[dict[str, object]]:
    response = await api.get(f"/api/v1/speakers/{speaker_id}/commands")
    assert response.status_code == 200, response.text
    result: list[dict[str, object]] = response.json()
    return result


async def test_native_speakers_play_a_real_file_and_the_api_shows_each_outcome(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    specs = native(3, zones=2, prefix="nat")
    data = speaker_config(tmp_path, broker.port, site=site, speakers=declared(specs))
    async with (
        running_daemon(data) as (state, api),
        SpeakerFleet(
            host="127.0.0.1", port=broker.port, site=site, speakers=specs, speed=SPEED
        ) as fleet,
    ):
        await until(lambda: _statuses(api, {s.id: "online" for s in specs}))
        mp3 = make_audio(tmp_path / "announcement.mp3", 1.5)
        name = await state.media.put(mp3, "mp3")
        records = await state.speakers.play([s.id for s in specs], name, source="test")
        assert {r.speaker_id for r in records} == {s.id for s in specs}

        for spec in specs:
            commands = await until(lambda sid=spec.id: _finished(api, sid), within_s=30)
            assert commands[0]["op"] == "play"
            assert commands[0]["duration_s"] == pytest.approx(1.5, abs=0.1)
            assert commands[0]["acked_at"] is not None
            assert len(fleet[spec.id].plays) == 1
            assert fleet[spec.id].plays[0].outcome == "completed"


async def _finished(api: httpx.AsyncClient, speaker_id: str) -> list[dict[str, object]] | None:
    commands = await _commands(api, speaker_id)
    return commands if commands and commands[0]["state"] == "finished" else None


async def test_a_command_the_broker_refuses_fails_plainly_and_is_not_sent_again(
    tmp_path: Path, site: str
) -> None:
    # The daemon (anonymous here) may do anything except write loa-2's commands: an ACL
    # mistake. Speakers (logged in with their ids) have their own topics.
    acl = tmp_path / "acl"
    acl.write_text(
        f"topic readwrite #\ntopic deny loacam/{site}/spk/loa-2/cmd\n"
        "pattern readwrite loacam/+/spk/%u/#\n"
    )
    specs = native(2, prefix="loa")
    with PrivateBroker(tmp_path / "mosquitto", acl_file=acl) as broker:
        data = speaker_config(tmp_path, broker.port, site=site, speakers=declared(specs))
        async with (
            running_daemon(data) as (state, api),
            SpeakerFleet(
                host="127.0.0.1", port=broker.port, site=site, speakers=specs, speed=SPEED
            ) as fleet,
        ):
            await until(lambda: _statuses(api, {s.id: "online" for s in specs}))
            name = await state.media.put(make_audio(tmp_path / "a.mp3", 0.5), "mp3")
            await state.speakers.play(["loa-1", "loa-2"], name, source="test")
            await until(lambda: _finished(api, "loa-1"), within_s=30)
            refused = await until(lambda: _failed(api, "loa-2"))
            assert refused[0]["error"] == "broker"
            # Reconnecting (which re-sends what is unconfirmed) does not try it again.
            await state.speakers.dispatcher.resend_pending()
            assert (await _commands(api, "loa-2"))[0]["attempts"] == 1
            assert fleet["loa-2"].plays == []


async def _failed(api: httpx.AsyncClient, speaker_id: str) -> list[dict[str, object]] | None:
    commands = await _commands(api, speaker_id)
    return commands if commands and commands[0]["state"] == "failed" else None


async def test_hermes_speaker_gets_wav_bytes_of_the_right_duration(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    hermes_site = f"bep-{site}"  # Hermes topics have no loacam site level
    data = speaker_config(
        tmp_path,
        broker.port,
        site=site,
        speakers=[
            {
                "id": "loa-bep",
                "name": "Loa Rhasspy",
                "zone": "thon-1",
                "driver": "hermes",
                "site_id": hermes_site,
            }
        ],
    )
    data["audio"] = {"output": {"hermes_sample_rate": 16000}}
    async with (
        running_daemon(data) as (state, api),
        SimulatedHermesSpeaker(
            host="127.0.0.1",
            port=broker.port,
            site_id=hermes_site,
            speed=SPEED,
            announce_every_s=0.5,
        ) as hermes,
    ):
        await until(lambda: _statuses(api, {"loa-bep": "online"}))
        ogg = make_audio(tmp_path / "thong-bao.ogg", 2.0)
        name = await state.media.put(ogg, "ogg")
        await state.speakers.play(["loa-bep"], name, source="test", volume=40)

        commands = await until(lambda: _finished(api, "loa-bep"), within_s=30)
        assert len(hermes.plays) == 1
        assert hermes.plays[0].request_id == commands[0]["cmd_id"]
        assert hermes.plays[0].duration_s == pytest.approx(2.0, abs=0.05)
        assert hermes.plays[0].sample_rate == 16000  # audio.output.hermes_sample_rate
        assert hermes.volume == pytest.approx(0.4)
        stop = await api.post("/api/v1/speakers/loa-bep/stop")
        assert stop.status_code == 409
        assert "hermes" in stop.json()["detail"]


async def test_speaker_offline_past_expiry_never_plays_one_back_in_time_does(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    specs = native(2, prefix="exp")
    late, early = specs
    data = speaker_config(tmp_path, broker.port, site=site, speakers=declared(specs))
    async with (
        running_daemon(data) as (state, api),
        SpeakerFleet(
            host="127.0.0.1", port=broker.port, site=site, speakers=specs, speed=SPEED
        ) as fleet,
    ):
        await until(lambda: _statuses(api, {late.id: "online", early.id: "online"}))
        await fleet[late.id].go_offline(6.0)
        await fleet[early.id].go_offline(1.0)
        await until(lambda: _statuses(api, {late.id: "offline", early.id: "offline"}))
        records = await state.speakers.test_tone(
            [late.id, early.id], volume=None, source="test", expires_in_s=3.0
        )
        by_speaker = {r.speaker_id: r.cmd_id for r in records}

        await until(lambda: _finished(api, early.id), within_s=20)
        assert len(fleet[early.id].plays) == 1
        expired = await until(lambda: _state_of(api, by_speaker[late.id], "expired"), within_s=20)
        assert expired["acked_at"] is None
        # Once it is back, a ping that comes after the stale command in its queue proves
        # the stale one was dropped, not merely late.
        await until(lambda: _statuses(api, {late.id: "online"}), within_s=20)
        ping = await api.post(f"/api/v1/speakers/{late.id}/volume", json={"volume": 55})
        assert ping.status_code == 202
        await until(lambda: _state_of(api, ping.json()["cmd_id"], "finished"))
        assert fleet[late.id].plays == []


async def _state_of(api: httpx.AsyncClient, cmd_id: str, wanted: str) -> dict[str, object] | None:
    response = await api.get(f"/api/v1/speaker-commands/{cmd_id}")
    body: dict[str, object] = response.json()
    return body if body["state"] == wanted else None


async def test_offline_alarm_is_raised_on_mqtt_api_metrics_and_cleared(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    specs = native(1, prefix="alm")
    (spec,) = specs
    data = speaker_config(
        tmp_path,
        broker.port,
        site=site,
        speakers=declared(specs),
        fleet={"offline_alarm_after_s": 1},
    )
    async with (
        running_daemon(data) as (_state, api),
        SpeakerFleet(host="127.0.0.1", port=broker.port, site=site, speakers=specs) as fleet,
        aiomqtt.Client("127.0.0.1", broker.port, identifier="alarm-watch") as watch,
    ):
        await watch.subscribe(f"loacam/{site}/alarm", qos=1)
        await until(lambda: _statuses(api, {spec.id: "online"}))
        await fleet[spec.id].go_offline(4.0)

        raised = await _next_alarm(watch)
        assert raised["speaker_id"] == spec.id
        assert raised["active"] is True
        assert "mất kết nối" in raised["message"]
        alarms = (await api.get("/api/v1/alarms", params={"active": "true"})).json()
        assert [a["subject"] for a in alarms] == [spec.id]
        listed = (await api.get("/api/v1/speakers", params={"status": "offline"})).json()
        assert [s["alarm"] for s in listed] == [True]
        metrics = (await api.get("/metrics")).text
        assert f'loacam_speaker_alarm{{speaker="{spec.id}"}} 1.0' in metrics

        cleared = await _next_alarm(watch, within_s=20)
        assert cleared["active"] is False
        assert (await api.get("/api/v1/alarms", params={"active": "true"})).json() == []
        history = (await api.get("/api/v1/alarms")).json()
        assert history[0]["cleared_at"] is not None


async def _next_alarm(client: aiomqtt.Client, within_s: float = 15.0) -> dict[str, object]:
    async with asyncio.timeout(within_s):
        async for message in client.messages:
            body: dict[str, object] = json.loads(bytes(message.payload))  # type: ignore[arg-type]
            return body
    raise AssertionError("unreachable")


async def test_availability_is_rebuilt_from_retained_messages_after_a_restart(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    specs = native(3, prefix="rst")
    data = speaker_config(tmp_path, broker.port, site=site, speakers=declared(specs))
    fleet = SpeakerFleet(host="127.0.0.1", port=broker.port, site=site, speakers=specs)
    async with fleet:
        async with running_daemon(data) as (_state, api):
            await until(lambda: _statuses(api, {s.id: "online" for s in specs}))
            volume = await api.post(f"/api/v1/speakers/{specs[0].id}/volume", json={"volume": 33})
            assert volume.status_code == 202
            await until(lambda: _volume(api, specs[0].id, 33))
        await fleet[specs[2].id].go_offline(60.0)
        async with running_daemon(data) as (_state, api):
            expected = {specs[0].id: "online", specs[1].id: "online", specs[2].id: "offline"}
            await until(lambda: _statuses(api, expected))
            assert await _volume(api, specs[0].id, 33)


async def _volume(api: httpx.AsyncClient, speaker_id: str, volume: int) -> bool:
    response = await api.get(f"/api/v1/speakers/{speaker_id}")
    return bool(response.json()["volume"] == volume)


async def test_a_speaker_not_in_the_configuration_joins_by_its_info(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    data = speaker_config(tmp_path, broker.port, site=site, speakers=[])
    newcomer = SimSpeakerSpec(id="moi-1", zone="thon-9", name="Loa mới")
    async with (
        running_daemon(data) as (_state, api),
        SpeakerFleet(host="127.0.0.1", port=broker.port, site=site, speakers=[newcomer]),
    ):
        await until(lambda: _statuses(api, {"moi-1": "online"}))
        detail = (await api.get("/api/v1/speakers/moi-1")).json()
        assert detail["zone"] == "thon-9"
        assert detail["name"] == "Loa mới"
        assert detail["declared"] is False
        zones = (await api.get("/api/v1/zones")).json()
        assert {"id": "thon-9", "name": "thon-9", "speakers": 1, "online": 1} in zones


async def test_zones_are_listed_created_and_renamed_by_technicians(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    specs = native(2, zones=2, prefix="zon")
    data = speaker_config(tmp_path, broker.port, site=site, speakers=declared(specs))
    data["zones"] = [{"id": "thon-1", "name": "Thôn Một"}]
    async with running_daemon(data) as (_state, api):
        zones = {z["id"]: z for z in (await api.get("/api/v1/zones")).json()}
        assert zones["thon-1"]["name"] == "Thôn Một"
        assert zones["thon-2"]["speakers"] == 1

        created = await api.post("/api/v1/zones", json={"id": "thon-3", "name": "Thôn Ba"})
        assert created.status_code == 201
        again = await api.post("/api/v1/zones", json={"id": "thon-3", "name": "x"})
        assert again.status_code == 409
        renamed = await api.patch("/api/v1/zones/thon-2", json={"name": "Thôn Hai"})
        assert renamed.json()["name"] == "Thôn Hai"
        missing = await api.patch("/api/v1/zones/khong-co", json={"name": "x"})
        assert missing.status_code == 404
        bad = await api.post("/api/v1/zones", json={"id": "Thôn 4", "name": "x"})
        assert bad.status_code == 422

        radio = bearer(Role.RADIO, "radio")
        forbidden = await api.post(
            "/api/v1/zones", json={"id": "thon-5", "name": "x"}, headers=radio
        )
        assert forbidden.status_code == 403
        district = await api.get("/api/v1/speakers", headers=bearer(Role.DISTRICT, "district"))
        assert district.status_code == 403
        leader = await api.get("/api/v1/zones", headers=bearer(Role.LEADER, "leader"))
        assert leader.status_code == 200


async def test_targets_naming_unknown_zones_are_refused_in_plain_words(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    data = speaker_config(
        tmp_path, broker.port, site=site, speakers=declared(native(1, prefix="tgt"))
    )
    async with running_daemon(data) as (state, api):
        response = await api.post(
            "/api/v1/speakers/test-tone", json={"targets": {"zones": ["thon-1", "thon-404"]}}
        )
        assert response.status_code == 422
        assert "thon-404" in response.json()["detail"]
        empty = await api.post("/api/v1/speakers/test-tone", json={"targets": {}})
        assert empty.status_code == 422
        assert await state.speakers.dispatcher.recent() == []


async def test_malformed_speaker_messages_are_dropped_and_the_daemon_carries_on(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    specs = native(1, prefix="bad")
    data = speaker_config(tmp_path, broker.port, site=site, speakers=declared(specs))
    async with (
        running_daemon(data) as (_state, api),
        aiomqtt.Client("127.0.0.1", broker.port, identifier="vandal") as vandal,
    ):
        base = f"loacam/{site}/spk/bad-1"
        for leaf, payload in (
            ("state", b"{not json"),
            ("info", b'{"protocol": "one"}'),
            ("ack", b'{"cmd_id": "../../etc", "ok": true}'),
            ("event", b'{"event": "exploded"}'),
            ("status", b"maybe"),
        ):
            await vandal.publish(f"{base}/{leaf}", payload, qos=1)
        await vandal.publish(f"{base}/status", b"online", qos=1)
        await until(lambda: _statuses(api, {"bad-1": "online"}))
        assert (await api.get("/healthz")).status_code == 200
        detail = (await api.get("/api/v1/speakers/bad-1")).json()
        assert detail["volume"] is None
        assert detail["model"] is None


async def test_media_urls_open_only_with_a_valid_signature(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    data = speaker_config(tmp_path, broker.port, site=site, speakers=[])
    async with running_daemon(data) as (state, _api):
        audio = make_audio(tmp_path / "a.mp3", 0.5)
        name = await state.media.put(audio, "mp3")
        later = datetime.now(UTC) + timedelta(minutes=10)
        url = state.media_signer.url(name, later)
        async with httpx.AsyncClient(timeout=10) as anonymous:  # a speaker has no login
            ok = await anonymous.get(url)
            assert ok.status_code == 200
            assert ok.content == audio
            assert ok.headers["content-type"] == "audio/mpeg"
            tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
            assert (await anonymous.get(tampered)).status_code == 403
            expired = state.media_signer.url(name, datetime.now(UTC) - timedelta(seconds=1))
            assert (await anonymous.get(expired)).status_code == 403
            query = url.split("?", 1)[1]
            base = url.split("/media/", 1)[0]
            sneaky = await anonymous.get(f"{base}/media/..%2Floacam.db?{query}")
            assert sneaky.status_code in {403, 404}
            assert b"SQLite" not in sneaky.content
            assert (await anonymous.get(f"{base}/media/{name}")).status_code == 403  # unsigned


def _hermes_config(tmp_path: Path, broker: PrivateBroker, site: str) -> dict[str, object]:
    return speaker_config(
        tmp_path,
        broker.port,
        site=site,
        speakers=[
            {
                "id": "loa-h",
                "name": "Loa Hermes",
                "zone": "thon-1",
                "driver": "hermes",
                "site_id": f"h-{site}",
            }
        ],
    )


async def test_a_hermes_command_handed_over_before_a_crash_is_never_sent_again(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    data = _hermes_config(tmp_path, broker, site)
    # What a crash leaves when it strikes between handing a Hermes play to the broker
    # and saving its PUBACK: the row says `queued`, with one attempt made.
    config = Config.model_validate(data)
    store = await Store.open(config.storage.path)
    now = datetime.now(UTC)
    crashed = CommandRecord(
        uuid.uuid4().hex,
        "loa-h",
        "hermes",
        Op.PLAY,
        "test",
        "x",
        None,
        Priority.NORMAL,
        None,
        now,
        now + timedelta(minutes=5),
        attempts=1,
        updated_at=now,
    )
    await insert_commands(store, [crashed])
    await store.close()
    async with (
        running_daemon(data) as (state, api),
        SimulatedHermesSpeaker(
            host="127.0.0.1", port=broker.port, site_id=f"h-{site}", speed=SPEED
        ) as hermes,
    ):
        after = await until(lambda: _state_of(api, crashed.cmd_id, "sent"))
        assert after["error"] == "unconfirmed"
        assert after["attempts"] == 1
        # A later play reaches the speaker: the earlier one would have been ahead of it.
        (second,) = await state.speakers.test_tone(["loa-h"], volume=None, source="test")
        await until(lambda: _state_of(api, second.cmd_id, "finished"), within_s=30)
        assert [play.request_id for play in hermes.plays] == [second.cmd_id]


async def test_a_hermes_volume_is_finished_once_the_broker_has_it(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    data = _hermes_config(tmp_path, broker, site)
    async with (
        running_daemon(data) as (_state, api),
        SimulatedHermesSpeaker(host="127.0.0.1", port=broker.port, site_id=f"h-{site}") as hermes,
    ):
        response = await api.post("/api/v1/speakers/loa-h/volume", json={"volume": 20})
        assert response.status_code == 202
        await until(lambda: _state_of(api, response.json()["cmd_id"], "finished"))
        await hermes.wait_for(lambda h: h.volume is not None)
        assert hermes.volume == pytest.approx(0.2)
