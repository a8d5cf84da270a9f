"""H.264 pass-through for slow links: RTSP remuxed to HLS by `ffmpeg -c copy`, on demand.

Nothing is decoded, here or in ffmpeg: the camera's H.264 is copied into MPEG-TS
segments. One ffmpeg per key (camera stream), started by the first playlist request,
stopped `idle_s` after the last request, restarted with backoff when it dies.

H.265 is refused: ffmpeg could copy it, but browsers cannot play HEVC over HLS. The
explicit `h264_mp4toannexb` filter (a no-op on RTSP's Annex B H.264) makes ffmpeg fail
at start on any other codec, at no cost; ffmpeg's stderr names the codec for the
message. (An ffprobe first would cost a second RTSP session and about a second.)

ffmpeg's argv carries the camera's credentials (it takes them no other way): run the
daemon with systemd's `ProtectProc=invisible`. Every ffmpeg line logged is redacted.

The ffmpeg process itself (command line, stderr parsing, stop) is in
`drivers.camera.ffmpeg_hls`; its public names are re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from drivers.backoff import Backoff
from drivers.camera.ffmpeg_hls import (
    PLAYLIST,
    HlsCodecError,
    HlsError,
    HlsNotFoundError,
    HlsSession,
    HlsSettings,
    HlsUnavailableError,
    ffmpeg_command,
)

__all__ = [
    "PLAYLIST",
    "PLAYLIST_MEDIA_TYPE",
    "SEGMENT_MEDIA_TYPE",
    "SEGMENT_NAME",
    "HlsCodecError",
    "HlsError",
    "HlsNotFoundError",
    "HlsSession",
    "HlsSessions",
    "HlsSettings",
    "HlsStats",
    "HlsUnavailableError",
    "State",
    "ffmpeg_command",
]

log = logging.getLogger(__name__)

PLAYLIST_MEDIA_TYPE = "application/vnd.apple.mpegurl"  # serve with Cache-Control: no-cache
SEGMENT_MEDIA_TYPE = "video/mp2t"
# `seg_%05d.ts` grows a sixth digit after 99999 segments (~28 h at 1 s): accept up to
# ten ASCII digits, nothing else, so a name can never leave the session directory.
SEGMENT_NAME = re.compile(r"seg_[0-9]{5,10}\.ts")
_DIR_PREFIX = "hls-"
_POLL_S = 0.05

_SEGMENT_LINE = re.compile(rb"^(seg_[0-9]+\.ts)$", re.MULTILINE)
_QUERY = re.compile(r"[A-Za-z0-9_.~%=&-]*")

State = Literal["stopped", "starting", "running", "retrying"]


@dataclass(frozen=True)
class HlsStats:
    key: str
    state: State
    pid: int | None
    codec: str | None
    width: int | None
    height: int | None
    idle_s: float | None
    starts: int
    failures: int
    segments_written: int
    segments_served: int
    bytes_served: int
    last_error: str | None
    retry_in_s: float | None


@dataclass
class _Slot:
    """Everything kept per key across the sessions that come and go."""

    backoff: Backoff
    session: HlsSession | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_used: float = 0.0
    retry_at: float = 0.0
    last_error: HlsUnavailableError | None = None
    next_number: int = 0
    starts: int = 0
    failures: int = 0
    segments_served: int = 0
    bytes_served: int = 0


class HlsSessions:
    """On-demand HLS sessions under `base_dir`, which this object owns exclusively.

    Use as `async with HlsSessions(...) as hls:` (or `start()` / `close_all()`). A key
    names one camera stream, e.g. "motcua-1/sub"; the caller checks who may watch it.
    """

    def __init__(self, base_dir: Path, settings: HlsSettings | None = None) -> None:
        self.base_dir = base_dir
        self.settings = settings or HlsSettings()
        self._slots: dict[str, _Slot] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        await asyncio.to_thread(self._prepare_base_dir_blocking)
        self._reaper = asyncio.create_task(self._reap_forever())

    def _prepare_base_dir_blocking(self) -> None:
        self.base_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Left over by a daemon that was killed outright (its ffmpeg died with it).
        for stale in self.base_dir.glob(f"{_DIR_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)

    async def playlist(self, key: str, url: str, segment_query: str = "") -> bytes:
        """The live playlist, starting ffmpeg if needed and waiting for its first segment.

        `segment_query` (e.g. "stream=sub") is appended to each segment URI, which is
        relative to the playlist's URL and would otherwise lose the playlist's query.
        """
        if not _QUERY.fullmatch(segment_query):
            raise ValueError(f"segment_query has characters not allowed: {segment_query!r}")
        slot = self._slots.setdefault(key, self._new_slot())
        slot.last_used = time.monotonic()
        async with slot.lock:
            session = await self._ensure_running(key, slot, url)
        deadline = (session.started_at or 0.0) + self.settings.start_timeout_s
        while (data := session.read_playlist()) is None:
            # A waiting request is a use: the reaper must not stop a slow start.
            slot.last_used = now = time.monotonic()
            if session.exited:
                error = session.failure()
            elif now >= deadline:
                timeout = self.settings.start_timeout_s
                error = HlsUnavailableError(
                    f"Không tạo được luồng HLS: camera không gửi hình sau {timeout:g} giây",
                    detail=session.detail(),
                )
            else:
                await asyncio.sleep(_POLL_S)
                continue
            async with slot.lock:
                await self._retire(slot, session, error)
            raise error
        if segment_query:
            data = _SEGMENT_LINE.sub(rb"\1?" + segment_query.encode(), data)
        slot.bytes_served += len(data)
        return data

    async def segment(self, key: str, name: str) -> bytes:
        """One segment of the running session; bytes, because ffmpeg deletes old ones."""
        if not SEGMENT_NAME.fullmatch(name):
            raise HlsNotFoundError("Tên đoạn video không hợp lệ")
        slot = self._slots.get(key)
        session = None if slot is None else slot.session
        if slot is None or session is None:
            raise HlsNotFoundError("Luồng HLS của camera này chưa chạy")
        slot.last_used = time.monotonic()
        try:
            data = await asyncio.to_thread((session.directory / name).read_bytes)
        except FileNotFoundError:
            raise HlsNotFoundError("Đoạn video đã hết hạn hoặc chưa có") from None
        slot.segments_served += 1
        slot.bytes_served += len(data)
        return data

    def stats(self, key: str) -> HlsStats:
        slot = self._slots.get(key) or self._new_slot()
        session = slot.session
        now = time.monotonic()
        state: State = "stopped"
        if session is not None and not session.exited:
            state = "running" if session.segments_written else "starting"
        elif slot.retry_at > now:
            state = "retrying"
        return HlsStats(
            key=key,
            state=state,
            pid=None if session is None else session.pid,
            codec=None if session is None else session.codec,
            width=None if session is None else session.width,
            height=None if session is None else session.height,
            idle_s=now - slot.last_used if slot.last_used else None,
            starts=slot.starts,
            failures=slot.failures,
            segments_written=0 if session is None else session.segments_written,
            segments_served=slot.segments_served,
            bytes_served=slot.bytes_served,
            last_error=None if slot.last_error is None else str(slot.last_error),
            retry_in_s=slot.retry_at - now if slot.retry_at > now else None,
        )

    async def close_all(self) -> None:
        """Stop the reaper and every ffmpeg; safe to call twice."""
        self._closed = True
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
        sessions = [slot.session for slot in self._slots.values() if slot.session is not None]
        for slot in self._slots.values():
            slot.session = None
        await asyncio.gather(*(session.stop() for session in sessions))

    async def __aenter__(self) -> HlsSessions:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close_all()

    def _new_slot(self) -> _Slot:
        settings = self.settings
        return _Slot(Backoff(initial=settings.backoff_initial_s, cap=settings.backoff_cap_s))

    async def _ensure_running(self, key: str, slot: _Slot, url: str) -> HlsSession:
        session = slot.session
        if session is not None and session.exited:
            await self._retire(slot, session, session.failure())
        elif session is not None and session.url != url:
            log.info("%s: camera URL changed, restarting the HLS remux", key)
            slot.session = None
            await session.stop()
        if slot.session is not None:
            return slot.session
        if self._closed:
            raise HlsUnavailableError("Không tạo được luồng HLS: dịch vụ đang dừng")
        now = time.monotonic()
        if slot.last_error is not None and now < slot.retry_at:
            error = slot.last_error
            raise type(error)(str(error), detail=error.detail, retry_after_s=slot.retry_at - now)
        prefix = _DIR_PREFIX + re.sub(r"[^A-Za-z0-9_-]", "_", key)[:40] + "-"
        directory = Path(tempfile.mkdtemp(prefix=prefix, dir=self.base_dir))  # mode 0700
        slot.session = session = HlsSession(key, url, directory, self.settings, slot.next_number)
        slot.starts += 1
        try:
            await session.start()
        except HlsUnavailableError as error:
            await self._retire(slot, session, error)
            raise
        return session

    async def _retire(self, slot: _Slot, session: HlsSession, error: HlsUnavailableError) -> None:
        """Put a failed session away and schedule when the key may start again."""
        if slot.session is not session:
            return  # another request did it already
        slot.session = None
        await session.stop()
        slot.next_number = session.next_number
        if session.segments_written:
            slot.backoff.reset()  # it worked for a while: retry soon
        slot.failures += 1
        slot.last_error = error
        delay = slot.backoff.next_delay()
        slot.retry_at = (session.exited_at or time.monotonic()) + delay
        log.warning("%s: %s (%s); next try in %.1f s", session.key, error, error.detail, delay)

    async def _reap_forever(self) -> None:
        interval = min(5.0, max(0.05, self.settings.idle_s / 4))
        while True:
            await asyncio.sleep(interval)
            for slot in list(self._slots.values()):
                await self._reap(slot)

    async def _reap(self, slot: _Slot) -> None:
        async with slot.lock:
            session = slot.session
            if session is None:
                return
            if session.exited:
                await self._retire(slot, session, session.failure())
            elif time.monotonic() - slot.last_used > self.settings.idle_s:
                slot.session = None
                await session.stop()
                log.info(
                    "%s: HLS remux stopped, unused for %g s", session.key, self.settings.idle_s
                )
