"""CPU time and memory of processes and of the machine, read from /proc (Linux only)."""

from __future__ import annotations

import os
import platform
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_times(pid: int) -> tuple[float, float] | None:
    """(user, system) CPU seconds of every thread of `pid` so far; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its end.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def rss_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def threads(pid: int) -> int | None:
    """The number of threads of `pid` (`Threads` in /proc/<pid>/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in status.splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return None


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of all cores since boot, from the first line of /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # user..steal; guest time is already inside user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


@dataclass
class Usage:
    """One process over a measurement window."""

    cpu_percent: float  # of one core, user + system
    system_percent: float  # the kernel's part of it (socket writes, page faults...)
    rss_peak_mb: float
    rss_mean_mb: float


@dataclass
class WindowSampler:
    """Samples the CPU time of some processes at the start and end of a window, and the
    measured process's RSS every `every_s` in between (in a thread: the caller sleeps)."""

    measured: int
    others: dict[str, list[int]] = field(default_factory=dict)
    every_s: float = 0.5
    _cpu_start: dict[int, tuple[float, float]] = field(default_factory=dict)
    _rss: list[float] = field(default_factory=list)
    _machine_start: tuple[float, float] = (0.0, 0.0)
    _started_at: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._started_at = time.monotonic()
        self._machine_start = machine_busy_seconds()
        for pid in self._pids():
            if (cpu := cpu_times(pid)) is not None:
                self._cpu_start[pid] = cpu
        self._thread = threading.Thread(target=self._sample_rss_blocking, daemon=True)
        self._thread.start()

    def stop(self) -> tuple[Usage, dict[str, float], float]:
        """The measured process's usage, the others' CPU % by name, the machine's busy %
        (of all cores together: 200 % is a 2-core machine flat out)."""
        wall = time.monotonic() - self._started_at
        busy, total = machine_busy_seconds()
        ends = {pid: cpu_times(pid) for pid in self._pids()}
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        cores = os.cpu_count() or 1

        def percent(pids: list[int], *, system_only: bool = False) -> float:
            used = 0.0
            for pid in pids:
                start, end = self._cpu_start.get(pid), ends.get(pid)
                if start is not None and end is not None:
                    used += end[1] - start[1] if system_only else sum(end) - sum(start)
            return 100 * used / wall

        machine = 100 * cores * (busy - self._machine_start[0]) / (total - self._machine_start[1])
        rss = self._rss or [0.0]
        usage = Usage(
            percent([self.measured]),
            percent([self.measured], system_only=True),
            max(rss),
            sum(rss) / len(rss),
        )
        return usage, {name: percent(pids) for name, pids in self.others.items()}, machine

    def _pids(self) -> list[int]:
        return [self.measured, *(pid for pids in self.others.values() for pid in pids)]

    def _sample_rss_blocking(self) -> None:
        while True:
            if (rss := rss_mb(self.measured)) is not None:
                self._rss.append(rss)
            if self._stop.wait(self.every_s):
                return


def machine_info() -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    models = [
        line.split(":", 1)[1].strip()
        for line in cpuinfo.splitlines()
        if line.startswith("model name")
    ]
    load = Path("/proc/loadavg").read_text().split()[:3]
    return {
        "cpu": models[0] if models else platform.processor() or "unknown",
        "cores": str(len(models) or os.cpu_count() or 0),
        "memory": f"{_mem_total_gib():.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load before": " ".join(load),
    }


def _mem_total_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return 0.0
