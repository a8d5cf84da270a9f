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
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from dispatch_daemon import SpeakerDaemon
from procs import ServerError

from daemon.auth import Role


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
    """The dispatch benchmark's daemon, with an admin (broadcasts and uploads need the radio
    role), no quiet hours, and no resumed programme running into the next measurement."""

    role: ClassVar[Role] = Role.ADMIN

    def _config(self) -> dict[str, Any]:
        return {
            **super()._config(),
            "broadcasts": {
                "quiet_morning": None,
                "quiet_evening": None,
                "after_preemption": "interrupted",
            },
        }

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
