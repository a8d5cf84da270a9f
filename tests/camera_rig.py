"""A running camera manager with the real API in front and simulated cameras behind it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import httpx

from daemon.app import create_app
from daemon.auth import Role, hash_password_blocking
from daemon.cameras.media import run_media
from daemon.config import SecretSources
from daemon.config_loader import parse_config
from daemon.http_server import HttpServer, bind
from daemon.service import build_state
from daemon.state import AppState
from daemon.store import Store
from daemon.store.users import UserExistsError, add_user
from drivers.sim.broker import free_port
from drivers.sim.onvif import CameraFaults, CameraIdentity, SimulatedOnvifCamera
from drivers.sim.rtsp import SimulatedRtsp

CAMERA_PASSWORD = "Cam-Secret-77"  # searched for in every response and log line
PASSWORDS = {role: f"{role.value}-password-1" for role in Role}


@functools.cache
def password_hash(role: Role) -> str:
    return hash_password_blocking(PASSWORDS[role])


@dataclass
class Rig:
    site: str
    state: AppState
    client: httpx.AsyncClient
    broker_port: int
    sims: dict[str, SimulatedOnvifCamera] = field(default_factory=dict)
    tokens: dict[Role, str] = field(default_factory=dict)
    base_url: str | None = None  # a real HTTP server, when the rig was asked for one

    async def token(self, role: Role) -> str:
        if role not in self.tokens:
            await self.as_role(role, "GET", "/healthz")
        return self.tokens[role]

    async def as_role(self, role: Role, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if role not in self.tokens:
            login = await self.client.post(
                "/api/v1/auth/login", json={"username": role.value, "password": PASSWORDS[role]}
            )
            self.tokens[role] = login.json()["access_token"]
            self.client.cookies.clear()  # each call says who it is through its header
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def wait_status(
        self, camera_id: str, wanted: str, within_s: float = 20.0
    ) -> dict[str, Any]:
        """Wait for the camera's retained MQTT status to say `wanted`."""
        topic = f"loacam/{self.site}/camera/{camera_id}/status"
        identifier = f"rig-probe-{time.monotonic_ns()}"
        async with aiomqtt.Client("127.0.0.1", self.broker_port, identifier=identifier) as probe:
            await probe.subscribe(topic, qos=1)
            async with asyncio.timeout(within_s):
                async for message in probe.messages:
                    if not isinstance(message.payload, bytes) or not message.payload:
                        continue
                    status: dict[str, Any] = json.loads(message.payload)
                    if status["status"] == wanted:
                        return status
        raise AssertionError("unreachable")


def camera_yaml(camera_id: str, sim: SimulatedOnvifCamera, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": camera_id,
        "name": f"Camera {camera_id}",
        "host": "127.0.0.1",
        "port": sim.port,
        "username": "admin",
        "password": CAMERA_PASSWORD,
        "timeout_s": 2,
        "keepalive_s": 1,
    }
    return entry | extra


def simulated(
    rtsp: SimulatedRtsp, *, faults: CameraFaults | None = None, serial: str = "SIM-1"
) -> SimulatedOnvifCamera:
    return SimulatedOnvifCamera(
        username="admin",
        password=CAMERA_PASSWORD,
        rtsp_main=rtsp.url("main"),
        rtsp_sub=rtsp.url("sub"),
        identity=CameraIdentity(serial=serial),
        faults=faults,
    )


@asynccontextmanager
async def camera_rig(
    tmp_path: Path,
    broker_port: int,
    sims: dict[str, SimulatedOnvifCamera],
    cameras: list[dict[str, Any]],
    *,
    live: dict[str, Any] | None = None,
    serve_http: bool = False,
) -> AsyncIterator[Rig]:
    for sim in sims.values():
        await sim.start()
    # A site of its own: a retained status left by an earlier test must not answer a wait.
    site = f"rig-{secrets.token_hex(4)}"
    config = parse_config(
        json.dumps(
            {
                "site": site,
                "storage": {"path": str(tmp_path)},
                "mqtt": {"host": "127.0.0.1", "port": broker_port},
                "cameras": cameras,
                "live": live or {},
            }
        ),
        "rig.yaml",
        SecretSources({}, None),
    )
    store = await Store.open(tmp_path)
    for role in Role:
        with contextlib.suppress(UserExistsError):  # a second rig on the same store
            await add_user(store, role.value, role.value, password_hash(role))
    state = build_state(config, store, b"k" * 32)
    stop = asyncio.Event()
    loops = [
        asyncio.create_task(state.mqtt.run(stop)),
        asyncio.create_task(state.cameras.run(stop)),
        asyncio.create_task(run_media(state, stop)),
    ]
    app = create_app(state)
    base_url = None
    listener = None
    if serve_http:
        # Endless MJPEG responses need a real server: the ASGI test transport buffers.
        port = free_port()
        listener = bind("127.0.0.1", port)
        http = HttpServer(app, listener, graceful_timeout_s=1)
        loops.append(asyncio.create_task(http.run(stop)))
        await asyncio.wait_for(http.started.wait(), 10)
        base_url = f"http://127.0.0.1:{port}"
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 4444))
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://loacam.test", timeout=30
        ) as client:
            yield Rig(site, state, client, broker_port, sims, base_url=base_url)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*loops), 15)
        for sim in sims.values():
            await sim.stop()
        if listener is not None:
            listener.close()
        await store.close()
