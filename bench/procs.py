"""Child processes of the benchmark: started so they die with it, stopped by pid."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1


class ServerError(Exception):
    """A process of the benchmark did not come up; the message says what its log says."""


def die_with_parent() -> Callable[[], None]:
    """A preexec function: the kernel SIGTERMs the child when the benchmark ends, even
    when it is killed outright, so no server is left behind. Use from the main thread."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def set_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return set_death_signal


def spawn(
    command: Sequence[str],
    *,
    log: IO[bytes] | None = None,
    stdin: int | None = subprocess.DEVNULL,
    stdout: int | IO[bytes] | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(command),
        stdin=stdin,
        stdout=stdout if stdout is not None else log,
        stderr=log,
        cwd=cwd,
        env=env,
        start_new_session=True,  # a Ctrl-C reaches the benchmark only; it stops them
        preexec_fn=die_with_parent(),  # noqa: PLW1509 - one prctl, then exec
    )


def stop(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout_s`; waits either way."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()


def tail(path: Path, size: int = 1500) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "(no log)"
    return data[-size:].decode(errors="replace").strip()


def wait_until(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval_s)
    return False


def start_loacam(
    tree: Path,
    config: Path,
    *,
    user: str,
    role: str,
    password: str,
    log: IO[bytes],
    profile: Path | None = None,
) -> subprocess.Popen[bytes]:
    """`loacam user add`, then `loacam run` from `tree` (under cProfile with `profile`)."""
    added = subprocess.run(
        [
            *(sys.executable, "-m", "daemon", "user", "add", user, "--role", role),
            *("--password-stdin", "--config", str(config)),
        ],
        input=f"{password}\n".encode(),
        capture_output=True,
        cwd=tree,
        check=False,
        timeout=60,
    )
    if added.returncode != 0:
        raise ServerError(f"loacam user add: {added.stderr.decode(errors='replace')}")
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile else []
    return spawn(
        [sys.executable, *profiler, "-m", "daemon", "run", "--config", str(config)],
        log=log,
        cwd=tree,  # `python -m daemon` imports from the working directory first
    )
