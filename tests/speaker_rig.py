"""The daemon's speaker side for tests: in this process (component) or as `loacam run`.

In-process, the same supervisor children as `loacam run` (MQTT, speakers, HTTP) run
on the test's event loop with a real HTTP port, so simulated speakers download their
audio over real HTTP; `state` is there to look inside.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from daemon.app import create_app
from daemon.auth import Role, TokenService
from daemon.config import Config
from daemon.http_server import HttpServer, bind
from daemon.service import add_broadcast_loops, build_state
from daemon.state import AppState
from daemon.store import Store
from daemon.store.users import UserExistsError, add_user
from drivers.sim.broker import free_port
from drivers.sim.speaker import SimSpeakerSpec
from tests.support import base_config

TOKEN_KEY = b"k" * 32


def speaker_config(
    tmp: Path,
    mqtt_port: int,
    *,
    site: str,
    speakers: Sequence[dict[str, Any]],
    http_port: int | None = None,
    fleet: dict[str, Any] | None = None,
) -> dict[str, Any]:
    data = base_config(tmp, http_port=http_port or free_port(), mqtt_port=mqtt_port, site=site)
    data["speakers"] = list(speakers)
    data["auth"] = {"token_secret": TOKEN_KEY.decode()}
    if fleet:
        data["fleet"] = fleet
    return data


def native(count: int, zones: int = 1, prefix: str = "loa") -> list[SimSpeakerSpec]:
    return [
        SimSpeakerSpec(id=f"{prefix}-{n}", zone=f"thon-{(n - 1) % zones + 1}")
        for n in range(1, count + 1)
    ]


def declared(specs: Sequence[SimSpeakerSpec]) -> list[dict[str, Any]]:
    return [{"id": s.id, "name": f"Cụm loa {s.id}", "zone": s.zone} for s in specs]


async def add_users(data_dir: Path) -> None:
    """Accounts `tech`, `radio`, `leader` and `district`, each with its role."""
    store = await Store.open(data_dir)
    try:
        for username, role in (
            ("tech", Role.TECHNICIAN),
            ("radio", Role.RADIO),
            ("leader", Role.LEADER),
            ("district", Role.DISTRICT),
        ):
            # A hash that never verifies: the tests sign tokens, nobody logs in.
            with contextlib.suppress(UserExistsError):
                await add_user(store, username, role.value, "$argon2id$unusable")
    finally:
        await store.close()


def bearer(role: Role = Role.TECHNICIAN, username: str = "tech") -> dict[str, str]:
    """A token signed with the test key, as the daemon's login would issue it."""
    token, _ = TokenService(TOKEN_KEY, timedelta(hours=1)).issue(username, role)
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def running_daemon(data: dict[str, Any]) -> AsyncIterator[tuple[AppState, httpx.AsyncClient]]:
    """The daemon's MQTT, speaker and HTTP loops on this event loop."""
    config = Config.model_validate(data)
    await add_users(config.storage.path)
    store = await Store.open(config.storage.path)
    state = build_state(config, store, TOKEN_KEY)
    sock = bind(config.http.host, config.http.port)
    http = HttpServer(create_app(state), sock, 1, closing=state.closing)
    state.supervisor.add("mqtt", state.mqtt.run)
    state.supervisor.add("speakers", state.speakers.run)
    add_broadcast_loops(state)
    state.supervisor.add("http", http.run)
    stop = asyncio.Event()
    task = asyncio.create_task(state.supervisor.run(stop))
    try:
        await asyncio.wait_for(http.started.wait(), 10)
        await asyncio.wait_for(state.mqtt.wait_connected(), 10)
        base = f"http://{config.http.host}:{config.http.port}"
        async with httpx.AsyncClient(base_url=base, headers=bearer(), timeout=10) as api:
            yield state, api
    finally:
        stop.set()
        await task
        sock.close()
        await store.close()


async def until(
    check: Callable[[], Awaitable[Any]], within_s: float = 20.0, interval: float = 0.05
) -> Any:
    """Re-evaluate `check()` until it returns something truthy (a condition, not a delay)."""
    deadline = time.monotonic() + within_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {within_s} s (last value: {last!r})")


async def holds(value: bool) -> bool:
    """A condition already computed, as `until` wants it: `until(lambda: holds(x == y))`."""
    return value


def make_audio(path: Path, seconds: float, frequency: int = 440, volume_db: float = 0.0) -> bytes:
    """A real encoded file (ffmpeg's sine source), e.g. an .mp3 or .ogg."""
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency={frequency}:duration={seconds}",
            "-af",
            f"volume={volume_db}dB",
            str(path),
        ],
        check=True,
    )
    return path.read_bytes()
