"""Real RTSP media for a simulated camera: `gst_rtsp_server.py` as a child process.

GStreamer's RTSP server needs PyGObject, which the system interpreter has and the
project's virtual environment does not; so the server is a separate script run by
`/usr/bin/python3`, and this module only starts, watches and stops it.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

from drivers.sim.broker import free_port
from drivers.sim.process import death_signal_preexec, stop_process

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("gst_rtsp_server.py")
HOST = "127.0.0.1"

Stream = Literal["main", "sub"]
Codec = Literal["h264", "h265"]


class SimulatorError(Exception):
    """A simulator could not be started."""


class SimulatedRtsp:
    """A camera's RTSP service on 127.0.0.1: `/main` 1280x720 and `/sub` 640x360.

    `stop_after_s`/`resume_after_s` make the service vanish (sessions torn down, new
    connections refused) after that much serving and come back after that much absence,
    repeatedly. Stop and start it again to simulate a camera reboot: the port is kept.

    `clients_connected` (every RTSP client connection since construction) and
    `clients_open` (connections open now) count what the server reports on stdout.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        label: str = "cam",
        fps: int = 15,
        stop_after_s: float | None = None,
        resume_after_s: float | None = None,
        codec: Codec = "h264",
        log_dir: Path | None = None,
    ) -> None:
        self.port = port or free_port(HOST)
        self.label = label
        self.fps = fps
        self.stop_after_s = stop_after_s
        self.resume_after_s = resume_after_s
        self.codec: Codec = codec
        self.log_dir = log_dir
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._events: threading.Thread | None = None
        self._clients_lock = threading.Lock()
        self._clients_connected = 0
        self._clients_open = 0

    def url(self, stream: Stream = "main") -> str:
        return f"rtsp://{HOST}:{self.port}/{stream}"

    @property
    def log_path(self) -> Path | None:
        """The server's stderr, kept when a `log_dir` was given (else an unnamed file)."""
        return None if self.log_dir is None else self.log_dir / self._log_name

    @property
    def _log_name(self) -> str:
        return f"rtsp-{self.label}-{self.port}.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def clients_connected(self) -> int:
        """RTSP client connections accepted so far, over every start of this camera."""
        with self._clients_lock:
            return self._clients_connected

    @property
    def clients_open(self) -> int:
        """RTSP client connections open now (0 while the server is not running)."""
        with self._clients_lock:
            return self._clients_open

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def command(self) -> list[str]:
        # -I: the daemon's environment (PYTHONPATH, a venv's PYTHONHOME) must not
        # leak into the system interpreter that has PyGObject.
        command = [
            SYSTEM_PYTHON,
            "-I",
            str(SERVER_SCRIPT),
            "--address",
            HOST,
            "--port",
            str(self.port),
            "--fps",
            str(self.fps),
            "--label",
            self.label,
            "--codec",
            self.codec,
        ]
        if self.stop_after_s:
            command += ["--stop-after", str(self.stop_after_s)]
        if self.resume_after_s:
            command += ["--resume-after", str(self.resume_after_s)]
        return command

    def start_blocking(self, timeout: float = 20.0) -> None:
        """Start the server and wait for its `READY` line."""
        if self.running:
            return
        self._log = self._open_log()
        try:
            self._process = subprocess.Popen(  # noqa: S603 - fixed interpreter, argument list
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._log,
                bufsize=0,
                # Its own session: a Ctrl-C meant for the daemon is not the camera's.
                start_new_session=True,
                preexec_fn=death_signal_preexec(),  # noqa: PLW1509 - one prctl, then exec
            )
        except OSError as error:
            self._close_log()
            raise SimulatorError(f"cannot run {SYSTEM_PYTHON}: {error}") from error
        try:
            rest = self._await_ready_blocking(self._process, timeout)
        except SimulatorError as error:
            tail = self._stderr_tail()
            self.stop_blocking()
            raise SimulatorError(f"{error}; stderr: {tail}") from None
        # Read on from a thread: the counts stay current, and a pipe nobody reads would
        # fill up and block the server's main loop on its next report.
        self._events = threading.Thread(
            target=self._read_events_blocking,
            args=(self._process, rest),
            name=f"rtsp-sim-{self.label}-stdout",
            daemon=True,
        )
        self._events.start()

    def _await_ready_blocking(self, process: subprocess.Popen[bytes], timeout: float) -> bytes:
        """Read the child's stdout until a full line, within `timeout` seconds.

        Returns what was read past that first line, for the event reader.
        """
        stdout = process.stdout
        if stdout is None:  # pragma: no cover - stdout=PIPE above
            raise SimulatorError("no stdout pipe")
        deadline = time.monotonic() + timeout
        received = b""
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while b"\n" not in received:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SimulatorError(f"RTSP server not ready in {timeout} s")
                if not selector.select(remaining):
                    continue
                chunk = os.read(stdout.fileno(), 4096)
                if not chunk:
                    process.wait()
                    raise SimulatorError(f"RTSP server exited with status {process.returncode}")
                received += chunk
        first, rest = received.split(b"\n", 1)
        line = first.decode(errors="replace").strip()
        if line != f"READY {self.port}":
            raise SimulatorError(f"unexpected first line from the RTSP server: {line!r}")
        return rest

    def _read_events_blocking(self, process: subprocess.Popen[bytes], pending: bytes) -> None:
        """Count the `CLIENT connected|closed <n>` lines until the server's stdout ends."""
        stdout = process.stdout
        if stdout is None:  # pragma: no cover - stdout=PIPE above
            return
        while True:
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._count_client_event(line.decode(errors="replace").split())
            try:
                chunk = os.read(stdout.fileno(), 4096)
            except (OSError, ValueError):  # closed under us: the server is gone anyway
                chunk = b""
            if not chunk:
                with self._clients_lock:
                    self._clients_open = 0
                return
            pending += chunk

    def _count_client_event(self, words: list[str]) -> None:
        if len(words) != 3 or words[0] != "CLIENT" or not words[2].isdigit():
            return
        with self._clients_lock:
            if words[1] == "connected":
                self._clients_connected += 1
            self._clients_open = int(words[2])

    def stop_blocking(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)
            events, self._events = self._events, None
            if events is not None:
                # The server has exited, so its end of the pipe is closed: EOF is near.
                events.join(timeout=5)
            if process.stdout is not None:
                process.stdout.close()
        self._close_log()

    def _open_log(self) -> IO[bytes]:
        if self.log_dir is None:
            return tempfile.TemporaryFile(prefix="loacam-rtsp-")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # Appended to across restarts, and read back for the error message.
        return (self.log_dir / self._log_name).open("a+b")

    def _stderr_tail(self, size: int = 800) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0, os.SEEK_END)
        self._log.seek(max(0, self._log.tell() - size))
        return self._log.read().decode(errors="replace").strip()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> SimulatedRtsp:
        self.start_blocking()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_blocking()
