"""A radio station on loopback: an endless MP3 stream, paced in real time, Icecast-style.

    async with StreamServer(make_stream_mp3(tmp_path)) as radio:
        url = radio.url("/live.mp3")
        await radio.wait_for(lambda r: r.listeners == 2)

The stream is a few seconds of real MP3 frames sent over and over, after a short burst
(as Icecast does, so a player starts at once), then at the bit rate. A client that asks
for `Icy-MetaData: 1` gets ICY metadata blocks between the audio, as from a real
station. `listeners` counts the clients connected to the stream now, so a test sees a
speaker tune in and hang up. Other paths answer what a wrong URL answers: a 404, an
HTML page, a text file named .mp3, and a server that never sends a byte.

Listens on 127.0.0.1 only; never connects anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

BYTE_RATE = 8000  # 64 kbit/s constant bit rate
BURST_S = 1.0
PACE_S = 0.1
META_INTERVAL = 8000
_MAX_HEAD = 16_384

PAGE = b"<!doctype html><html><body><h1>Dai phat thanh</h1><p>Trang chu</p></body></html>"
NOTES = b"Lich phat song tuan nay: thu hai 5h30, thu ba 5h30.\n" * 40


def make_stream_mp3(directory: Path, seconds: float = 4.0) -> bytes:
    """Bare MP3 frames at 64 kbit/s (no ID3 tag, no Xing header), so copies join cleanly."""
    path = directory / "station.mp3"
    subprocess.run(
        [
            "ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi",
            "-i", f"sine=frequency=523:duration={seconds}",
            "-ac", "1", "-ar", "44100", "-b:a", "64k",
            "-write_xing", "0", "-id3v2_version", "0", "-f", "mp3", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path.read_bytes()


class StreamServer:
    """`async with` listens on a free loopback port; `url(path)` names what it serves."""

    def __init__(self, mp3: bytes) -> None:
        self._mp3 = mp3
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Condition()
        self._streams: set[asyncio.Task[None]] = set()
        self.port = 0
        self.listeners = 0  # connected to the stream now
        self.tuned_in = 0  # every stream connection so far
        self.requests: list[str] = []  # request targets, in order (query strings included)

    async def __aenter__(self) -> StreamServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._streams):
                task.cancel()
            await asyncio.gather(*self._streams, return_exceptions=True)
            await self._server.wait_closed()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def wait_for(
        self,
        predicate: Callable[[StreamServer], bool],
        timeout: float = 20.0,  # noqa: ASYNC109 - the same shape as the speaker fleet's
    ) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._streams.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > _MAX_HEAD:
                return
            lines = head.decode("latin-1").split("\r\n")
            target = lines[0].split(" ")[1] if len(lines[0].split(" ")) == 3 else "/"
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines[1:] if line)
            }
            self.requests.append(target)
            await self._answer(target.split("?")[0], headers, writer)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # the client went away: what a station sees all day
        finally:
            if task is not None:
                self._streams.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(
        self, path: str, headers: dict[str, str], writer: asyncio.StreamWriter
    ) -> None:
        if path == "/live.mp3":
            await self._stream(writer, icy=headers.get("icy-metadata") == "1")
        elif path == "/page.html":
            await _reply(writer, "200 OK", "text/html; charset=utf-8", PAGE)
        elif path == "/notes.mp3":
            await _reply(writer, "200 OK", "audio/mpeg", NOTES)
        elif path == "/silent":
            await asyncio.Event().wait()  # accepts, then never answers
        else:
            await _reply(writer, "404 Not Found", "text/plain", b"not found\n")

    async def _stream(self, writer: asyncio.StreamWriter, *, icy: bool) -> None:
        head = "HTTP/1.0 200 OK\r\nContent-Type: audio/mpeg\r\nicy-name: Dai thu nghiem\r\n"
        head += "icy-br: 64\r\nCache-Control: no-cache\r\n"
        if icy:
            head += f"icy-metaint: {META_INTERVAL}\r\n"
        writer.write((head + "\r\n").encode())
        self.listeners += 1
        self.tuned_in += 1
        await self._notify()
        try:
            await self._send_audio(writer, icy=icy)
        finally:
            self.listeners -= 1
            await self._notify()

    async def _send_audio(self, writer: asyncio.StreamWriter, *, icy: bool) -> None:
        started = time.monotonic()
        sent = 0  # audio bytes
        until_meta = META_INTERVAL
        position = 0
        while True:
            due = int(BYTE_RATE * (BURST_S + time.monotonic() - started)) - sent
            while due > 0:
                size = min(due, len(self._mp3) - position, until_meta if icy else due)
                writer.write(self._mp3[position : position + size])
                position = (position + size) % len(self._mp3)
                sent += size
                due -= size
                until_meta -= size
                if icy and until_meta == 0:
                    writer.write(
                        _icy_block("Ban tin thu nghiem" if sent == META_INTERVAL else None)
                    )
                    until_meta = META_INTERVAL
            await writer.drain()  # a client gone: ConnectionResetError, the end
            await asyncio.sleep(PACE_S)


def _icy_block(title: str | None) -> bytes:
    if title is None:
        return b"\x00"
    text = f"StreamTitle='{title}';".encode()
    blocks = -(-len(text) // 16)
    return bytes([blocks]) + text.ljust(blocks * 16, b"\x00")


async def _reply(writer: asyncio.StreamWriter, status: str, content_type: str, body: bytes) -> None:
    writer.write(
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
