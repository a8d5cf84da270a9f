"""Exactly-once playback through failures: `loacam run` as a process, a real mosquitto.

The outbox re-sends what no speaker has acknowledged (after a broker restart, after
the daemon's own SIGKILL); speakers de-duplicate by cmd_id. What counts is what the
simulated speakers actually executed.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from drivers.sim.broker import PrivateBroker
from drivers.sim.speaker import SpeakerFaults, SpeakerFleet
from tests.speaker_rig import add_users, bearer, declared, native, speaker_config, until
from tests.support import Daemon, write_config

SPEED = 20.0
DONE = {"acknowledged", "started", "finished"}


@asynccontextmanager
async def daemon_process(tmp_path: Path, data: dict[str, Any]) -> AsyncIterator[Daemon]:
    await add_users(Path(data["storage"]["path"]))
    with Daemon(write_config(tmp_path / "loacam.yaml", data), None) as daemon:
        async with httpx.AsyncClient(base_url=daemon.base, timeout=5) as probe:
            await until(lambda: _ready(probe), within_s=30)
        yield daemon


async def _ready(probe: httpx.AsyncClient) -> bool:
    try:
        return (await probe.get("/readyz")).status_code == 200
    except httpx.TransportError:
        return False


async def _states(api: httpx.AsyncClient, cmd_ids: list[str]) -> dict[str, str]:
    states = {}
    for cmd_id in cmd_ids:
        response = await api.get(f"/api/v1/speaker-commands/{cmd_id}")
        states[cmd_id] = response.json()["state"]
    return states


async def _all_in(api: httpx.AsyncClient, cmd_ids: list[str], wanted: set[str]) -> bool:
    return set((await _states(api, cmd_ids)).values()) <= wanted


async def _attempts(api: httpx.AsyncClient, cmd_id: str, at_least: int) -> bool:
    response = await api.get(f"/api/v1/speaker-commands/{cmd_id}")
    return bool(response.json()["attempts"] >= at_least)


async def _online(api: httpx.AsyncClient, count: int) -> bool:
    speakers = (await api.get("/api/v1/speakers", params={"status": "online"})).json()
    return len(speakers) == count


async def test_broker_restart_mid_dispatch_plays_every_command_exactly_once(
    tmp_path: Path, site: str
) -> None:
    broker = PrivateBroker(tmp_path / "mosquitto", persistence=True)
    broker.start_blocking()
    specs = native(8, prefix="brk")
    away, present = specs[:4], specs[4:]
    data = speaker_config(tmp_path, broker.port, site=site, speakers=declared(specs))
    try:
        async with (
            daemon_process(tmp_path, data) as daemon,
            SpeakerFleet(
                host="127.0.0.1", port=broker.port, site=site, speakers=specs, speed=SPEED
            ) as fleet,
            httpx.AsyncClient(base_url=daemon.base, headers=bearer(), timeout=10) as api,
        ):
            await until(lambda: _online(api, len(specs)))
            for spec in present:
                # They take the command, but their acks stay unsent and a slow download
                # keeps the play from starting until the broker has restarted.
                fleet[spec.id].set_faults(SpeakerFaults(hold_acks=True, download_delay_s=6.0))
            for spec in away:  # their commands wait in the broker's persistent sessions
                await fleet[spec.id].go_offline(8.0)
            await until(lambda: _online(api, len(present)))

            sent = await api.post("/api/v1/speakers/test-tone", json={"targets": {"all": True}})
            assert sent.status_code == 202, sent.text
            cmd_ids = [c["cmd_id"] for c in sent.json()]
            by_speaker = {c["speaker_id"]: c["cmd_id"] for c in sent.json()}
            await until(lambda: _all_in(api, cmd_ids, {"sent", "offline"}))
            for spec in present:
                await fleet[spec.id].wait_for(lambda s: len(s.handled) == 1)

            await asyncio.to_thread(broker.stop_blocking)  # mid-dispatch: nothing acknowledged
            await asyncio.to_thread(broker.start_blocking)
            # loacam re-sends every unacknowledged command; the speakers that had it
            # already answer the repeat without playing it again.
            for spec in present:
                await until(lambda sid=spec.id: _attempts(api, by_speaker[sid], 2))
                await fleet[spec.id].wait_for(lambda s: s.duplicates >= 1, timeout=30)
                fleet[spec.id].set_faults(SpeakerFaults())

            await until(lambda: _all_in(api, cmd_ids, {"finished"}), within_s=60)
            for spec in specs:
                assert len(fleet[spec.id].plays) == 1, spec.id
                assert fleet[spec.id].plays[0].outcome == "completed"
    finally:
        broker.stop_blocking()


async def test_daemon_killed_before_the_acks_resends_and_each_speaker_plays_once(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    specs = native(5, prefix="kil")
    data = speaker_config(tmp_path, broker.port, site=site, speakers=declared(specs))
    async with SpeakerFleet(
        host="127.0.0.1", port=broker.port, site=site, speakers=specs, speed=SPEED
    ) as fleet:
        async with daemon_process(tmp_path, data) as daemon:
            async with httpx.AsyncClient(base_url=daemon.base, headers=bearer()) as api:
                await until(lambda: _online(api, len(specs)))
                for spec in specs:
                    await fleet[spec.id].go_offline(6.0)
                await until(lambda: _online(api, 0))
                sent = await api.post("/api/v1/speakers/test-tone", json={"targets": {"all": True}})
                cmd_ids = [c["cmd_id"] for c in sent.json()]
                # Published: the broker holds each command for its offline speaker.
                await until(lambda: _all_in(api, cmd_ids, {"offline"}))
            daemon.process.send_signal(signal.SIGKILL)
            assert daemon.wait(10) == -signal.SIGKILL

        async with (
            daemon_process(tmp_path, data) as daemon,
            httpx.AsyncClient(base_url=daemon.base, headers=bearer()) as api,
        ):
            await until(lambda: _all_in(api, cmd_ids, DONE), within_s=40)
            for spec in specs:
                speaker = fleet[spec.id]
                await speaker.wait_for(lambda s: bool(s.plays and s.plays[0].outcome))
                assert len(speaker.plays) == 1, spec.id
                assert speaker.plays[0].cmd_id in cmd_ids
            assert sum(fleet[spec.id].duplicates for spec in specs) >= 1
