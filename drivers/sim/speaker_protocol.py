"""The simulated speaker's side of docs/mqtt-speakers.md: specs, parsing, payloads.

Pure code, no I/O. Written from the document alone, not from `drivers.speaker`: the
simulator is an independent peer, so a misreading on either side shows up in the tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypedDict
from urllib.parse import urlsplit

PROTOCOL_VERSION = 1
OFFLINE = b"offline"
ONLINE = b"online"
PRIORITY_RANK = {"normal": 0, "priority": 1, "emergency": 2}
OPS = frozenset({"play", "stop", "set_volume", "prefetch", "ping", "reboot"})
CAPABILITIES = ("volume", "prefetch", "reboot")
STREAM = "stream"  # plays a relayed stream: `play` with `live`, until `ends_at`
_CMD_ID = re.compile(r"[0-9a-f]{32}")

Leaf = Literal["status", "info", "state", "cmd", "ack", "event"]


@dataclass(frozen=True)
class SpeakerFaults:
    """Misbehaviour switched on for a test; all off by default."""

    refuse_codecs: frozenset[str] = frozenset()  # a play of such a URL: ack error "codec"
    download_delay_s: float = 0.0  # wall-clock seconds added before every download
    hold_acks: bool = False  # execute commands, publish their acks only once released
    ignore_ends_at: bool = False  # a live play goes on past its `ends_at` (until `stop`)


@dataclass(frozen=True)
class SimSpeakerSpec:
    id: str
    zone: str
    name: str = ""  # empty: the id
    model: str = "LoaSim 1"
    firmware: str = "1.0.0"
    codecs: tuple[str, ...] = ("wav", "mp3", "ogg", "opus", "flac")
    volume: int = 70
    signal_dbm: int | None = -75
    streams: bool = True  # the `stream` capability; off: a live play is `unsupported`
    faults: SpeakerFaults = field(default_factory=SpeakerFaults)


@dataclass(frozen=True)
class PlayRecord:
    """One executed `play` (a duplicate `cmd_id` never makes a second one)."""

    cmd_id: str
    item_id: str
    url: str
    priority: str
    volume: int
    # None while downloading or playing; then "completed", "stopped", "preempted" or
    # "failed:<error>", set as the matching event is queued for publishing.
    outcome: str | None = None
    duration_s: float | None = None
    live: bool = False  # a relayed stream, played as it comes


@dataclass(frozen=True)
class Command:
    """A `cmd` that passed validation; keys the `op` does not use keep their defaults."""

    cmd_id: str
    op: str
    expires_at: datetime
    url: str = ""
    priority: str = "normal"
    volume: int | None = None
    item_id: str | None = None
    live: bool = False
    ends_at: datetime | None = None  # a live play ends by itself then


class AckPayload(TypedDict):
    cmd_id: str
    ok: bool
    error: str | None
    ts: str


class CommandRefusedError(Exception):
    """A command answered with `ok: false`; `error` is the protocol's word."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(f"{error}: {detail}")
        self.error = error


def topic(site: str, speaker_id: str, leaf: Leaf) -> str:
    return f"loacam/{site}/spk/{speaker_id}/{leaf}"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def codec_of(url: str) -> str | None:
    """The format a URL names by its path's extension (`…/tone.MP3?sig=…` is mp3), if any."""
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    if "." not in name:
        return None
    return name.rsplit(".", 1)[1].lower()


def answerable_cmd_id(data: Mapping[str, object]) -> str | None:
    """The cmd_id to answer (even with bad_request), or None: nothing to answer to."""
    cmd_id = data.get("cmd_id")
    if not isinstance(cmd_id, str) or not cmd_id or len(cmd_id) > 256:
        return None
    try:
        return _unicode(cmd_id, "cmd_id")
    except CommandRefusedError:
        return None


def parse_command(data: Mapping[str, object], now: datetime) -> Command:
    """Validate a decoded `cmd`, in the order a speaker answers: malformed, expired, unknown.

    Raises CommandRefusedError and nothing else, whatever `data` holds.
    """
    cmd_id = data.get("cmd_id")
    if not isinstance(cmd_id, str) or not _CMD_ID.fullmatch(cmd_id):
        raise CommandRefusedError("bad_request", "cmd_id is not 32 lowercase hex digits")
    op = data.get("op")
    if not isinstance(op, str):
        raise CommandRefusedError("bad_request", "op is missing")
    _timestamp(data, "issued_at")
    expires_at = _timestamp(data, "expires_at")
    if expires_at <= now:
        raise CommandRefusedError("expired", f"expired at {iso(expires_at)}")
    if op not in OPS:
        raise CommandRefusedError("unsupported", f"unknown op {op!r}")
    base = Command(cmd_id=cmd_id, op=op, expires_at=expires_at)
    if op == "play":
        return _play(data, base)
    if op == "prefetch":
        return Command(
            cmd_id, op, expires_at, url=_url(data), item_id=_text(data, "item_id", optional=False)
        )
    if op == "set_volume":
        volume = _volume(data)
        if volume is None:
            raise CommandRefusedError("bad_request", "set_volume needs a volume")
        return Command(cmd_id, op, expires_at, volume=volume)
    if op == "stop":
        return Command(cmd_id, op, expires_at, item_id=_text(data, "item_id", optional=True))
    return base


def _play(data: Mapping[str, object], base: Command) -> Command:
    priority = data.get("priority")
    if not isinstance(priority, str) or priority not in PRIORITY_RANK:
        raise CommandRefusedError("bad_request", f"priority {priority!r}")
    if "volume" not in data:
        raise CommandRefusedError("bad_request", "volume is missing (null means: current)")
    live = data.get("live", False)
    if not isinstance(live, bool):
        raise CommandRefusedError("bad_request", f"live {live!r}")
    return Command(
        base.cmd_id,
        base.op,
        base.expires_at,
        url=_url(data),
        priority=priority,
        volume=_volume(data),
        item_id=_text(data, "item_id", optional=False),
        live=live,
        ends_at=_timestamp(data, "ends_at") if live else None,
    )


def _timestamp(data: Mapping[str, object], key: str) -> datetime:
    value = data.get(key)
    if not isinstance(value, str):
        raise CommandRefusedError("bad_request", f"{key} is missing")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandRefusedError("bad_request", f"{key} {value!r} is not ISO 8601") from None
    if moment.tzinfo is None:
        raise CommandRefusedError("bad_request", f"{key} {value!r} has no time zone")
    return moment


def _url(data: Mapping[str, object]) -> str:
    url = data.get("url")
    try:
        scheme = urlsplit(url).scheme if isinstance(url, str) else None
    except ValueError:  # e.g. an unclosed IPv6 bracket
        scheme = None
    if scheme not in {"http", "https"} or not isinstance(url, str):
        raise CommandRefusedError("bad_request", f"url {url!r}")
    return _unicode(url, "url")


def _volume(data: Mapping[str, object]) -> int | None:
    volume = data.get("volume")
    if volume is None:
        return None
    # bool is an int to Python, not to JSON's other readers
    if isinstance(volume, bool) or not isinstance(volume, int) or not 0 <= volume <= 100:
        raise CommandRefusedError("bad_request", f"volume {volume!r}")
    return volume


def _text(data: Mapping[str, object], key: str, *, optional: bool) -> str | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise CommandRefusedError("bad_request", f"{key} {value!r}")
    return _unicode(value, key)


def _unicode(value: str, key: str) -> str:
    # JSON can carry lone surrogates ("\ud800"); echoed in an event they would not
    # encode as UTF-8.
    try:
        value.encode()
    except UnicodeEncodeError:
        raise CommandRefusedError("bad_request", f"{key} is not valid Unicode") from None
    return value


def ack_payload(cmd_id: str, error: str | None, now: datetime) -> AckPayload:
    return {"cmd_id": cmd_id, "ok": error is None, "error": error, "ts": iso(now)}


def info_payload(spec: SimSpeakerSpec) -> bytes:
    return _json(
        {
            "protocol": PROTOCOL_VERSION,
            "model": spec.model,
            "firmware": spec.firmware,
            "name": spec.name or spec.id,
            "zones": [spec.zone],
            "codecs": list(spec.codecs),
            "capabilities": [*CAPABILITIES, *([STREAM] if spec.streams else [])],
        }
    )


def state_payload(
    playing: Mapping[str, str] | None, volume: int, signal_dbm: int | None, now: datetime
) -> bytes:
    return _json(
        {
            "playing": dict(playing) if playing is not None else None,
            "volume": volume,
            "signal_dbm": signal_dbm,
            "faults": [],
            "ts": iso(now),
        }
    )


def event_payload(
    event: str, cmd_id: str, item_id: str, now: datetime, extra: Mapping[str, object]
) -> bytes:
    return _json({"event": event, "cmd_id": cmd_id, "item_id": item_id, "ts": iso(now), **extra})


def encode_ack(ack: AckPayload) -> bytes:
    return _json(dict(ack))


def _json(value: Mapping[str, object]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
