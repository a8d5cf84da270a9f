"""MJPEG viewers for the fan-out benchmark, run as a worker process of `fanout.py`.

    python bench/viewers.py --url URL [--url URL ...] --viewers N --start T0 --end T1

Opens N raw-socket HTTP connections (spread over the URLs in turn) and counts the JPEG
parts each receives between the CLOCK_MONOTONIC times T0 and T1 (the clock is one for
the whole machine, so the orchestrator and the server share it). A part's latency is
its arrival time minus its `X-Frame-Time` header, when the server sends one (loacam
does, motion does not); `X-Placeholder: 1` parts are counted apart. Prints one JSON
object on stdout at the end. A bearer token, if any, comes from $BENCH_TOKEN.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

READ_SIZE = 1 << 18
JPEG_START = b"\xff\xd8"


class StreamFormatError(Exception):
    """The response is not the multipart JPEG stream we asked for."""


@dataclass
class ViewerResult:
    url: str
    frames: int = 0  # camera frames received inside the window
    placeholders: int = 0  # "signal lost" parts inside the window
    bytes: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    error: str | None = None


class Body:
    """An HTTP response body, de-chunked when it is `Transfer-Encoding: chunked`."""

    def __init__(self, reader: asyncio.StreamReader, *, chunked: bool) -> None:
        self._reader = reader
        self._chunked = chunked
        self._buffer = bytearray()

    async def readuntil(self, separator: bytes) -> bytes:
        while (end := self._buffer.find(separator)) < 0:
            await self._fill()
        return self._take(end + len(separator))

    async def readexactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            await self._fill()
        return self._take(size)

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def _fill(self) -> None:
        if not self._chunked:
            data = await self._reader.read(READ_SIZE)
            if not data:
                raise EOFError("the server closed the stream")
            self._buffer += data
            return
        size_line = await self._reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0], 16)
        if size == 0:
            raise EOFError("the server ended the stream")
        self._buffer += await self._reader.readexactly(size)
        await self._reader.readexactly(2)  # the chunk's own CRLF


@dataclass(frozen=True)
class Part:
    jpeg: bytes
    frame_time: float | None  # X-Frame-Time: CLOCK_MONOTONIC at capture
    placeholder: bool


async def open_stream(url: str, token: str | None) -> tuple[Body, asyncio.StreamWriter]:
    """GET `url` and return its multipart body once the headers say 200."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}\r\n".encode())
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status = head.split("\r\n", 1)[0]
    if " 200 " not in f"{status} ":
        writer.close()
        raise StreamFormatError(f"{url}: {status}")
    chunked = "transfer-encoding: chunked" in head.lower()
    return Body(reader, chunked=chunked), writer


async def next_part(body: Body) -> Part:
    # The previous part's trailing CRLF and the boundary line come before the headers.
    head = (await body.readuntil(b"\r\n\r\n")).decode("latin-1")
    headers = {
        name.strip().lower(): value.strip()
        for name, sep, value in (line.partition(":") for line in head.split("\r\n"))
        if sep
    }
    if "content-length" not in headers:
        raise StreamFormatError(f"a part without Content-Length: {head!r}")
    jpeg = await body.readexactly(int(headers["content-length"]))
    if not jpeg.startswith(JPEG_START):
        raise StreamFormatError("a part that is not a JPEG picture")
    frame_time = headers.get("x-frame-time")
    return Part(
        jpeg,
        float(frame_time) if frame_time else None,
        headers.get("x-placeholder") == "1",
    )


async def first_frame(url: str, token: str | None, timeout_s: float) -> float:
    """Seconds until the first camera frame (not a placeholder) arrives on `url`."""
    started = time.monotonic()
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                return await _first_frame(url, token, started)
            except (OSError, EOFError, asyncio.IncompleteReadError):
                # Motion refuses, or ends at once, its viewers until its camera is open.
                await asyncio.sleep(0.5)


async def _first_frame(url: str, token: str | None, started: float) -> float:
    body, writer = await open_stream(url, token)
    try:
        while (await next_part(body)).placeholder:
            pass
        return time.monotonic() - started
    finally:
        writer.close()


async def view(url: str, token: str | None, start: float, end: float) -> ViewerResult:
    result = ViewerResult(url)
    writer: asyncio.StreamWriter | None = None
    try:
        # The event loop's clock is CLOCK_MONOTONIC: the window's end is a deadline on it.
        async with asyncio.timeout_at(end):
            body, writer = await open_stream(url, token)
            while True:
                part = await next_part(body)
                now = time.monotonic()
                if now < start:
                    continue
                if part.placeholder:
                    result.placeholders += 1
                    continue
                result.frames += 1
                result.bytes += len(part.jpeg)
                if part.frame_time is not None:
                    result.latencies_ms.append(round((now - part.frame_time) * 1000, 2))
    except TimeoutError:
        pass  # the window ended
    except (OSError, EOFError, asyncio.IncompleteReadError, StreamFormatError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    return result


async def cpu_in_window(start: float, end: float) -> float:
    """This worker's own CPU seconds between `start` and `end`."""
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    first = time.process_time()
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    return time.process_time() - first


async def run(urls: list[str], viewers: int, start: float, end: float) -> dict[str, object]:
    token = os.environ.get("BENCH_TOKEN")
    cpu = asyncio.create_task(cpu_in_window(start, end))
    results = await asyncio.gather(
        *(view(urls[i % len(urls)], token, start, end) for i in range(viewers))
    )
    return {"cpu_s": await cpu, "viewers": [asdict(r) for r in results]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", action="append", required=True, help="an MJPEG stream URL")
    parser.add_argument("--viewers", type=int, required=True, help="connections to open")
    parser.add_argument("--start", type=float, required=True, help="window start (monotonic)")
    parser.add_argument("--end", type=float, required=True, help="window end (monotonic)")
    args = parser.parse_args()
    report = asyncio.run(run(args.url, args.viewers, args.start, args.end))
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
