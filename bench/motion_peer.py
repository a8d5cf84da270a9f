"""Debian's `motion` (4.5.x) as the peer: the same RTSP sources relayed as MJPEG.

Configured to do what loacam does and nothing more: decode each camera's stream,
JPEG-encode it at the same quality for its stream viewers. Motion detection is paused
(`pause on`, threshold out of reach), nothing is written to disk, the web control is
off. One camera file per source, each with its own stream port on 127.0.0.1.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from procs import ServerError, spawn, stop, tail, wait_until

from drivers.sim.broker import free_port

MOTION = "/usr/bin/motion"


@dataclass
class MotionPeer:
    workdir: Path
    rtsp_urls: list[str]
    width: int
    height: int
    fps: int = 15  # what it captures
    max_rate: int = 15  # what it sends each viewer at most
    jpeg_quality: int = 80
    ports: list[int] = field(default_factory=list)
    _process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ServerError("motion is not running")
        return self._process.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / "motion.log"

    def stream_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}/" for port in self.ports]

    def start_blocking(self) -> None:
        """Start motion; whether it delivers frames is checked by the caller's probe."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "target").mkdir(exist_ok=True)
        self.ports = [free_port() for _ in self.rtsp_urls]
        config = self._write_config()
        self._log = (self.workdir / "motion.stderr").open("wb")
        self._process = spawn([MOTION, "-n", "-c", str(config)], log=self._log)

    def wait_connected_blocking(self, timeout_s: float) -> bool:
        """Wait until motion has opened every camera's RTSP stream (it logs each)."""

        def connected() -> bool:
            self.check_running()
            if not self.log_path.exists():
                return False
            log = self.log_path.read_text(errors="replace")
            return log.count(") connected") >= len(self.rtsp_urls)

        return wait_until(connected, timeout_s)

    def check_running(self) -> None:
        if self._process is None or self._process.poll() is not None:
            raise ServerError(f"motion exited:\n{self.diagnostics()}")

    def diagnostics(self) -> str:
        return f"{tail(self.log_path)}\n{tail(self.workdir / 'motion.stderr')}"

    def stop_blocking(self) -> None:
        if self._process is not None:
            # Motion takes a few seconds to close its RTSP sessions on SIGTERM.
            stop(self._process, timeout_s=15)
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _write_config(self) -> Path:
        cameras = []
        for index, (url, port) in enumerate(zip(self.rtsp_urls, self.ports, strict=True), 1):
            camera = self.workdir / f"camera{index}.conf"
            camera.write_text(
                f"camera_id {index}\n"
                f"camera_name cam{index}\n"
                f"netcam_url {url}\n"
                "netcam_params rtsp_transport=tcp\n"
                f"stream_port {port}\n",
                encoding="utf-8",
            )
            cameras.append(camera)
        main = self.workdir / "motion.conf"
        main.write_text(
            "\n".join(
                [
                    "daemon off",
                    "setup_mode off",
                    "log_level 6",
                    f"log_file {self.log_path}",
                    f"target_dir {self.workdir / 'target'}",
                    f"width {self.width}",
                    f"height {self.height}",
                    f"framerate {self.fps}",
                    # No motion work: detection paused, and a threshold no change reaches.
                    "pause on",
                    f"threshold {self.width * self.height + 1}",
                    "emulate_motion off",
                    "picture_output off",
                    "movie_output off",
                    "snapshot_interval 0",
                    "webcontrol_port 0",
                    "stream_localhost on",
                    "stream_auth_method 0",
                    "stream_motion off",
                    f"stream_maxrate {self.max_rate}",
                    f"stream_quality {self.jpeg_quality}",
                    # Camera files come last (motion's rule).
                    *(f"camera {camera}" for camera in cameras),
                    "",
                ]
            ),
            encoding="utf-8",
        )
        return main
