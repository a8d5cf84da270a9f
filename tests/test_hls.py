"""HLS pass-through: ffmpeg -c copy from the simulated camera's real RTSP, on demand."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from drivers.camera.hls import (
    SEGMENT_NAME,
    HlsCodecError,
    HlsNotFoundError,
    HlsSessions,
    HlsSettings,
    HlsUnavailableError,
    ffmpeg_command,
)
from drivers.camera.urls import with_credentials
from drivers.sim.rtsp import SimulatedRtsp, Stream
from tests.support import REPO, refusing_port

PASSWORD = "Kh0ngDuocLo-9f3a"  # a test secret that must never be logged
FAST = HlsSettings(idle_s=30, io_timeout_s=2, start_timeout_s=10, backoff_initial_s=0.2)


@pytest.fixture
def camera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedRtsp]:
    # One RTSP server per test: under load GStreamer's shared media can refuse or drop a
    # client while another is being set up, and one test's trouble must not become the next's.
    with SimulatedRtsp(label="motcua-1", log_dir=tmp_path_factory.mktemp("rtsp")) as running:
        yield running


def secret_url(base: str) -> str:
    return with_credentials(base, "admin", PASSWORD)


def ffmpeg_pids(directory: Path) -> list[int]:
    """Running ffmpeg processes whose command line names `directory` (a zombie has none)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # exited meanwhile
            continue
        if argv and argv[0].endswith(b"ffmpeg") and str(directory).encode() in b" ".join(argv):
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """A process that still runs (a zombie, exited but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


async def wait_for(check: Callable[[], object], within_s: float = 10.0) -> None:
    """Re-check a condition until it holds: polling, not a fixed sleep."""
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def retrying(call: Callable[[], Awaitable[bytes]], attempts: int = 20) -> bytes:
    """Call again after the `retry_after_s` the error asks for."""
    for _ in range(attempts):
        try:
            return await call()
        except HlsUnavailableError as error:
            if error.retry_after_s is None:
                raise
            await asyncio.sleep(error.retry_after_s)
    raise AssertionError("still unavailable")


@pytest.fixture
def hls_dir(tmp_path: Path) -> Path:
    return tmp_path / "hls"


@pytest.fixture
async def sessions(hls_dir: Path) -> AsyncIterator[HlsSessions]:
    async with HlsSessions(hls_dir, FAST) as running:
        yield running
    # Whatever the test did: no ffmpeg left, no segment directory left.
    assert ffmpeg_pids(hls_dir) == []
    assert entries(hls_dir) == []


def entries(directory: Path) -> list[Path]:
    return list(directory.iterdir())


async def probe(data: bytes, path: Path) -> dict[str, object]:
    await asyncio.to_thread(path.write_bytes, data)
    process = await asyncio.create_subprocess_exec(
        "ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    streams: list[dict[str, object]] = json.loads(out)["streams"]
    assert len(streams) == 1
    return streams[0]


def first_segment(playlist: bytes) -> str:
    names = [line for line in playlist.decode().splitlines() if SEGMENT_NAME.fullmatch(line)]
    assert names, playlist
    return names[0]


def test_command_copies_without_shell_or_decoding(tmp_path: Path) -> None:
    command = ffmpeg_command(FAST, "rtsp://u:p@cam/main", tmp_path, 0)
    assert command[0] == "ffmpeg"
    assert command[command.index("-c") + 1] == "copy"
    assert command[command.index("-timeout") + 1] == "2000000"  # µs
    assert command[command.index("-rtsp_transport") + 1] == "tcp"
    assert not {"-vf", "-filter_complex", "-c:v", "-vcodec"} & set(command)
    assert command[-1] == str(tmp_path / "index.m3u8")
    flags = command.index("-hls_flags") + 1
    assert "discont_start" not in command[flags]
    # A restarted ffmpeg marks the discontinuity for the player.
    assert "discont_start" in ffmpeg_command(FAST, "rtsp://cam/main", tmp_path, 7)[flags]


@pytest.mark.parametrize(("stream", "width"), [("main", 1280), ("sub", 640)])
async def test_playlist_and_h264_segments(
    camera: SimulatedRtsp,
    sessions: HlsSessions,
    hls_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    stream: Stream,
    width: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    key = f"motcua-1/{stream}"
    started = time.monotonic()
    first, second = await asyncio.gather(
        sessions.playlist(key, secret_url(camera.url(stream))),
        sessions.playlist(key, secret_url(camera.url(stream))),
    )
    latency = time.monotonic() - started

    assert first.startswith(b"#EXTM3U")
    assert b"#EXTINF" in first
    assert b"#EXTINF" in second
    segment = await sessions.segment(key, first_segment(first))
    info = await probe(segment, tmp_path / "segment.ts")
    assert (info["codec_name"], info["width"]) == ("h264", width)

    stats = sessions.stats(key)
    assert stats.starts == 1  # two concurrent first requests, one ffmpeg
    assert (stats.state, stats.codec, stats.width) == ("running", "h264", width)
    assert stats.segments_served == 1
    assert stats.pid is not None
    assert len(ffmpeg_pids(hls_dir)) == 1
    (directory,) = entries(hls_dir)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert latency < FAST.start_timeout_s
    # ffmpeg prints the input URL (credentials included) at info level: redacted here.
    assert "***@127.0.0.1" in caplog.text
    assert PASSWORD not in caplog.text
    assert quote(PASSWORD) not in caplog.text


async def test_segment_names_cannot_escape(
    camera: SimulatedRtsp, sessions: HlsSessions, hls_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "secret.txt").write_text("không được đọc")
    playlist = await sessions.playlist("cam", camera.url("sub"))
    assert await sessions.segment("cam", first_segment(playlist))

    bad = [
        "../secret.txt",
        "../../secret.txt",
        "index.m3u8",
        "..",
        "",
        "/etc/passwd",
        "seg_00000.ts/../../secret.txt",
        "seg_00000.ts\n",
        "seg_00000.ts.tmp",
        "seg_0000.ts",
        "seg_\u0660\u0660\u0660\u0660\u0661.ts",  # Arabic-Indic digits match \d, not [0-9]
        "SEG_00000.TS",
        "seg_00000.ts%00",
    ]
    for name in bad:
        with pytest.raises(HlsNotFoundError, match="không hợp lệ"):
            await sessions.segment("cam", name)
    with pytest.raises(HlsNotFoundError, match="hết hạn"):
        await sessions.segment("cam", "seg_99999.ts")
    with pytest.raises(HlsNotFoundError, match="chưa chạy"):
        await sessions.segment("other", first_segment(playlist))


async def test_segment_uris_can_carry_a_query(camera: SimulatedRtsp, sessions: HlsSessions) -> None:
    playlist = await sessions.playlist("cam", camera.url("sub"), segment_query="stream=sub")
    uris = [line for line in playlist.decode().splitlines() if line.startswith("seg_")]
    assert uris
    assert all(uri.endswith(".ts?stream=sub") for uri in uris)
    assert await sessions.segment("cam", uris[0].removesuffix("?stream=sub"))
    # No way to inject a line (or anything else) into the playlist.
    for bad in ["a\n#EXT-X-ENDLIST", "x y", "../", "a?b"]:
        with pytest.raises(ValueError, match="not allowed"):
            await sessions.playlist("cam", camera.url("sub"), segment_query=bad)


async def test_stops_when_unused(camera: SimulatedRtsp, hls_dir: Path) -> None:
    settings = HlsSettings(idle_s=0.5, start_timeout_s=10)
    async with HlsSessions(hls_dir, settings) as sessions:
        await sessions.playlist("cam", camera.url("sub"))
        pid = sessions.stats("cam").pid
        assert pid is not None
        (directory,) = entries(hls_dir)

        await wait_for(lambda: sessions.stats("cam").state == "stopped")
        # The reaper stops ffmpeg (SIGTERM, then reaped) and removes the directory.
        await wait_for(lambda: not alive(pid) and not directory.exists())
        assert ffmpeg_pids(hls_dir) == []
        # The next viewer starts it again.
        assert b"#EXTINF" in await sessions.playlist("cam", camera.url("sub"))
        assert sessions.stats("cam").starts == 2


# A port such as 34401 or 14041, or a path such as /Streaming/Channels/401 (an NVR's 4th
# channel), once read as an HTTP 401 or 404 in ffmpeg's message.
@pytest.mark.parametrize(
    ("digits", "path"),
    [("", "/main"), ("401", "/main"), ("404", "/main"), ("", "/Streaming/Channels/401")],
)
async def test_refused_camera_fails_fast_and_backs_off(
    sessions: HlsSessions,
    hls_dir: Path,
    caplog: pytest.LogCaptureFixture,
    digits: str,
    path: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    with refusing_port(digits) as port:
        url = secret_url(f"rtsp://127.0.0.1:{port}{path}")
        started = time.monotonic()
        with pytest.raises(HlsUnavailableError, match="không kết nối được tới camera") as first:
            await sessions.playlist("dead", url)
    assert time.monotonic() - started < FAST.start_timeout_s
    assert "refused" in first.value.detail.lower()

    # A second request inside the backoff window does not start another ffmpeg.
    with pytest.raises(HlsUnavailableError) as second:
        await sessions.playlist("dead", url)
    assert second.value.retry_after_s is not None
    assert second.value.retry_after_s > 0
    stats = sessions.stats("dead")
    assert (stats.starts, stats.failures, stats.state) == (1, 1, "retrying")
    assert ffmpeg_pids(hls_dir) == []
    texts = [caplog.text, str(first.value), first.value.detail, str(second.value)]
    assert all(PASSWORD not in text for text in texts)


async def test_silent_camera_times_out(sessions: HlsSessions, hls_dir: Path) -> None:
    # Accepts TCP (the kernel's backlog) but never answers RTSP.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        with pytest.raises(HlsUnavailableError, match="camera không gửi hình"):
            await sessions.playlist(
                "silent", secret_url(f"rtsp://127.0.0.1:{silent.getsockname()[1]}/main")
            )
        assert time.monotonic() - started < FAST.start_timeout_s
    assert ffmpeg_pids(hls_dir) == []


async def test_start_timeout_kills_ffmpeg(camera: SimulatedRtsp, hls_dir: Path) -> None:
    settings = HlsSettings(start_timeout_s=0.3)
    async with HlsSessions(hls_dir, settings) as sessions:
        with pytest.raises(HlsUnavailableError, match=r"sau 0\.3 giây"):
            await sessions.playlist("slow", camera.url("main"))
        assert ffmpeg_pids(hls_dir) == []
        assert entries(hls_dir) == []


async def test_hevc_camera_is_refused(hls_dir: Path, tmp_path: Path) -> None:
    with SimulatedRtsp(label="hevc", codec="h265", log_dir=tmp_path) as camera:
        async with HlsSessions(hls_dir, FAST) as sessions:
            with pytest.raises(HlsCodecError, match=r"H\.265.*H\.264"):
                await sessions.playlist("hevc", camera.url("sub"))
            assert sessions.stats("hevc").segments_written == 0
            assert ffmpeg_pids(hls_dir) == []


async def test_dead_ffmpeg_restarts_with_continued_numbering(
    camera: SimulatedRtsp, sessions: HlsSessions, hls_dir: Path
) -> None:
    url = camera.url("sub")
    await sessions.playlist("cam", url)
    before = sessions.stats("cam").pid
    assert before is not None
    await wait_for(lambda: sessions.stats("cam").segments_written >= 2)
    os.kill(before, signal.SIGKILL)
    await wait_for(lambda: not alive(before))

    playlist = await retrying(lambda: sessions.playlist("cam", url))

    after = sessions.stats("cam")
    assert after.pid not in {None, before}
    assert (after.starts, after.failures) == (2, 1)
    assert b"#EXT-X-DISCONTINUITY" in playlist
    # The player's media sequence goes on rather than back to 0.
    assert int(first_segment(playlist)[4:9]) >= 2
    assert len(ffmpeg_pids(hls_dir)) == 1


async def test_new_url_restarts_and_close_all_stops_everything(
    camera: SimulatedRtsp, hls_dir: Path
) -> None:
    sessions = HlsSessions(hls_dir, FAST)
    await sessions.start()
    await sessions.playlist("a", camera.url("sub"))
    await sessions.playlist("b", camera.url("sub"))
    old = sessions.stats("a").pid
    await sessions.playlist("a", camera.url("main"))
    assert sessions.stats("a").pid != old
    assert sessions.stats("a").width == 1280
    assert len(ffmpeg_pids(hls_dir)) == 2

    await sessions.close_all()
    await sessions.close_all()

    assert ffmpeg_pids(hls_dir) == []
    assert entries(hls_dir) == []
    assert sessions.stats("a").state == "stopped"
    with pytest.raises(HlsUnavailableError, match="đang dừng"):
        await sessions.playlist("a", camera.url("sub"))


async def test_leftovers_of_a_killed_daemon_are_removed(hls_dir: Path) -> None:
    leftover = hls_dir / "hls-cam-x1y2"
    await asyncio.to_thread(leftover.mkdir, parents=True)
    async with HlsSessions(hls_dir, FAST):
        assert entries(hls_dir) == []


CHILD = """
import asyncio, sys
from pathlib import Path
from drivers.camera.hls import HlsSessions

async def main() -> None:
    async with HlsSessions(Path(sys.argv[1])) as sessions:
        await sessions.playlist("cam", sys.argv[2])
        print(sessions.stats("cam").pid, flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_killed_daemon_leaves_no_ffmpeg(camera: SimulatedRtsp, hls_dir: Path) -> None:
    daemon = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(hls_dir), camera.url("sub"),
        cwd=REPO, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert daemon.stdout is not None
    async with asyncio.timeout(20):
        pid = int(await daemon.stdout.readline())
    assert ffmpeg_pids(hls_dir) == [pid]

    daemon.kill()  # SIGKILL: no cleanup code runs in the daemon
    await daemon.wait()

    # The kernel's parent-death signal ends ffmpeg.
    await wait_for(lambda: not alive(pid))
