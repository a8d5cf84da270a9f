"""Live view over real HTTP: one capture per stream, slow viewers, lost signal, HLS, access."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from daemon.auth import Role
from drivers.sim.broker import PrivateBroker
from drivers.sim.rtsp import SimulatedRtsp
from tests.camera_rig import Rig, camera_rig, camera_yaml, simulated

BOUNDARY = b"--loacamframe"


@pytest.fixture
def rtsp() -> Iterator[SimulatedRtsp]:
    """A camera's own RTSP server, so its client count is this test's alone."""
    with SimulatedRtsp(label="live") as server:
        yield server


async def parts(response: httpx.Response) -> AsyncIterator[tuple[dict[str, str], bytes]]:
    """Split a multipart/x-mixed-replace body into (headers, JPEG) parts."""
    buffer = b""
    async for chunk in response.aiter_bytes():
        buffer += chunk
        while True:
            start = buffer.find(BOUNDARY)
            head_end = buffer.find(b"\r\n\r\n", start)
            if start < 0 or head_end < 0:
                break
            lines = buffer[start + len(BOUNDARY) : head_end].decode().strip().split("\r\n")
            headers = dict(line.split(": ", 1) for line in lines if ": " in line)
            length = int(headers["Content-Length"])
            if len(buffer) < head_end + 4 + length:
                break
            body = buffer[head_end + 4 : head_end + 4 + length]
            buffer = buffer[head_end + 4 + length :]
            yield headers, body


async def count_frames(rig: Rig, path: str, seconds: float) -> int:
    headers = {"Authorization": f"Bearer {await rig.token(Role.LEADER)}"}
    async with (
        httpx.AsyncClient(base_url=rig.base_url, timeout=30) as client,
        client.stream("GET", path, headers=headers) as response,
    ):
        assert response.status_code == 200
        deadline = time.monotonic() + seconds
        frames = 0
        async for _headers, jpeg in parts(response):
            assert jpeg.startswith(b"\xff\xd8")
            frames += 1
            if time.monotonic() >= deadline:
                return frames
    raise AssertionError("the stream ended early")


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 2**20


async def test_two_viewers_share_one_rtsp_session(
    tmp_path: Path, broker: PrivateBroker, rtsp: SimulatedRtsp
) -> None:
    sim = simulated(rtsp)
    async with camera_rig(
        tmp_path, broker.port, {"cam": sim}, [camera_yaml("cam", sim)], serve_http=True
    ) as rig:
        await rig.wait_status("cam", "online")
        before = rtsp.clients_connected
        counts = await asyncio.gather(
            count_frames(rig, "/api/v1/cameras/cam/mjpeg?stream=sub", 3),
            count_frames(rig, "/api/v1/cameras/cam/mjpeg?stream=sub", 3),
        )
        assert min(counts) >= 20  # ~15 fps each, minus start-up
        assert rtsp.clients_connected - before == 1


async def test_a_slow_viewer_hurts_nobody_and_memory_stays_flat(
    tmp_path: Path, broker: PrivateBroker, rtsp: SimulatedRtsp
) -> None:
    sim = simulated(rtsp)
    async with camera_rig(
        tmp_path, broker.port, {"cam": sim}, [camera_yaml("cam", sim)], serve_http=True
    ) as rig:
        await rig.wait_status("cam", "online")
        assert rig.base_url is not None
        port = int(rig.base_url.rsplit(":", 1)[1])
        token = await rig.token(Role.LEADER)
        slow = socket.create_connection(("127.0.0.1", port))
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.sendall(
            f"GET /api/v1/cameras/cam/mjpeg?stream=main HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        reading = True

        def read_a_byte_a_second() -> None:
            while reading:
                slow.recv(1)
                time.sleep(1)  # the slow reader itself, not synchronisation

        reader = asyncio.create_task(asyncio.to_thread(read_a_byte_a_second))
        try:
            await count_frames(rig, "/api/v1/cameras/cam/mjpeg?stream=main", 2)  # warm up
            start_rss = rss_mb()
            frames = await count_frames(rig, "/api/v1/cameras/cam/mjpeg?stream=main", 4)
            assert frames / 4 >= 15 * 0.9  # the normal viewer keeps the source's pace
            assert rss_mb() - start_rss < 20
        finally:
            reading = False
            slow.close()
            await asyncio.gather(reader, return_exceptions=True)


async def test_a_lost_signal_shows_placeholders_then_live_on_the_same_connection(
    tmp_path: Path, broker: PrivateBroker
) -> None:
    with SimulatedRtsp(label="flaky", stop_after_s=4, resume_after_s=4) as flaky:
        sim = simulated(flaky)
        cameras = [camera_yaml("cam", sim, keepalive_s=60)]
        async with camera_rig(
            tmp_path, broker.port, {"cam": sim}, cameras, live={"stall_after_s": 2}, serve_http=True
        ) as rig:
            await rig.wait_status("cam", "online")
            headers = {"Authorization": f"Bearer {await rig.token(Role.LEADER)}"}
            seen: list[str] = []
            async with (
                httpx.AsyncClient(base_url=rig.base_url, timeout=30) as client,
                client.stream(
                    "GET", "/api/v1/cameras/cam/mjpeg?stream=sub", headers=headers
                ) as response,
            ):
                async with asyncio.timeout(40):
                    async for part_headers, _jpeg in parts(response):
                        kind = "placeholder" if part_headers["X-Placeholder"] == "1" else "live"
                        if not seen or seen[-1] != kind:
                            seen.append(kind)
                        if seen[-3:] == ["live", "placeholder", "live"]:
                            break
            assert seen[-3:] == ["live", "placeholder", "live"]


async def test_hls_is_remuxed_h264_without_decoding(
    tmp_path: Path, broker: PrivateBroker, rtsp: SimulatedRtsp
) -> None:
    sim = simulated(rtsp)
    async with camera_rig(tmp_path, broker.port, {"cam": sim}, [camera_yaml("cam", sim)]) as rig:
        await rig.wait_status("cam", "online")
        playlist = await rig.as_role(Role.DISTRICT, "GET", "/api/v1/cameras/cam/hls/index.m3u8")
        assert playlist.status_code == 403  # not shared with the district
        playlist = await rig.as_role(
            Role.LEADER, "GET", "/api/v1/cameras/cam/hls/index.m3u8?stream=main"
        )
        assert playlist.status_code == 200
        assert playlist.headers["content-type"].startswith("application/vnd.apple.mpegurl")
        segment = next(line for line in playlist.text.splitlines() if line.startswith("seg_"))
        data = await rig.as_role(Role.LEADER, "GET", f"/api/v1/cameras/cam/hls/{segment}")
        assert data.status_code == 200
        (tmp_path / "seg.ts").write_bytes(data.content)
        probe = await asyncio.to_thread(
            subprocess.run,
            ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(tmp_path / "seg.ts")],
            capture_output=True,
            text=True,
            check=True,
        )
        (video,) = json.loads(probe.stdout)["streams"]
        assert (video["codec_name"], video["width"]) == ("h264", 1280)
        assert rig.state.live.running() == ()  # nothing was decoded for this path
        traversal = await rig.as_role(
            Role.LEADER, "GET", "/api/v1/cameras/cam/hls/..%2F..%2Fetc%2Fpasswd"
        )
        assert traversal.status_code == 404


async def test_district_walks_every_media_path(
    tmp_path: Path, broker: PrivateBroker, rtsp: SimulatedRtsp
) -> None:
    shared, private = simulated(rtsp, serial="S"), simulated(rtsp, serial="P")
    cameras = [
        camera_yaml("shared", shared, share_with_district=True),
        camera_yaml("private", private),
    ]
    async with camera_rig(
        tmp_path, broker.port, {"shared": shared, "private": private}, cameras, serve_http=True
    ) as rig:
        await rig.wait_status("shared", "online")
        await rig.wait_status("private", "online")
        headers = {"Authorization": f"Bearer {await rig.token(Role.DISTRICT)}"}
        async with httpx.AsyncClient(base_url=rig.base_url, timeout=30) as client:
            segment = None
            for camera, wanted in (("private", 403), ("shared", 200)):
                base = f"/api/v1/cameras/{camera}"
                for path in (
                    f"{base}/snapshot.jpg",
                    f"{base}/hls/index.m3u8",
                    f"{base}/mjpeg?stream=sub",
                ):
                    async with client.stream("GET", path, headers=headers) as response:
                        assert response.status_code == wanted, path
                        if path.endswith("m3u8") and wanted == 200:
                            text = (await response.aread()).decode()
                            segment = next(
                                line for line in text.splitlines() if line.startswith("seg_")
                            )
                assert segment is None or camera == "shared"
                if camera == "private":
                    response = await client.get(f"{base}/hls/seg_00000.ts", headers=headers)
                    assert response.status_code == 403
            assert segment is not None
            response = await client.get(f"/api/v1/cameras/shared/hls/{segment}", headers=headers)
            assert response.status_code == 200
            # The newest frame of a running capture: the MJPEG above left it lingering.
            private = await client.get(
                "/api/v1/cameras/private/live.jpg?stream=sub", headers=headers
            )
            assert private.status_code == 403
            shared = await client.get("/api/v1/cameras/shared/live.jpg?stream=sub", headers=headers)
            assert shared.status_code == 200
            assert shared.content.startswith(b"\xff\xd8")


async def test_a_live_view_ends_with_its_login(
    tmp_path: Path, broker: PrivateBroker, rtsp: SimulatedRtsp
) -> None:
    sim = simulated(rtsp)
    async with camera_rig(
        tmp_path, broker.port, {"cam": sim}, [camera_yaml("cam", sim)], serve_http=True
    ) as rig:
        await rig.wait_status("cam", "online")
        tokens = rig.state.tokens
        async with httpx.AsyncClient(base_url=rig.base_url, timeout=30) as client:
            # One frame first: the capture is then running (it lingers between viewers), so
            # the short login below is not spent waiting for the camera on a busy machine.
            warm = {"Authorization": f"Bearer {await rig.token(Role.LEADER)}"}
            path = "/api/v1/cameras/cam/mjpeg?stream=sub"
            async with client.stream("GET", path, headers=warm) as response:
                assert await anext(parts(response))
        short, _claims = tokens.issue(
            "leader", Role.LEADER, now=_now_minus(tokens.ttl.total_seconds() - 2)
        )
        headers = {"Authorization": f"Bearer {short}"}
        async with (
            httpx.AsyncClient(base_url=rig.base_url, timeout=30) as client,
            client.stream(
                "GET", "/api/v1/cameras/cam/mjpeg?stream=sub", headers=headers
            ) as response,
        ):
            assert response.status_code == 200
            async with asyncio.timeout(15):
                frames = [jpeg async for _headers, jpeg in parts(response)]
        assert 0 < len(frames) < 15 * 6  # some frames, then the stream ended at expiry


def _now_minus(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


async def test_stats_show_in_the_detail_and_in_metrics(
    tmp_path: Path, broker: PrivateBroker, rtsp: SimulatedRtsp
) -> None:
    sim = simulated(rtsp)
    async with camera_rig(
        tmp_path, broker.port, {"cam": sim}, [camera_yaml("cam", sim)], serve_http=True
    ) as rig:
        await rig.wait_status("cam", "online")
        headers = {"Authorization": f"Bearer {await rig.token(Role.LEADER)}"}
        watching = asyncio.Event()

        async def watch() -> None:
            # Keeps reading: a viewer that stops reading is a viewer that has left.
            async with httpx.AsyncClient(base_url=rig.base_url, timeout=30) as client:
                path = "/api/v1/cameras/cam/mjpeg?stream=sub"
                async with client.stream("GET", path, headers=headers) as response:
                    frames = 0
                    async for _headers, _jpeg in parts(response):
                        frames += 1
                        if frames == 45:  # three seconds of a 15 fps source
                            watching.set()

        viewer = asyncio.create_task(watch())
        try:
            await asyncio.wait_for(watching.wait(), 20)
            detail = (await rig.as_role(Role.TECHNICIAN, "GET", "/api/v1/cameras/cam")).json()
            metrics = (await rig.as_role(Role.TECHNICIAN, "GET", "/metrics")).text
        finally:
            viewer.cancel()
            await asyncio.gather(viewer, return_exceptions=True)
        sub = detail["live"]["sub"]
        assert sub["status"] == "live"
        assert sub["viewers"] == 1
        assert 10 <= sub["input_fps"] <= 20
        assert sub["decode_ms"] > 0
        assert sub["encode_ms"] > 0
        assert sub["bytes_sent"] > 0
        assert sub["last_frame_age_s"] < 1
        assert (sub["width"], sub["height"]) == (640, 360)
        assert detail["live"]["main"]["status"] == "stopped"
        assert 'loacam_live_viewers{camera="cam",stream="sub"} 1.0' in metrics
        assert 'loacam_live_input_fps{camera="cam",stream="sub"}' in metrics
