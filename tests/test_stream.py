"""Live view core: one capture per camera stream, fanned out to viewers, over real RTSP."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from drivers.camera import placeholder
from drivers.camera.placeholder import BACKGROUND, render_placeholder_jpeg
from drivers.camera.stream import (
    CaptureOptions,
    Frame,
    LiveStreams,
    StreamKey,
    StreamsClosedError,
    Viewer,
)
from drivers.sim.rtsp import SimulatedRtsp
from tests.support import refusing_port

MAIN = StreamKey("motcua-1", "main")
SUB = StreamKey("motcua-1", "sub")


@pytest.fixture
def camera(tmp_path: Path) -> Iterator[SimulatedRtsp]:
    # Started from the test's (main) thread: the server's death signal follows it.
    with SimulatedRtsp(label="motcua-1", log_dir=tmp_path) as running:
        yield running


@pytest.fixture
async def streams() -> AsyncIterator[LiveStreams]:
    async with LiveStreams(linger_s=0.5) as running:
        yield running


async def until(check: Callable[[], Any], within_s: float = 10.0, interval: float = 0.05) -> Any:
    """Re-evaluate `check()` until it is truthy, within a deadline (never a fixed sleep)."""
    deadline = time.monotonic() + within_s
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s} s (last: {value!r})")
        await asyncio.sleep(interval)
    return value


async def take(
    viewer: Viewer, count: int, *, max_fps: float | None = None, within_s: float = 10.0
) -> list[Frame]:
    frames: list[Frame] = []
    async with asyncio.timeout(within_s):
        async for frame in viewer.frames(max_fps):
            frames.append(frame)
            if len(frames) == count:
                break
    return frames


async def frames_for(viewer: Viewer, seconds: float) -> list[Frame]:
    """Every frame a fast viewer receives during `seconds` from its first frame."""
    frames: list[Frame] = []
    end = None
    async for frame in viewer.frames():
        frames.append(frame)
        end = end or time.monotonic() + seconds
        if time.monotonic() >= end:
            break
    return frames


def decode(frame: Frame) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def rss_mb() -> float:
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def test_two_viewers_share_one_rtsp_session(
    camera: SimulatedRtsp, streams: LiveStreams
) -> None:
    async with (
        streams.subscribe(MAIN, camera.url("main")) as first,
        streams.subscribe(MAIN, camera.url("main")) as second,
    ):
        got_first, got_second = await asyncio.gather(take(first, 10), take(second, 10))
        viewers = streams.stats(MAIN).viewers

    assert camera.clients_connected == 1
    assert viewers == 2
    frames = got_first + got_second
    assert all(not f.placeholder and (f.width, f.height) == (1280, 720) for f in frames)
    assert decode(frames[-1]).shape == (720, 1280, 3)
    # The same encoded frames went to both: shared, not encoded per viewer.
    by_seq = {f.seq: f for f in got_first}
    shared = [f for f in got_second if f.seq in by_seq]
    assert shared
    assert all(by_seq[f.seq] is f for f in shared)


async def test_slow_viewer_does_not_slow_others_and_memory_stays_flat(
    camera: SimulatedRtsp, streams: LiveStreams
) -> None:
    slow_seqs: list[int] = []

    async def watch_slowly(viewer: Viewer) -> None:
        async for frame in viewer.frames():
            slow_seqs.append(frame.seq)
            await asyncio.sleep(1.0)  # the viewer's pace, not a synchronisation

    async def come_and_go(index: int) -> None:
        async with streams.subscribe(MAIN, camera.url("main")) as viewer:
            await take(viewer, 3, max_fps=None if index % 2 else 5.0)

    async def churn(stop: asyncio.Event) -> int:
        rounds = 0
        while not stop.is_set():
            await asyncio.gather(*(come_and_go(i) for i in range(20)))
            rounds += 1
        return rounds

    async with (
        streams.subscribe(MAIN, camera.url("main")) as normal,
        streams.subscribe(MAIN, camera.url("main")) as slow,
    ):
        await take(normal, 15)  # warmed up: decoder, encoder and buffers allocated
        slow_task = asyncio.create_task(watch_slowly(slow))
        stop_churn = asyncio.Event()
        churn_task = asyncio.create_task(churn(stop_churn))
        rss_before = rss_mb()
        frames = await frames_for(normal, 4.0)
        stop_churn.set()
        rounds = await churn_task
        rss_after = rss_mb()
        slow_task.cancel()
        await asyncio.wait([slow_task])

    delivered_fps = (len(frames) - 1) / (frames[-1].captured_at - frames[0].captured_at)
    assert delivered_fps >= 0.9 * camera.fps
    assert rounds >= 2
    # The slow viewer got the newest frame each time, skipping the ones in between.
    assert len(slow_seqs) >= 3
    assert all(later - earlier > 5 for earlier, later in itertools.pairwise(slow_seqs))
    assert rss_after - rss_before < 20


async def test_camera_outage_gives_placeholders_then_live_frames(tmp_path: Path) -> None:
    options = CaptureOptions(stall_after_s=2, backoff_initial_s=0.5, backoff_cap_s=1)
    kinds: list[bool] = []
    with SimulatedRtsp(label="flaky", stop_after_s=2, resume_after_s=3, log_dir=tmp_path) as cam:
        async with (
            LiveStreams(options=options) as streams,
            streams.subscribe(MAIN, cam.url("main"), camera_name="Bộ phận một cửa 1") as viewer,
        ):
            async with asyncio.timeout(20):
                async for frame in viewer.frames():
                    kinds.append(frame.placeholder)
                    if frame.placeholder:
                        lost_picture = frame
                    elif True in kinds:
                        break  # live again after placeholders, in the same iteration
            stats = streams.stats(MAIN)

    assert kinds[0] is False
    assert kinds.count(True) >= 2  # about one a second during the ~3 s outage
    assert (lost_picture.width, lost_picture.height) == (1280, 720)  # the stream's own size
    assert decode(lost_picture).shape == (720, 1280, 3)
    assert stats.status == "live"
    assert stats.reconnects >= 1
    assert cam.clients_connected >= 2


async def test_silent_camera_is_a_stall(camera: SimulatedRtsp) -> None:
    # SIGSTOP: the TCP connection stays open but nothing arrives, the case where only
    # the read timeout (stall_after_s) notices.
    options = CaptureOptions(
        stall_after_s=1.5, open_timeout_s=1.5, backoff_initial_s=0.3, backoff_cap_s=0.6
    )
    pid = camera.pid
    assert pid is not None
    kinds: list[bool] = []
    async with (
        LiveStreams(options=options) as streams,
        streams.subscribe(MAIN, camera.url("main")) as viewer,
    ):
        try:
            async with asyncio.timeout(20):
                async for frame in viewer.frames():
                    kinds.append(frame.placeholder)
                    if len(kinds) == 3:
                        os.kill(pid, signal.SIGSTOP)
                    elif frame.placeholder and kinds.count(True) == 1:
                        status_while_silent = streams.stats(MAIN).status
                        # Silent long enough for the read to time out, not just for
                        # the overdue-frame watchdog: the capture is re-opened.
                        await until(lambda: streams.stats(MAIN).reconnects >= 1)
                        os.kill(pid, signal.SIGCONT)
                    elif not frame.placeholder and True in kinds:
                        break
        finally:
            os.kill(pid, signal.SIGCONT)
        stats = streams.stats(MAIN)

    assert status_while_silent == "lost"
    assert kinds[:3] == [False, False, False]
    assert stats.status == "live"
    assert stats.reconnects >= 1


async def test_capture_runs_on_demand(camera: SimulatedRtsp, streams: LiveStreams) -> None:
    assert streams.stats(SUB).status == "stopped"
    async with streams.subscribe(SUB, camera.url("sub")) as viewer:
        await take(viewer, 2)
        assert streams.running() == (SUB,)
        assert camera.clients_open == 1
    # Lingering: a viewer coming back within linger_s finds the same capture.
    async with streams.subscribe(SUB, camera.url("sub")) as viewer:
        await take(viewer, 2)
    assert camera.clients_connected == 1

    await until(lambda: streams.stats(SUB).status == "stopped", within_s=5)
    assert streams.running() == ()
    await until(lambda: camera.clients_open == 0, within_s=5)


async def test_pinned_capture_keeps_running_and_snapshots(
    camera: SimulatedRtsp, streams: LiveStreams
) -> None:
    streams.pin(SUB, camera.url("sub"))
    await until(lambda: streams.stats(SUB).input_fps > 5)
    # Decoding, but nobody watches: nothing is JPEG-encoded.
    assert streams.latest(SUB) is None
    assert streams.stats(SUB).output_fps == 0.0

    snapshot = await streams.snapshot(SUB)
    assert snapshot is not None
    assert not snapshot.placeholder
    assert decode(snapshot).shape == (360, 640, 3)
    assert time.monotonic() - snapshot.captured_at < 1
    assert streams.latest(SUB) is snapshot
    assert streams.stats(SUB).viewers == 0  # a snapshot is not a viewer
    # Still running after several linger periods without a viewer.
    linger_end = time.monotonic() + 3 * streams.linger_s
    await until(lambda: time.monotonic() > linger_end or streams.stats(SUB).status != "live")
    assert streams.stats(SUB).status == "live"
    # A new viewer starts with a current picture, not the snapshot kept since then.
    assert time.monotonic() - snapshot.captured_at > 1
    subscribed_at = time.monotonic()
    async with streams.subscribe(SUB, camera.url("sub")) as viewer:
        (first,) = await take(viewer, 1)
    assert first.captured_at > subscribed_at - 0.5

    streams.unpin(SUB)
    await until(lambda: streams.stats(SUB).status == "stopped", within_s=5)
    await until(lambda: camera.clients_open == 0, within_s=5)
    assert await streams.snapshot(SUB) is None  # no capture: the caller falls back


async def test_rate_capped_viewer_and_lazy_encoding(
    camera: SimulatedRtsp, streams: LiveStreams
) -> None:
    async with streams.subscribe(SUB, camera.url("sub")) as viewer:
        frames = await take(viewer, 11, max_fps=5)
        stats = streams.stats(SUB)

    fps = 10 / (frames[-1].captured_at - frames[0].captured_at)
    # Capture times come in 1/15 s steps and delivery jitters on a busy machine: a few
    # frames' slack. Uncapped it would be 15, every second frame 7.5.
    assert 4.0 <= fps <= 6.0
    assert stats.input_fps > 10
    # Only the frames someone wants are encoded.
    assert stats.output_fps < 8


async def test_stats_are_plausible(camera: SimulatedRtsp, streams: LiveStreams) -> None:
    delivered = 0
    async with streams.subscribe(MAIN, camera.url("main")) as first:
        frames = await frames_for(first, 3.0)
        delivered += sum(len(f.jpeg) for f in frames)
        async with streams.subscribe(MAIN, camera.url("main")) as second:
            frames = await take(second, 2)
            delivered += sum(len(f.jpeg) for f in frames)
            stats = streams.stats(MAIN)

    assert stats.status == "live"
    assert 12 <= stats.input_fps <= 18
    assert 12 <= stats.output_fps <= 18
    assert stats.viewers == 2
    assert stats.decode_ms > 0
    assert stats.encode_ms > 0
    assert stats.bytes_sent == delivered
    assert stats.reconnects == 0
    assert stats.last_frame_age_s is not None
    assert stats.last_frame_age_s < 1
    assert (stats.width, stats.height) == (1280, 720)


async def test_unreachable_camera_gives_placeholders_and_no_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    options = CaptureOptions(backoff_initial_s=0.2, backoff_cap_s=0.4)
    caplog.set_level(logging.INFO, logger="drivers.camera.stream")
    with refusing_port() as port:
        url = f"rtsp://admin:s3cret-pw@127.0.0.1:{port}/main"
        async with (
            LiveStreams(options=options) as streams,
            streams.subscribe(MAIN, lambda: url) as viewer,
        ):
            frames = await take(viewer, 2, within_s=5)
            stats = streams.stats(MAIN)
            text = f"{caplog.text} {stats} {streams._captures[MAIN]!r}"

    assert all(f.placeholder for f in frames)
    assert (frames[0].width, frames[0].height) == (640, 360)
    assert stats.status == "lost"
    assert stats.last_error is not None
    assert "***@127.0.0.1" in stats.last_error
    assert "s3cret-pw" not in text


async def test_closed_streams_end_viewers_and_refuse_new_ones(camera: SimulatedRtsp) -> None:
    streams = LiveStreams()
    async with streams.subscribe(SUB, camera.url("sub")) as viewer:
        await take(viewer, 1)
        await streams.aclose()
        rest = await take(viewer, 100, within_s=2)  # ends, does not hang
    assert len(rest) <= 1
    with pytest.raises(StreamsClosedError):
        async with streams.subscribe(SUB, camera.url("sub")):
            pass


def test_placeholder_draws_vietnamese_text() -> None:
    jpeg = render_placeholder_jpeg(640, 360, camera_name="Bộ phận một cửa 1")

    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG"
    assert image.size == (640, 360)
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    background = np.array(BACKGROUND, dtype=np.int16)
    text_pixels = np.count_nonzero(np.abs(pixels - background).max(axis=2) > 80)
    assert text_pixels > 1000
    # DejaVu has the Vietnamese glyphs: the real message is drawn, marks included.
    font, vietnamese = placeholder._font(24)
    assert vietnamese
    assert font.getmask("ế").getbbox() != font.getmask("e").getbbox()


def test_placeholder_without_font_falls_back_to_ascii(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(placeholder, "FONT_PATH", Path("/nonexistent/NoSuchFont.ttf"))
    placeholder._font.cache_clear()
    placeholder._warn_missing_font.cache_clear()
    try:
        first = render_placeholder_jpeg(320, 180, camera_name="Bộ phận một cửa 1")
        second = render_placeholder_jpeg(320, 180)
    finally:
        placeholder._font.cache_clear()
        placeholder._warn_missing_font.cache_clear()

    assert Image.open(io.BytesIO(first)).size == (320, 180)
    assert Image.open(io.BytesIO(second)).size == (320, 180)
    assert caplog.text.count("not found") == 1
