"""An MQTT client of the benchmark's own that follows every `play` on every speaker.

Like `dispatch_observer.Observer`, it runs on paho's network thread and stamps each
message (CLOCK_MONOTONIC, shared with the benchmark's t0) as paho parses it; here it
also reads the JSON at once, so the benchmark can ask while the window is open which
speakers have taken the emergency and which have given up the normal item.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from dispatch_observer import Subscription

POLL_S = 0.02  # how often the benchmark looks; the stamps are paho's, not the poll's


@dataclass
class Play:
    """One `play` command as the speakers' broker relayed it (times: CLOCK_MONOTONIC)."""

    speaker: str
    priority: str
    item_id: str
    cmd_at: float
    ack_at: float | None = None
    ack_error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    reason: str | None = None  # finished: completed, stopped, preempted; failed: `failed:…`


@dataclass
class PlayObserver:
    host: str
    port: int
    site: str
    _plays: dict[str, Play] = field(default_factory=dict)  # by cmd_id
    _mqtt: Subscription | None = None

    @property
    def prefix(self) -> str:
        return f"loacam/{self.site}/spk/"

    async def __aenter__(self) -> PlayObserver:
        self._mqtt = Subscription(self.host, self.port, self.site, "bench-plays", self._on_message)
        await self._mqtt.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._mqtt is not None:
            await self._mqtt.close()

    def plays(self, priority: str, since: float) -> dict[str, Play]:
        """Per speaker, its latest play of this priority sent after `since`."""
        latest: dict[str, Play] = {}
        for play in list(self._plays.values()):
            if play.priority == priority and play.cmd_at >= since:
                known = latest.get(play.speaker)
                if known is None or play.cmd_at > known.cmd_at:
                    latest[play.speaker] = play
        return latest

    async def wait(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Until `done()` (checked every POLL_S); False at the timeout."""
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(POLL_S)
        return True

    # -- paho's thread ------------------------------------------------------------

    def _on_message(
        self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        at = time.monotonic()
        speaker, _, leaf = message.topic[len(self.prefix) :].partition("/")
        try:
            data = json.loads(message.payload)
        except ValueError:
            return
        if not isinstance(data, dict) or not isinstance(cmd_id := data.get("cmd_id"), str):
            return
        if leaf == "cmd":
            if data.get("op") == "play" and cmd_id not in self._plays:  # a re-send: the first
                self._plays[cmd_id] = Play(
                    speaker, str(data.get("priority")), str(data.get("item_id")), at
                )
            return
        play = self._plays.get(cmd_id)
        if play is None:
            return
        if leaf == "ack" and play.ack_at is None:
            play.ack_at = at
            play.ack_error = data.get("error") if isinstance(data.get("error"), str) else None
        elif leaf == "event":
            event = data.get("event")
            if event == "started" and play.started_at is None:
                play.started_at = at
            elif event in {"finished", "failed"} and play.finished_at is None:
                play.finished_at = at
                reason = data.get("reason") if event == "finished" else data.get("error")
                play.reason = str(reason) if event == "finished" else f"failed:{reason}"
