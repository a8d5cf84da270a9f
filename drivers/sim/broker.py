"""A private mosquitto on a free loopback port (Debian's binary, a generated config)."""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

from drivers.sim.process import death_signal_preexec, stop_process


class BrokerError(Exception):
    """The private broker could not be started."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _child_setup(set_death_signal: Callable[[], None]) -> None:
    """Runs in the child between fork and exec.

    Started as root, mosquitto would switch to its own user by itself, and that change
    of credentials clears the parent-death signal. So switch here, first, then ask the
    kernel to SIGTERM the broker when the thread that started it ends (the whole
    process killed outright, SIGKILL, included): no orphan broker is left listening on
    a port. So start brokers from a long-lived thread, not from a worker thread.
    """
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("mosquitto")  # created by Debian's mosquitto package
        except KeyError:
            account = None
        if account is not None:
            os.setgroups([])
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
    set_death_signal()


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
    if found is None:
        raise BrokerError("mosquitto is not installed (Debian: apt-get install mosquitto)")
    return found


class PrivateBroker:
    """mosquitto listening on 127.0.0.1 only, anonymous, nothing persisted.

    Stop and start it again to simulate a broker restart: the port is kept.
    """

    def __init__(self, directory: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.directory = directory
        self.host = host
        self.port = port or free_port(host)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "mosquitto.log"

    def start_blocking(self, timeout: float = 10.0) -> None:
        """Start mosquitto and wait until it accepts TCP connections."""
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = self.directory / "mosquitto.conf"
        # log to stderr (a file we open for it): the broker runs unprivileged.
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\n",
            encoding="utf-8",
        )
        self._log = self.log_path.open("ab")
        # The config goes in as an open file: the unprivileged broker could not walk
        # into a private (0700) temporary directory to read it.
        with conf.open("rb") as conf_file:
            self._process = subprocess.Popen(  # noqa: S603 - fixed binary, argument list
                [mosquitto_binary(), "-c", f"/dev/fd/{conf_file.fileno()}"],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
                pass_fds=(conf_file.fileno(),),
                # Its own session: a Ctrl-C meant for the daemon must not kill the
                # broker before the daemon has said `offline` on it.
                start_new_session=True,
                preexec_fn=functools.partial(_child_setup, death_signal_preexec()),  # noqa: PLW1509 - only setuid and prctl, before exec
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._close_log()
                tail = self.log_path.read_text(errors="replace")[-500:]
                raise BrokerError(f"mosquitto exited at start: {tail}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop_blocking()
        raise BrokerError(f"mosquitto did not listen on {self.host}:{self.port} in {timeout} s")

    def stop_blocking(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)
        self._close_log()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> PrivateBroker:
        self.start_blocking()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_blocking()
