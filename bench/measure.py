"""One measurement: N viewers in worker processes against one server, and its CPU/RSS."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procs import ServerError, spawn, stop
from procstat import Usage, WindowSampler
from viewers import first_frame

VIEWERS_SCRIPT = Path(__file__).with_name("viewers.py")
WORKER_START_S = 1.5  # a worker's interpreter start and its connections, before warm-up


class NoFramesError(Exception):
    """A server delivered no camera frame in time: nothing to measure."""


@dataclass(frozen=True)
class Scenario:
    cameras: int
    viewers: int

    def __str__(self) -> str:
        return f"{self.cameras}x{self.viewers}"


@dataclass
class Measurement:
    server: str
    scenario: Scenario
    seconds: float
    fps: list[float]  # per viewer, camera frames only
    latencies_ms: list[float]  # every frame of every viewer; empty without stamps
    frame_bytes: int  # JPEG bytes received in the window, all viewers
    placeholders: int
    errors: list[str]
    usage: Usage
    others_cpu: dict[str, float]  # CPU % of the other processes we started, by role
    machine_percent: float  # all cores together (200 % = 2 cores flat out)
    server_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def fps_min(self) -> float:
        return min(self.fps, default=0.0)

    @property
    def fps_median(self) -> float:
        return statistics.median(self.fps) if self.fps else 0.0

    def latency(self, percent: int) -> float | None:
        if len(self.latencies_ms) < 2:
            return None
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[percent - 1]

    @property
    def kb_per_frame(self) -> float:
        frames = sum(self.fps) * self.seconds
        return self.frame_bytes / frames / 1000 if frames else 0.0

    @property
    def delivered_mb_s(self) -> float:
        return self.frame_bytes / self.seconds / 1e6

    @property
    def background_percent(self) -> float:
        """Machine CPU not spent by the server, the sources or the viewers (other users)."""
        ours = self.usage.cpu_percent + sum(self.others_cpu.values())
        return max(0.0, self.machine_percent - ours)


def wait_for_frames(urls: list[str], token: str | None, timeout_s: float) -> list[float]:
    """Seconds to the first camera frame on each URL; NoFramesError if one stays dark."""

    async def probe_all() -> list[float]:
        return list(await asyncio.gather(*(first_frame(url, token, timeout_s) for url in urls)))

    try:
        return asyncio.run(probe_all())
    except (TimeoutError, OSError, EOFError, asyncio.IncompleteReadError) as exc:
        raise NoFramesError(f"no camera frame within {timeout_s:g} s ({exc!r})") from exc


def split(viewers: int, workers: int) -> list[int]:
    workers = max(1, min(workers, viewers))
    return [viewers // workers + (1 if i < viewers % workers else 0) for i in range(workers)]


def measure(
    server: str,
    scenario: Scenario,
    *,
    pid: int,
    urls: list[str],
    token: str | None,
    warmup_s: float,
    seconds: float,
    workers: int,
    source_pids: list[int],
) -> Measurement:
    """Viewers connect now, are counted from `warmup_s` later for `seconds`; the server's
    CPU and RSS are sampled over exactly that window."""
    start = time.monotonic() + WORKER_START_S + warmup_s
    end = start + seconds
    env = dict(os.environ)
    if token:
        env["BENCH_TOKEN"] = token
    processes = []
    offset = 0
    for count in split(scenario.viewers, workers):
        # Rotated so that the viewers of all workers together spread evenly over cameras.
        rotated = urls[offset % len(urls) :] + urls[: offset % len(urls)]
        offset += count
        command = [sys.executable, str(VIEWERS_SCRIPT), "--viewers", str(count)]
        command += [f"--start={start}", f"--end={end}"]
        command += [arg for url in rotated for arg in ("--url", url)]
        processes.append(spawn(command, stdout=subprocess.PIPE, env=env))
    try:
        sampler = WindowSampler(
            pid, others={"sources": source_pids, "viewers": [p.pid for p in processes]}
        )
        time.sleep(max(0.0, start - time.monotonic()))
        sampler.start()
        time.sleep(max(0.0, end - time.monotonic()))
        usage, others, machine = sampler.stop()
        reports = [_report(process, timeout_s=30) for process in processes]
    finally:
        for process in processes:
            stop(process)
    viewers = [viewer for report in reports for viewer in report["viewers"]]
    return Measurement(
        server=server,
        scenario=scenario,
        seconds=seconds,
        fps=[viewer["frames"] / seconds for viewer in viewers],
        latencies_ms=[lat for viewer in viewers for lat in viewer["latencies_ms"]],
        frame_bytes=sum(viewer["bytes"] for viewer in viewers),
        placeholders=sum(viewer["placeholders"] for viewer in viewers),
        errors=[viewer["error"] for viewer in viewers if viewer["error"]],
        usage=usage,
        others_cpu=others,
        machine_percent=machine,
    )


def _report(process: subprocess.Popen[bytes], timeout_s: float) -> dict[str, Any]:
    out, _ = process.communicate(timeout=timeout_s)
    if process.returncode != 0:
        raise ServerError(f"a viewer worker failed with status {process.returncode}")
    report: dict[str, Any] = json.loads(out)
    return report
