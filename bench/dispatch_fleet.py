"""Simulated native speakers for the dispatch benchmark: `drivers.sim.speaker` processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from loacam_server import REPO
from procs import ServerError, spawn, stop, tail

from drivers.sim.speaker import SimSpeakerSpec
from drivers.sim.speaker_cli import specs

ZONES = 3


@dataclass(frozen=True)
class Share:
    """The speakers of one process: `speaker_cli` names them `<prefix>-0001`..."""

    prefix: str
    count: int

    @property
    def specs(self) -> list[SimSpeakerSpec]:
        return specs(self.count, self.prefix, ZONES)  # the same ids and zones as the process


def shares(total: int, processes: int) -> list[Share]:
    """`spk-0001`... in one process; split evenly, `spk1-0001`..., `spk2-0001`..."""
    processes = max(1, min(processes, total))
    if processes == 1:
        return [Share("spk", total)]
    base, extra = divmod(total, processes)
    return [Share(f"spk{k}", base + (1 if k <= extra else 0)) for k in range(1, processes + 1)]


@dataclass
class SpeakerProcesses:
    """One `python -m drivers.sim.speaker` per share, each printing `ready N` once connected."""

    workdir: Path
    broker_port: int
    site: str
    shares: list[Share]
    speed: float
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._processes]

    def start_blocking(self) -> None:
        """Spawn every process (from the main thread: the parent-death signal follows it)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for share in self.shares:
            log = (self.workdir / f"speakers-{share.prefix}.log").open("wb")
            self._logs.append(log)
            command = [
                *(sys.executable, "-m", "drivers.sim.speaker", "--host", "127.0.0.1"),
                *("--port", str(self.broker_port), "--site", self.site),
                *("--count", str(share.count), "--prefix", share.prefix),
                *("--zones", str(ZONES), "--speed", f"{self.speed:g}"),
            ]
            self._processes.append(spawn(command, log=log, stdout=subprocess.PIPE, cwd=REPO))

    async def wait_ready(self, timeout_s: float) -> float:
        """Seconds until every process has said `ready N`; ServerError if one does not."""
        started = time.monotonic()
        waits = [
            asyncio.wait_for(asyncio.to_thread(self._ready_line_blocking, process), timeout_s)
            for process in self._processes
        ]
        outcomes = await asyncio.gather(*waits, return_exceptions=True)
        problems = []
        for share, process, outcome in zip(self.shares, self._processes, outcomes, strict=True):
            expected = f"ready {share.count}"
            if outcome != expected:
                why = "timed out" if isinstance(outcome, TimeoutError) else repr(outcome)
                log = self.workdir / f"speakers-{share.prefix}.log"
                problems.append(
                    f"{share.prefix} ({share.count} speakers, exit {process.poll()}): "
                    f"{why}\n{tail(log, 600)}"
                )
        if problems:
            raise ServerError("speakers did not all connect:\n" + "\n".join(problems))
        return time.monotonic() - started

    def stop_blocking(self) -> None:
        # SIGTERM to all first: each says `offline` for its speakers while the others do.
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            stop(process, timeout_s=30)
        self._processes.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()

    @staticmethod
    def _ready_line_blocking(process: subprocess.Popen[bytes]) -> str:
        # In a thread: a pipe read blocks; the process's end (EOF) unblocks it.
        assert process.stdout is not None  # noqa: S101 - stdout=PIPE
        return process.stdout.readline().decode(errors="replace").strip()
