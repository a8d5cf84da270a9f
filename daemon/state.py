"""The one typed application state, attached to the FastAPI app as `app.state.loacam`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from daemon.audio.ahead import RenderAhead
from daemon.audio.library import Library
from daemon.audio.service import AudioService
from daemon.auth import LoginThrottle, TokenService
from daemon.broadcasts.engine import Engine
from daemon.broadcasts.relay_stop import RelayStopper
from daemon.broadcasts.resume import Resumer
from daemon.cameras.manager import CameraManager
from daemon.config import Config
from daemon.media import MediaSigner, MediaStore
from daemon.speakers.service import SpeakerService
from daemon.store import Store
from daemon.supervisor import Supervisor
from drivers.camera.hls import HlsSessions
from drivers.camera.stream import LiveStreams
from drivers.mqtt import MqttLink


@dataclass
class AppState:
    config: Config
    store: Store
    mqtt: MqttLink
    supervisor: Supervisor
    tokens: TokenService
    throttle: LoginThrottle
    cameras: CameraManager
    live: LiveStreams
    hls: HlsSessions
    speakers: SpeakerService
    media: MediaStore
    media_signer: MediaSigner
    audio: AudioService
    render_ahead: RenderAhead
    library: Library
    broadcasts: Engine
    relays: RelayStopper
    resumer: Resumer
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    storage_ok: bool = False
    # Held while a broadcast is checked for conflicts and written: two created at once
    # would each miss the other's overlap.
    broadcast_planning: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Set when the HTTP server starts to stop: live streams (SSE) end then, so the server
    # does not wait its graceful timeout for them.
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    async def check_storage(self) -> bool:
        self.storage_ok = await self.store.ping()
        return self.storage_ok

    def summary(self) -> str:
        """One line for systemd's STATUS= and the logs."""
        mqtt = "mqtt connected" if self.mqtt.connected else "mqtt DISCONNECTED"
        storage = "storage ok" if self.storage_ok else "storage FAILING"
        failing = [s.name for s in self.supervisor.states if s.status != "running"]
        loops = f"loops restarting: {', '.join(failing)}" if failing else "all loops running"
        return f"{mqtt}; {storage}; {loops}"
