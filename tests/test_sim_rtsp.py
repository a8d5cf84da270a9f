"""The simulated camera's RTSP media, read with OpenCV over real RTSP/TCP on loopback."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.sim.broker import free_port
from drivers.sim.rtsp import SimulatedRtsp, SimulatorError, Stream
from tests.support import REPO, poll_until

# Bounded waits, so that a broken server fails a test instead of hanging it.
CAPTURE_PARAMS = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 5000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 3000]


@pytest.fixture(autouse=True)
def rtsp_over_tcp(monkeypatch: pytest.MonkeyPatch) -> None:
    # Interleaved TCP as the daemon uses it; a small probe so that opening a stream
    # costs a fraction of a second rather than FFmpeg's default ~2 s of probing.
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp|probesize;32768")


@pytest.fixture
def camera(tmp_path: Path) -> Iterator[SimulatedRtsp]:
    with SimulatedRtsp(label="motcua-1", log_dir=tmp_path) as running:
        yield running


def open_capture(url: str) -> cv2.VideoCapture:
    return cv2.VideoCapture(url, cv2.CAP_FFMPEG, CAPTURE_PARAMS)


def read_frame(capture: cv2.VideoCapture) -> np.ndarray | None:
    ok, frame = capture.read()
    return frame if ok else None


def fourcc(capture: cv2.VideoCapture) -> bytes:
    return int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little")


def frame_after(capture: cv2.VideoCapture, seconds: float) -> np.ndarray:
    """Keep reading (a live stream backs up if left unread) until `seconds` have passed."""
    started = time.monotonic()
    while True:
        frame = read_frame(capture)
        assert frame is not None
        if time.monotonic() - started >= seconds:
            return frame


def first_frame_shape(url: str) -> tuple[int, ...] | None:
    """Open, read one frame, close: None if the service refuses or sends nothing."""
    capture = open_capture(url)
    try:
        frame = read_frame(capture) if capture.isOpened() else None
    finally:
        capture.release()
    return None if frame is None else frame.shape


def log_text(camera: SimulatedRtsp) -> str:
    assert camera.log_path is not None
    return camera.log_path.read_text(errors="replace")


@pytest.mark.parametrize(("stream", "shape"), [("main", (720, 1280, 3)), ("sub", (360, 640, 3))])
def test_stream_sizes(camera: SimulatedRtsp, stream: Stream, shape: tuple[int, int, int]) -> None:
    url = camera.url(stream)
    assert url == f"rtsp://127.0.0.1:{camera.port}/{stream}"
    capture = open_capture(url)
    try:
        frame = read_frame(capture)
        codec = fourcc(capture)
    finally:
        capture.release()

    assert frame is not None
    assert frame.shape == shape
    assert codec == b"h264"


def test_picture_moves(camera: SimulatedRtsp) -> None:
    capture = open_capture(camera.url("sub"))
    try:
        first = read_frame(capture)
        assert first is not None
        later = frame_after(capture, 1.0)
    finally:
        capture.release()

    changed = np.count_nonzero(
        cv2.absdiff(
            cv2.cvtColor(first, cv2.COLOR_BGR2GRAY), cv2.cvtColor(later, cv2.COLOR_BGR2GRAY)
        )
        > 48
    )
    # The ball has moved and the clock and frame counter have changed.
    assert changed > 500


def test_several_viewers_of_one_stream(camera: SimulatedRtsp) -> None:
    captures = [open_capture(camera.url("main")) for _ in range(3)]
    try:
        frames = [read_frame(capture) for capture in captures]
    finally:
        for capture in captures:
            capture.release()

    assert all(frame is not None and frame.shape == (720, 1280, 3) for frame in frames)


def test_stop_then_resume(tmp_path: Path) -> None:
    with SimulatedRtsp(label="flaky", stop_after_s=2, resume_after_s=2, log_dir=tmp_path) as camera:
        reader = open_capture(camera.url("main"))
        try:
            assert read_frame(reader) is not None
            # The reader gets frames until the service is withdrawn, then a read fails.
            poll_until(lambda: read_frame(reader) is None, timeout=10, interval=0)
        finally:
            reader.release()
        assert "service withdrawn" in log_text(camera)
        assert "service resumed" not in log_text(camera)
        # Withdrawn means gone: no listening socket, so a new viewer is refused at once.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", camera.port), timeout=1).close()

        shape = poll_until(lambda: first_frame_shape(camera.url("main")), timeout=10, interval=0.2)

        assert shape == (720, 1280, 3)
        poll_until(lambda: "service resumed" in log_text(camera), timeout=2)
        assert camera.running


def test_h265_only_camera(tmp_path: Path) -> None:
    with SimulatedRtsp(label="h265", codec="h265", log_dir=tmp_path) as camera:
        capture = open_capture(camera.url("sub"))
        try:
            frame = read_frame(capture)
            codec = fourcc(capture)
        finally:
            capture.release()

    assert frame is not None
    assert frame.shape == (360, 640, 3)
    assert codec == b"hevc"


def test_port_in_use_is_a_plain_error(tmp_path: Path) -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        camera = SimulatedRtsp(port, log_dir=tmp_path)
        with pytest.raises(SimulatorError, match=f"cannot listen on 127.0.0.1:{port}"):
            camera.start_blocking()

    assert not camera.running


def test_stop_leaves_no_process(camera: SimulatedRtsp) -> None:
    pid = camera.pid
    assert pid is not None

    camera.stop_blocking()

    assert not camera.running
    assert not Path(f"/proc/{pid}").exists()


def gone(pid: int) -> bool:
    """No such process, or a zombie that only waits for init to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_killed_parent_leaves_no_server() -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\n"
            "from drivers.sim.rtsp import SimulatedRtsp\n"
            "camera = SimulatedRtsp()\n"
            "camera.start_blocking()\n"
            "print(camera.pid, flush=True)\n"
            "time.sleep(60)\n",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        server_pid = int(parent.stdout.readline())
        assert not gone(server_pid)

        parent.send_signal(signal.SIGKILL)
        parent.wait()

        poll_until(lambda: gone(server_pid), timeout=10)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
