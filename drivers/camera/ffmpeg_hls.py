"""One ffmpeg remuxing one camera's RTSP H.264 into HLS segments (`-c copy`).

`HlsSession` starts ffmpeg, follows its stderr (codec, size, segments written, the
last error lines, all redacted) and stops it; `drivers.camera.hls.HlsSessions` decides
when. The `h264_mp4toannexb` filter makes ffmpeg fail at start on anything but H.264,
and `failure()` turns ffmpeg's last lines into a plain-words error. ffmpeg's argv
carries the camera's credentials: see `drivers.camera.hls`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import re
import shutil
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drivers.camera.urls import redact

# Under the public module's name, as before the split: logging configuration and
# filters written for `drivers.camera.hls` keep covering ffmpeg's lines.
log = logging.getLogger("drivers.camera.hls")

PLAYLIST = "index.m3u8"
_STOP_GRACE_S = 3.0

_VIDEO = re.compile(r"Stream #0:\d+\S*: Video: (\w+)")
_SIZE = re.compile(r", (\d{2,5})x(\d{2,5})[ ,]")
_OPENED = re.compile(r"Opening '.*seg_(\d+)\.ts(?:\.tmp)?' for writing")
_ADDRESS = re.compile(r"[a-z][a-z0-9+.-]*://\S+")  # a URL in an error line


class HlsError(Exception):
    """Base of the HLS errors; the message is plain Vietnamese for the viewer."""


class HlsNotFoundError(HlsError):
    """No such segment (bad name, expired, or no session running): HTTP 404."""


class HlsUnavailableError(HlsError):
    """The camera cannot feed the stream: HTTP 503. `detail`: ffmpeg's last error lines."""

    def __init__(self, message: str, *, detail: str = "", retry_after_s: float | None = None):
        super().__init__(message)
        self.detail = detail
        self.retry_after_s = retry_after_s


class HlsCodecError(HlsUnavailableError):
    """The camera sends a codec browsers cannot play over HLS (H.265)."""


@dataclass(frozen=True)
class HlsSettings:
    ffmpeg: str = "ffmpeg"
    segment_s: float = 1.0  # a minimum: segments are cut at keyframes, so at least one GOP
    list_size: int = 6
    io_timeout_s: float = 5.0  # ffmpeg's RTSP socket timeout: a silent camera ends ffmpeg
    start_timeout_s: float = 15.0  # first request: wait this long for the first segment
    idle_s: float = 30.0
    # A small probe: stream copy needs no frame rate, and ffmpeg's default probing
    # holds the first segment back by ~1 s (measured 1.3 s vs 2.3 s to first playlist).
    probe_bytes: int = 32768
    backoff_initial_s: float = 1.0
    backoff_cap_s: float = 30.0


def ffmpeg_command(settings: HlsSettings, url: str, directory: Path, start: int) -> list[str]:
    """ffmpeg's argument list (never a shell): RTSP/TCP in, HLS of copied H.264 out."""
    flags = "delete_segments+omit_endlist+independent_segments+temp_file"
    if start:
        flags += "+discont_start"  # a restarted ffmpeg: timestamps start again
    return [
        settings.ffmpeg,
        *("-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info"),
        *("-rtsp_transport", "tcp", "-allowed_media_types", "video"),
        # ffmpeg 5.1 (Debian 12): `-timeout` in µs is the RTSP socket timeout;
        # the older `-stimeout` is rejected as an unknown option.
        *("-timeout", str(int(settings.io_timeout_s * 1_000_000))),
        *("-probesize", str(settings.probe_bytes), "-analyzeduration", "1000000"),
        *("-i", url, "-map", "0:v:0", "-c", "copy", "-bsf:v", "h264_mp4toannexb", "-an"),
        *("-f", "hls", "-hls_time", f"{settings.segment_s:g}"),
        *("-hls_list_size", str(settings.list_size), "-hls_flags", flags),
        *("-start_number", str(start)),
        *("-hls_segment_filename", str(directory / "seg_%05d.ts"), str(directory / PLAYLIST)),
    ]


def _die_with_parent_preexec() -> Callable[[], None]:
    """Between fork and exec: the kernel SIGTERMs ffmpeg when the forking thread ends,
    so a daemon killed outright leaves no orphan ffmpeg. asyncio forks from the event
    loop's thread (the daemon's main thread). libc is looked up here, in the parent.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def set_death_signal() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return set_death_signal


class HlsSession:
    """One ffmpeg remuxing one RTSP stream into a private directory."""

    def __init__(
        self, key: str, url: str, directory: Path, settings: HlsSettings, start_number: int = 0
    ) -> None:
        self.key = key
        self.url = url
        self.directory = directory
        self.settings = settings
        self.codec: str | None = None
        self.width: int | None = None
        self.height: int | None = None
        self.segments_written = 0
        self.next_number = start_number
        self.started_at: float | None = None
        self.exited_at: float | None = None
        self._errors: deque[str] = deque(maxlen=4)
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stopper: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def exited(self) -> bool:
        return self.exited_at is not None

    async def start(self) -> None:
        try:
            self._process = await asyncio.create_subprocess_exec(
                *ffmpeg_command(self.settings, self.url, self.directory, self.next_number),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                # Its own session: a Ctrl-C at the daemon's terminal is not ffmpeg's.
                start_new_session=True,
                preexec_fn=_die_with_parent_preexec(),
            )
        except OSError as error:
            raise HlsUnavailableError(
                "Không tạo được luồng HLS: máy chủ không chạy được ffmpeg", detail=str(error)
            ) from error
        self.started_at = time.monotonic()
        self._reader = asyncio.create_task(self._follow(self._process))
        log.info("%s: HLS remux from %s, ffmpeg pid %s", self.key, redact(self.url), self.pid)

    async def _follow(self, process: asyncio.subprocess.Process) -> None:
        """Read ffmpeg's stderr to its end (a full pipe would stall ffmpeg), then reap it."""
        stderr = process.stderr
        while stderr is not None:
            try:
                raw = await stderr.readline()
            except ValueError:  # a line over the reader's limit: dropped, keep reading
                continue
            if not raw:
                break
            self._parse(redact(raw.decode(errors="replace").strip()))
        status = await process.wait()
        self.exited_at = time.monotonic()
        if self._stopper is None:
            log.info("%s: ffmpeg exited by itself (status %s)", self.key, status)

    def _parse(self, line: str) -> None:
        if opened := _OPENED.search(line):
            self.segments_written += 1
            self.next_number = int(opened[1]) + 1
            return
        if self.codec is None and (video := _VIDEO.search(line)):
            self.codec = video[1]
            if size := _SIZE.search(line, video.end()):
                self.width, self.height = int(size[1]), int(size[2])
        if "[info]" not in line:  # warning, error, fatal: kept for the error message
            self._errors.append(line)
        log.debug("%s: ffmpeg: %s", self.key, line)

    def detail(self) -> str:
        return " | ".join(self._errors)

    def read_playlist(self) -> bytes | None:
        """The playlist once it lists a segment. Tiny file, renamed into place by ffmpeg."""
        try:
            data = (self.directory / PLAYLIST).read_bytes()
        except FileNotFoundError:
            return None
        return data if b"#EXTINF" in data else None

    def failure(self) -> HlsUnavailableError:
        detail = self.detail()
        if self.codec is not None and self.codec != "h264":
            name = "H.265" if self.codec == "hevc" else self.codec.upper()
            return HlsCodecError(
                f"Camera gửi hình {name}, trình duyệt chỉ xem được H.264: "
                "hãy chọn H.264 cho luồng này trong cài đặt camera",
                detail=detail,
            )
        # The camera's address is no status: port 34401 or /Streaming/Channels/401 is no 401.
        text = _ADDRESS.sub(" ", detail.lower())
        if re.search(r"\b401\b", text):
            reason = "camera từ chối tên đăng nhập hoặc mật khẩu"
        elif re.search(r"\b404\b", text):
            reason = "camera không có luồng này"
        elif "refused" in text or "unreachable" in text or "no route" in text:
            reason = "không kết nối được tới camera"
        else:
            reason = "camera không gửi hình"
        return HlsUnavailableError(f"Không tạo được luồng HLS: {reason}", detail=detail)

    async def stop(self) -> None:
        """Stop ffmpeg (SIGTERM, then SIGKILL), remove the directory. Idempotent.

        Shielded: a cancelled caller (a viewer gone) must not leave ffmpeg or files behind.
        """
        if self._stopper is None:
            self._stopper = asyncio.create_task(self._stop())
        await asyncio.shield(self._stopper)

    async def _stop(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), _STOP_GRACE_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._reader is not None:
            await self._reader
        # A few files, but filesystem work stays off the event loop.
        await asyncio.to_thread(shutil.rmtree, self.directory, ignore_errors=True)
