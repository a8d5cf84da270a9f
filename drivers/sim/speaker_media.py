"""Audio for simulated speakers: download a URL, decode it with PyAV to learn its length.

One `MediaLibrary` serves a whole fleet: one HTTP connection pool, and one duration per
distinct file (by SHA-256 of its bytes), so a thousand speakers sent the same announcement
decode it once. A relayed stream is different: each speaker tunes in itself, with an
ffmpeg of its own decoding it in real time, as a device would.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from collections.abc import Callable

import aiohttp
import av

log = logging.getLogger(__name__)

# A speaker tunes in to an http(s) or HLS stream, nothing else (no file:, no concat:).
STREAM_PROTOCOLS = "http,https,tcp,tls,crypto"
STREAM_IO_TIMEOUT_S = 10.0
_PCM_CHUNK = 8192  # 8 kHz mono 16-bit: half a second


class MediaError(Exception):
    """Audio that cannot be played; `error` is the word of the `failed` event."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(f"{error}: {detail}")
        self.error = error


class MediaLibrary:
    """Downloads for every speaker of a fleet; `async with` opens and closes the HTTP pool."""

    def __init__(self, *, concurrent_downloads: int = 100, timeout_s: float = 60.0) -> None:
        self._concurrent = concurrent_downloads
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        # One decode per distinct file, shared by every speaker waiting for it.
        self._durations: dict[bytes, asyncio.Task[float]] = {}
        self.downloads = 0
        self.decodes = 0
        self.streams = 0  # live plays tuned in

    async def __aenter__(self) -> MediaLibrary:
        connector = aiohttp.TCPConnector(limit=self._concurrent)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        for task in self._durations.values():
            task.cancel()

    async def duration_of(self, url: str) -> float:
        """Seconds of audio at `url`; MediaError("download" or "decode") if it cannot play."""
        data = await self.download(url)
        # Hashing runs on the loop: for announcement-sized files (under a few MB) it
        # takes about a millisecond, less than handing it to a thread.
        digest = hashlib.sha256(data).digest()
        task = self._durations.get(digest)
        if task is None:
            self.decodes += 1
            # PyAV decodes in C for tens of milliseconds on a long file: in a thread so
            # the event loop (every other speaker's MQTT traffic) keeps running.
            task = asyncio.create_task(asyncio.to_thread(_decoded_duration_blocking, data))
            self._durations[digest] = task
        # Shielded: a waiting play that is pre-empted must not cancel the shared decode.
        return await asyncio.shield(task)

    async def listen(self, url: str, on_air: Callable[[], None]) -> None:
        """Decode the stream at `url` in real time until it ends (or the caller is
        cancelled: ffmpeg is killed, the connection closes); `on_air()` once audio
        decodes. MediaError("download" or "decode") if it never does."""
        argv = [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
            "-protocol_whitelist", STREAM_PROTOCOLS,
            "-rw_timeout", str(int(STREAM_IO_TIMEOUT_S * 1_000_000)),
            "-re",  # at the pace of playback, as a loudspeaker takes it
            "-i", url,
            "-map", "0:a:0", "-ac", "1", "-ar", "8000", "-f", "s16le", "pipe:1",
        ]  # fmt: skip
        self.streams += 1
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:  # no ffmpeg on this machine
            raise MediaError("download", f"cannot run ffmpeg: {exc}") from exc
        stdout, stderr = process.stdout, process.stderr
        if stdout is None or stderr is None:  # pragma: no cover - PIPE gives both
            raise RuntimeError("ffmpeg started without its pipes")
        errors = asyncio.create_task(_last_lines(stderr))
        heard = False
        try:
            while await stdout.read(_PCM_CHUNK):
                if not heard:
                    heard = True
                    on_air()
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()
            said = await errors
        if not heard:
            error = "decode" if "Invalid data" in said else "download"
            raise MediaError(error, f"{url}: {said[-200:] or 'no audio'}")

    async def download(self, url: str) -> bytes:
        session = self._session
        if session is None:
            raise RuntimeError("MediaLibrary used outside `async with`")
        self.downloads += 1
        try:
            async with session.get(url) as response:
                response.raise_for_status()
                return await response.read()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # ValueError: a bad URL
            raise MediaError("download", f"{url}: {exc or type(exc).__name__}") from exc


async def _last_lines(stream: asyncio.StreamReader, keep: int = 5) -> str:
    # Read to the end (a full pipe would stall ffmpeg), keeping only the last lines.
    lines: list[str] = []
    while line := await stream.readline():
        lines = [*lines[1 - keep :], line.decode(errors="replace").strip()]
    return " | ".join(filter(None, lines))


def _decoded_duration_blocking(data: bytes) -> float:
    """Decode every frame: a container's declared duration is an estimate (MP3 without a
    Xing header), and only a full decode proves the file is playable at all."""
    samples = 0
    rate = 0
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise MediaError("decode", "no audio stream")
            for frame in container.decode(container.streams.audio[0]):
                samples += frame.samples
                rate = frame.sample_rate
    # PyAV's own checks raise ValueError (a bad tag's UnicodeDecodeError among them)
    except (av.FFmpegError, ValueError) as exc:
        raise MediaError("decode", f"{type(exc).__name__}: {exc}") from exc
    if samples == 0 or rate == 0:
        raise MediaError("decode", "no audio samples")
    return samples / rate
