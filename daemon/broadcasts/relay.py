"""Relaying a radio station's stream: which URLs are allowed, and a check before it airs.

A relay is a broadcast of kind `url`: the province's (or VOV's) own http(s) stream,
played live by the speakers that can play streams until the broadcast's end. loacam
does not download, re-encode or sign it; each speaker tunes in itself
(docs/mqtt-speakers.md, `play` with `live`). What loacam does:

- `check_url`: only http:// and https://, without user:password (the URL goes to every
  speaker, and into the database and the logs);
- `check_stream`: at air time, ffprobe opens the URL and decodes a couple of seconds,
  so a station that is down or a URL that is a web page fails the air time with the
  reason instead of sending silence to every village. ffprobe runs as a subprocess
  (it may hang on a silent server; a subprocess can be killed, a thread cannot), with
  only the protocols http(s) and HLS need and only audio demuxers;
- the end, `relay_end`, enforced by `daemon.broadcasts.relay_stop.RelayStopper`.

A stream URL may carry a token in its query string: logs and messages show only
`display_url` (scheme, host, path).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from daemon.broadcasts.store import BroadcastRecord, ExecutionRecord

log = logging.getLogger(__name__)

SCHEMES = frozenset({"http", "https"})
MAX_URL_CHARS = 2000
# What an http(s) or HLS stream needs: TCP, TLS, HTTP, and `crypto` for AES-128 HLS
# segments. Not `file`, `udp`, `rtp`, `concat`, `data`, `subfile`...: a playlist or a
# redirect cannot make ffprobe read a local file or reach another protocol.
PROTOCOLS = "http,https,tcp,tls,crypto"
# Audio containers a station streams in (Icecast: MP3, AAC, Ogg; HLS: MPEG-TS or fMP4).
DEMUXERS = "mp3,aac,ogg,flac,wav,hls,mpegts,mov,matroska"
SAMPLE_S = 2.0  # decoded at air time: what proves the stream plays
MIN_AUDIO_S = 1.0  # less than this decoded: not a stream (an empty or broken file)
IO_TIMEOUT_S = 5.0  # ffprobe's own socket timeout; `timeout_s` kills it in any case
_MAX_OUTPUT = 1024 * 1024  # ffprobe's JSON for two seconds of frames is a few kB
_ERROR_TAIL = 20  # stderr lines kept to explain a failure

_NOT_AUDIO = ("Invalid data found", "Failed to read frame size", "could not find codec")
_HTTP_STATUS = re.compile(r"Server returned ([1-5][0-9X]{2}[^\n]*)")
_FFMPEG_PREFIX = re.compile(r"^\[[\w:-]+ @ 0x[0-9a-f]+\] ")
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"]+", re.IGNORECASE)


class RelayError(Exception):
    """A relay URL that is not allowed, or a stream that cannot be aired; the message
    says why in plain words, Vietnamese first (it is stored with the air time)."""


@dataclass(frozen=True)
class StreamInfo:
    """The first audio stream of a relayed URL, as ffprobe decoded it."""

    codec: str
    sample_rate: int
    channels: int


def display_url(url: str) -> str:
    """scheme://host[:port]/path: what may be logged or shown of a stream URL."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "(địa chỉ không hợp lệ)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def check_url(url: str) -> None:
    """Refuse what loacam will not relay (RelayError), without opening anything."""
    if len(url) > MAX_URL_CHARS or any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise RelayError("Địa chỉ tiếp sóng không hợp lệ (malformed stream URL)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it validates it
    except ValueError as exc:
        raise RelayError(f"Địa chỉ tiếp sóng không hợp lệ (malformed stream URL: {exc})") from None
    if parts.scheme.lower() not in SCHEMES:
        scheme = parts.scheme or "?"
        raise RelayError(
            "Chỉ tiếp sóng được địa chỉ http:// hoặc https:// "
            f"(only http and https streams can be relayed, not {scheme}:)"
        )
    if not parts.hostname:
        raise RelayError("Địa chỉ tiếp sóng thiếu tên máy chủ (the stream URL has no host)")
    if parts.username is not None or parts.password is not None:
        raise RelayError(
            "Địa chỉ tiếp sóng không được chứa tên đăng nhập hay mật khẩu: địa chỉ được gửi "
            "tới mọi cụm loa (no user:password in a stream URL: it is sent to every speaker)"
        )


def relay_end(broadcast: BroadcastRecord, execution: ExecutionRecord) -> datetime:
    """When this air time of a relay ends: its slot plus the broadcast's length.

    From the slot, not from when it was sent: a relay that goes out late (after a
    restart) still ends when the station's programme does, not minutes into the next.
    """
    return execution.slot + timedelta(seconds=broadcast.duration_s or 0)


def probe_command(url: str, *, ffprobe: str = "ffprobe", sample_s: float = SAMPLE_S) -> list[str]:
    """ffprobe's argument list (never a shell): decode `sample_s` of the first audio stream."""
    return [
        ffprobe,
        "-hide_banner",
        "-loglevel", "error",
        "-protocol_whitelist", PROTOCOLS,
        "-format_whitelist", DEMUXERS,
        "-rw_timeout", str(int(IO_TIMEOUT_S * 1_000_000)),
        "-user_agent", "loacam (relay check)",
        "-select_streams", "a:0",
        "-read_intervals", f"%+{sample_s:g}",
        # Asking for frames makes ffprobe decode them: a stream that only looks like
        # audio (a text file named .mp3) yields none.
        "-show_entries", "stream=codec_name,sample_rate,channels:frame=nb_samples",
        "-of", "json",
        url,
    ]  # fmt: skip


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Stream(_Payload):
    codec_name: str = ""
    sample_rate: int = 0
    channels: int = 0


class _Frame(_Payload):
    nb_samples: int = 0


class _Probe(_Payload):
    streams: list[_Stream] = []
    frames: list[_Frame] = []


async def check_stream(
    url: str, *, timeout_s: float = 10.0, ffprobe: str = "ffprobe", sample_s: float = SAMPLE_S
) -> StreamInfo:
    """Prove `url` is an allowed, reachable stream of audio that really decodes.

    Takes about `sample_s` on a live stream (a station sends a burst first). Raises
    RelayError with the reason; the ffprobe process is killed after `timeout_s`.
    """
    check_url(url)
    shown = display_url(url)
    code, out, errors = await _run(
        probe_command(url, ffprobe=ffprobe, sample_s=sample_s), timeout_s
    )
    try:
        probe = _Probe.model_validate_json(out or b"{}")
    except ValidationError:
        probe = _Probe()
    if code != 0 or not probe.streams:
        raise RelayError(_failure(errors, url, no_audio=code == 0))
    stream = probe.streams[0]
    samples = sum(frame.nb_samples for frame in probe.frames)
    decoded_s = samples / stream.sample_rate if stream.sample_rate > 0 else 0.0
    if decoded_s < min(MIN_AUDIO_S, sample_s / 2):
        raise RelayError(
            "Luồng không có âm thanh giải mã được "
            f"(only {decoded_s:.1f} s of audio decoded from {shown})"
        )
    info = StreamInfo(stream.codec_name, stream.sample_rate, stream.channels)
    log.info(
        "relay %s: %s, %d Hz, %d channel(s), %.1f s decoded",
        shown,
        info.codec,
        info.sample_rate,
        info.channels,
        decoded_s,
    )
    return info


async def _run(argv: list[str], timeout_s: float) -> tuple[int, bytes, list[str]]:
    """Run ffprobe; its exit code, its JSON and the last lines of its errors."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise RelayError(
            f"Máy chủ thiếu ffprobe để kiểm tra luồng tiếp sóng (cannot run ffprobe: {exc})"
        ) from exc
    if process.stdout is None or process.stderr is None:  # pragma: no cover - PIPE gives both
        raise RuntimeError("ffprobe started without its pipes")
    errors: deque[str] = deque(maxlen=_ERROR_TAIL)
    try:
        async with asyncio.timeout(timeout_s):
            out, _ = await asyncio.gather(
                _read_capped(process.stdout), _read_lines(process.stderr, errors)
            )
            code = await process.wait()
    except TimeoutError:
        raise RelayError(
            f"Không mở được luồng tiếp sóng: máy chủ không trả lời trong {timeout_s:g} giây "
            f"(stream unreachable: no audio within {timeout_s:g} s)"
        ) from None
    finally:
        if process.returncode is None:  # timed out, too much output, or cancelled
            process.kill()
            await process.wait()
    return code, out, list(errors)


async def _read_capped(stream: asyncio.StreamReader) -> bytes:
    data = bytearray()
    while chunk := await stream.read(65536):
        data += chunk
        if len(data) > _MAX_OUTPUT:
            raise RelayError(
                "Luồng không có âm thanh giải mã được (ffprobe said too much: not a stream)"
            )
    return bytes(data)


async def _read_lines(stream: asyncio.StreamReader, keep: deque[str]) -> None:
    # Read to the end (a full pipe would stall ffprobe), keeping only the last lines.
    while line := await stream.readline():
        if text := line.decode(errors="replace").strip():
            keep.append(text)


def _failure(errors: list[str], url: str, *, no_audio: bool) -> str:
    text = "\n".join(errors)
    detail = _clean(errors[-1], url) if errors else "no details"
    if status := _HTTP_STATUS.search(text):
        code = _clean(status.group(1), url)
        return (
            f"Không mở được luồng tiếp sóng: máy chủ báo lỗi {code[:3]} "
            f"(stream unreachable: HTTP {code})"
        )
    if no_audio:
        return "Luồng không có âm thanh giải mã được (the stream has no audio)"
    if any(word in text for word in _NOT_AUDIO):
        return f"Luồng không có âm thanh giải mã được (not an audio stream: {detail})"
    return f"Không mở được luồng tiếp sóng: máy chủ không trả lời (stream unreachable: {detail})"


def _clean(line: str, url: str) -> str:
    """One ffprobe line fit to store and show: no token, no password, no pointer."""
    line = line.replace(url, display_url(url))
    # Any other URL too (a redirect's): no user:password, no query string.
    line = _URL.sub(_shown, line)
    line = _FFMPEG_PREFIX.sub("", line)
    return line[:200]


def _shown(found: re.Match[str]) -> str:
    text = found.group(0)
    core = text.rstrip(":,.;)")  # the punctuation after a URL in a sentence stays
    return display_url(core) + text[len(core) :]
