"""`loacam run` with N declared native speakers: its config, a technician token, its lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, ClassVar

import httpx
import yaml
from loacam_server import REPO
from procs import ServerError, start_loacam, stop, tail

from daemon.auth import Role, TokenService
from drivers.sim.broker import free_port
from drivers.sim.speaker import SimSpeakerSpec

SITE = "bench"
USER = "bench"
POLL_S = 1.0  # between API polls while speakers come online (each poll costs the daemon)
STALL_S = 30.0  # every speaker process is connected: a count stuck this long will not move


@dataclass(frozen=True)
class Outbox:
    """The daemon's own record of the broadcast: per command, when it handled the ack and
    the `started` event (seconds since t0 on the wall clock; None: not yet)."""

    acked_s: list[float | None]
    started_s: list[float | None]
    resent: int  # commands published more than once

    @property
    def complete(self) -> bool:
        return None not in self.acked_s and None not in self.started_s


@dataclass
class SpeakerDaemon:
    """One daemon with the given speakers declared, a fresh store, a `bench` technician."""

    workdir: Path
    broker_port: int
    speakers: Sequence[SimSpeakerSpec]
    profile: Path | None = None  # run under cProfile, its stats written here at exit
    tree: Path = REPO  # the source tree whose `daemon` package is run
    mqtt_protocol: str = "5"  # the daemon's own link; the speakers speak MQTT 5 regardless
    port: int = field(default_factory=free_port)
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    _process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None
    role: ClassVar[Role] = Role.TECHNICIAN  # the `bench` user's

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ServerError("loacam is not running")
        return self._process.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / "loacam.log"

    def headers(self) -> dict[str, str]:
        """A token signed with the daemon's own key, as its login would issue it."""
        token, _ = TokenService(self.secret.encode(), timedelta(hours=4)).issue(USER, self.role)
        return {"Authorization": f"Bearer {token}"}

    def start_blocking(self) -> None:
        """Write the config, add the user, spawn `loacam run` (from the main thread: the
        parent-death signal follows the thread that spawns)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        self._log = self.log_path.open("wb")
        self._process = start_loacam(
            self.tree,
            config,
            user=USER,
            role=self.role.value,
            password=secrets.token_urlsafe(18),
            log=self._log,
            profile=self.profile,
        )

    async def wait_ready(self, api: httpx.AsyncClient, timeout_s: float) -> None:
        """Until /readyz answers 200 (store and MQTT up) and the API lists every speaker."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._check_running()
            try:
                if (await api.get("/readyz")).status_code == 200:
                    listed = (await api.get("/api/v1/speakers")).raise_for_status().json()
                    if len(listed) == len(self.speakers):
                        return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
        raise ServerError(f"loacam not ready in {timeout_s:g} s:\n{tail(self.log_path)}")

    async def wait_online(self, api: httpx.AsyncClient, timeout_s: float) -> int:
        """Until every speaker is `online` in the API, or the count stops moving for
        STALL_S; returns how many are."""
        deadline = time.monotonic() + timeout_s
        last, moved = -1, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - moved < STALL_S:
            self._check_running()
            # The zone list carries the online counts: far cheaper to poll than the
            # speaker list, which is confirmed once at the end.
            zones = (await api.get("/api/v1/zones")).raise_for_status().json()
            online = sum(zone["online"] for zone in zones)
            if online >= len(self.speakers):
                break
            if online != last:
                last, moved = online, time.monotonic()
            await asyncio.sleep(POLL_S)
        listed = await api.get("/api/v1/speakers", params={"status": "online"})
        return len(listed.raise_for_status().json())

    def outbox_blocking(self, t0_wall: float) -> Outbox:
        """Read the outbox from the daemon's store (read-only; it saves progress every
        half second), so the daemon's lag behind what the speakers sent shows."""
        uri = f"file:{self.workdir / 'data' / 'loacam.db'}?mode=ro"
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
                rows = db.execute(
                    "SELECT acked_at, started_at, attempts FROM speaker_commands"
                ).fetchall()
        except sqlite3.Error as exc:
            raise ServerError(f"the daemon's outbox cannot be read: {exc}") from exc

        def since(value: str | None) -> float | None:
            if value is None:
                return None
            # SQLite keeps the daemon's UTC times without their zone.
            return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp() - t0_wall

        return Outbox(
            acked_s=[since(acked) for acked, _, _ in rows],
            started_s=[since(started) for _, started, _ in rows],
            resent=sum(1 for _, _, attempts in rows if attempts > 1),
        )

    def stop_blocking(self) -> None:
        if self._process is not None:
            stop(self._process, timeout_s=30)  # under cProfile, writing the stats takes a while
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _check_running(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise ServerError(f"loacam exited ({self._process.returncode}):\n{tail(self.log_path)}")

    def _write_config(self) -> Path:
        path = self.workdir / "loacam.yaml"
        path.write_text(yaml.safe_dump(self._config()), encoding="utf-8")
        path.chmod(0o600)  # it holds the token secret
        return path

    def _config(self) -> dict[str, Any]:
        return {
            "site": SITE,
            "http": {"host": "127.0.0.1", "port": self.port, "graceful_timeout_s": 1},
            "storage": {"path": str(self.workdir / "data")},
            "mqtt": {"host": "127.0.0.1", "port": self.broker_port, "protocol": self.mqtt_protocol},
            "auth": {"token_secret": self.secret},
            "speakers": [
                {"id": s.id, "name": f"Bench {s.id}", "zone": s.zone, "driver": "native"}
                for s in self.speakers
            ],
        }
