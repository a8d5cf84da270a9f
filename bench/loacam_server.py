"""`loacam run` as the measured process: its config, a viewer account, its lifecycle."""

from __future__ import annotations

import argparse
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import yaml
from procs import ServerError, start_loacam, stop, tail, wait_until

from drivers.sim.broker import free_port

REPO = Path(__file__).resolve().parents[1]
USER = "bench"
READY_STATUSES = {"online", "degraded"}


@dataclass
class LoacamServer:
    """One daemon with `len(onvif_ports)` cameras named cam1..camM."""

    workdir: Path
    broker_port: int
    onvif_ports: list[int]
    camera_password: str
    stream: str = "main"
    jpeg_quality: int = 80
    port: int = field(default_factory=free_port)
    profile: Path | None = None  # run under cProfile, its stats written here at exit
    tree: Path = REPO  # the source tree whose `daemon` package is run
    token: str = ""
    _process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ServerError("loacam is not running")
        return self._process.pid

    @property
    def camera_ids(self) -> list[str]:
        return [f"cam{index}" for index in range(1, len(self.onvif_ports) + 1)]

    def stream_urls(self, fps: float | None) -> list[str]:
        cap = f"&fps={fps:g}" if fps else ""
        return [
            f"{self.base}/api/v1/cameras/{camera}/mjpeg?stream={self.stream}{cap}"
            for camera in self.camera_ids
        ]

    @property
    def log_path(self) -> Path:
        return self.workdir / "loacam.log"

    def start_blocking(self, timeout_s: float = 60.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        password = secrets.token_urlsafe(18)
        self._log = self.log_path.open("wb")
        self._process = start_loacam(
            self.tree,
            config,
            user=USER,
            role="leader",
            password=password,
            log=self._log,
            profile=self.profile,
        )
        if not wait_until(self._answers, timeout_s):
            raise ServerError(f"loacam did not answer in {timeout_s:g} s:\n{tail(self.log_path)}")
        login = httpx.post(
            f"{self.base}/api/v1/auth/login",
            json={"username": USER, "password": password},
            timeout=30,
        )
        login.raise_for_status()
        self.token = login.json()["access_token"]
        if not wait_until(self._cameras_ready, timeout_s):
            raise ServerError(f"cameras not online in {timeout_s:g} s:\n{tail(self.log_path)}")

    def live_stats(self) -> dict[str, dict[str, Any]]:
        """The daemon's own figures per camera for the benchmarked stream (input fps,
        decode and encode ms per frame...)."""
        stats = {}
        with httpx.Client(base_url=self.base, headers=self._auth(), timeout=10) as client:
            for camera in self.camera_ids:
                detail = client.get(f"/api/v1/cameras/{camera}").raise_for_status().json()
                stats[camera] = detail["live"][self.stream]
        return stats

    def stop_blocking(self) -> None:
        if self._process is not None:
            stop(self._process, timeout_s=15)
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _write_config(self) -> Path:
        cameras = [
            {
                "id": camera,
                "name": f"Bench {camera}",
                "host": "127.0.0.1",
                "port": onvif_port,
                "username": "admin",
                "password": self.camera_password,
            }
            for camera, onvif_port in zip(self.camera_ids, self.onvif_ports, strict=True)
        ]
        config = {
            "site": "bench",
            "http": {"host": "127.0.0.1", "port": self.port, "graceful_timeout_s": 1},
            "storage": {"path": str(self.workdir / "data")},
            "mqtt": {"host": "127.0.0.1", "port": self.broker_port},
            "cameras": cameras,
            "live": {"jpeg_quality": self.jpeg_quality},
        }
        path = self.workdir / "loacam.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _answers(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise ServerError(f"loacam exited ({self._process.returncode}):\n{tail(self.log_path)}")
        try:
            return httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def _cameras_ready(self) -> bool:
        cameras = httpx.get(f"{self.base}/api/v1/cameras", headers=self._auth(), timeout=5)
        return all(camera["status"] in READY_STATUSES for camera in cameras.json())


def add_daemon_options(parser: argparse.ArgumentParser, *, profile_file: str) -> None:
    """The options every benchmark of loacam takes: which tree to run, JSON out, profiling."""
    parser.add_argument(
        "--daemon-tree",
        type=Path,
        default=REPO,
        metavar="DIR",
        help="run loacam from this source tree, to measure a change (default: this one)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help=f"run loacam under cProfile (its CPU figures are then inflated) and write "
        f"{profile_file} there; prints where the event loop's time goes",
    )
