"""`loacam run` for the emergency benchmark: broadcasts at any hour, the daemon's own stamps.

The dispatch benchmark's daemon (N declared native speakers, a fresh store, a token
signed with its own key) with an `admin` account (broadcasts and uploads need the radio
role; admin is admitted everywhere), no quiet hours (the benchmark runs at any hour of
Vietnam's day), and `after_preemption: interrupted`, so no resumed programme traffic
follows an emergency into the next measurement. Text-to-speech keeps the shipped
engines (gTTS first, then espeak-ng): an emergency must not wait for gTTS, and the
benchmark checks which engine spoke it.
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from dispatch_daemon import SITE, USER, SpeakerDaemon
from procs import ServerError, start_loacam

from daemon.auth import Role, TokenService


@dataclass(frozen=True)
class DaemonStamps:
    """What the daemon recorded of one emergency, in seconds since t0 (wall clock)."""

    fired_s: float | None  # the engine claimed the slot (its tick after the POST)
    issued_s: float | None  # `submit` began: the speech was ready
    sent_s: list[float | None]  # per command: the broker's PUBACK
    acked_s: list[float | None]  # per command: when the daemon handled the ack
    started_s: list[float | None]
    engine: str | None  # which text-to-speech engine made the audio
    render_cached: bool  # the audio was made before t0 (a cache hit)
    audio_kb: float | None  # what every speaker downloads
    audio_s: float | None


def _since(value: str | None, t0_wall: float) -> float | None:
    if value is None:
        return None
    # SQLite keeps the daemon's UTC times without their zone.
    return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp() - t0_wall


@dataclass
class EmergencyDaemon(SpeakerDaemon):
    def headers(self) -> dict[str, str]:
        token, _ = TokenService(self.secret.encode(), timedelta(hours=4)).issue(USER, Role.ADMIN)
        return {"Authorization": f"Bearer {token}"}

    def start_blocking(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        self._log = self.log_path.open("wb")
        self._process = start_loacam(
            self.tree,
            config,
            user=USER,
            role=Role.ADMIN.value,
            password=secrets.token_urlsafe(18),
            log=self._log,
            profile=self.profile,
        )

    def _write_config(self) -> Path:
        config: dict[str, Any] = {
            "site": SITE,
            "http": {"host": "127.0.0.1", "port": self.port, "graceful_timeout_s": 1},
            "storage": {"path": str(self.workdir / "data")},
            "mqtt": {"host": "127.0.0.1", "port": self.broker_port, "protocol": self.mqtt_protocol},
            "auth": {"token_secret": self.secret},
            "broadcasts": {
                "quiet_morning": None,
                "quiet_evening": None,
                "after_preemption": "interrupted",
            },
            "speakers": [
                {"id": s.id, "name": f"Bench {s.id}", "zone": s.zone, "driver": "native"}
                for s in self.speakers
            ],
        }
        path = self.workdir / "loacam.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        path.chmod(0o600)  # it holds the token secret
        return path

    def stamps_blocking(self, broadcast_id: str, t0_wall: float) -> DaemonStamps:
        """Read the daemon's store (read-only; it saves progress every half second)."""
        uri = f"file:{self.workdir / 'data' / 'loacam.db'}?mode=ro"
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
                fired = db.execute(
                    "SELECT fired_at FROM executions WHERE broadcast_id = ?", (broadcast_id,)
                ).fetchone()
                rows = db.execute(
                    "SELECT issued_at, sent_at, acked_at, started_at, media "
                    "FROM speaker_commands WHERE source = ?",
                    (f"broadcast:{broadcast_id}",),
                ).fetchall()
                media = rows[0][4] if rows else None
                render = db.execute(
                    "SELECT engine, created_at, size, duration_s FROM audio_renders WHERE file = ?",
                    (media,),
                ).fetchone()
        except sqlite3.Error as exc:
            raise ServerError(f"the daemon's store cannot be read: {exc}") from exc
        issued = [_since(row[0], t0_wall) for row in rows]
        made = _since(render[1], t0_wall) if render else None
        return DaemonStamps(
            fired_s=_since(fired[0], t0_wall) if fired else None,
            issued_s=min((i for i in issued if i is not None), default=None),
            sent_s=[_since(row[1], t0_wall) for row in rows],
            acked_s=[_since(row[2], t0_wall) for row in rows],
            started_s=[_since(row[3], t0_wall) for row in rows],
            engine=render[0] if render else None,
            render_cached=made is not None and made < 0,
            audio_kb=render[2] / 1000 if render else None,
            audio_s=render[3] if render else None,
        )
