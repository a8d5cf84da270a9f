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
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from drivers.sim.process import death_signal_preexec, stop_process


class BrokerError(Exception):
    """The private broker could not be started."""


@dataclass(frozen=True)
class BrokerTls:
    """A TLS listener: the broker's certificate and key (PEM), and the CA of client certificates."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None
    require_certificate: bool = False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _broker_account() -> pwd.struct_passwd | None:
    """The account mosquitto runs as when started as root (Debian's package creates it)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("mosquitto")
    except KeyError:
        return None


def _child_setup(set_death_signal: Callable[[], None]) -> None:
    """Runs in the child between fork and exec.

    Started as root, mosquitto would switch to its own user by itself, and that change
    of credentials clears the parent-death signal. So switch here, first, then ask the
    kernel to SIGTERM the broker when the thread that started it ends (the whole
    process killed outright, SIGKILL, included): no orphan broker is left listening on
    a port. So start brokers from a long-lived thread, not from a worker thread.
    """
    account = _broker_account()
    if account is not None:
        os.setgroups([])
        os.setgid(account.pw_gid)
        os.setuid(account.pw_uid)
    set_death_signal()


def mosquitto_binary() -> str:
    return _debian_binary("mosquitto")


def _debian_binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if found is None:
        raise BrokerError(f"{name} is not installed (Debian: apt-get install mosquitto)")
    return found


def add_password_blocking(password_file: Path, username: str, password: str) -> None:
    """Add (or replace) a user in a mosquitto password file, creating the file if need be.

    Debian's `mosquitto_passwd -b` hashes the password. It takes the password on its
    command line, where other local users can see it in `ps`: for tests and the demo;
    an operator runs `mosquitto_passwd FILE USER` and types it.
    """
    create = [] if password_file.exists() else ["-c"]
    result = subprocess.run(  # noqa: S603 - fixed binary, argument list, no shell
        [_debian_binary("mosquitto_passwd"), *create, "-b", str(password_file), username, password],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        timeout=30,
    )
    if result.returncode != 0:
        output = (result.stderr or result.stdout).decode(errors="replace").strip()
        raise BrokerError(f"mosquitto_passwd refused user {username!r}: {output}")


class PrivateBroker:
    """mosquitto listening on 127.0.0.1 only; by default anonymous, nothing persisted.

    Stop and start it again to simulate a broker restart: the ports are kept, and with
    `persistence` so are sessions and queued messages (mosquitto saves on SIGTERM).
    `password_file` turns anonymous access off; `acl_file` limits every user; `tls`
    adds a second listener on `tls_port`.
    """

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        persistence: bool = False,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        tls: BrokerTls | None = None,
        max_queued_messages: int | None = None,
    ) -> None:
        self.directory = directory
        self.host = host
        self.port = port or free_port(host)
        self.tls_port = free_port(host) if tls is not None else None
        self.persistence = persistence
        self.password_file = password_file
        self.acl_file = acl_file
        self.tls = tls
        self.max_queued_messages = max_queued_messages
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "mosquitto.log"

    @property
    def state_dir(self) -> Path:
        """The broker's own directory: copies of its files, and its persistence database."""
        return self.directory / "broker"

    def start_blocking(self, timeout: float = 10.0) -> None:
        """Start mosquitto and wait until it accepts TCP connections."""
        self.directory.mkdir(parents=True, exist_ok=True)
        # The broker runs unprivileged (as `mosquitto` when we are root) and could not
        # walk into a private (0700) temporary directory. So its files are copied, with
        # tight modes and its ownership, into a directory of its own, which it reaches
        # through an open descriptor: /dev/fd/N/<name> resolves without searching the
        # parent directories. The copies are made afresh on every start, so a user
        # added to the password file counts from the next restart.
        state_dir = self._prepare_state_dir_blocking()
        conf = self.directory / "mosquitto.conf"
        dir_fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            conf.write_text(self._config_text(f"/dev/fd/{dir_fd}"), encoding="utf-8")
            with conf.open("rb") as conf_file:
                process = self._spawn_blocking(conf_file.fileno(), dir_fd)
        finally:
            os.close(dir_fd)
        self._wait_listening_blocking(process, timeout)

    def stop_blocking(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)  # SIGTERM: with persistence, mosquitto saves as it exits
        self._close_log()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _prepare_state_dir_blocking(self) -> Path:
        state_dir = self.state_dir
        state_dir.mkdir(mode=0o700, exist_ok=True)
        account = _broker_account()
        copies = {
            "passwd": self.password_file,
            "acl": self.acl_file,
            "tls-server.crt": self.tls.cert_file if self.tls else None,
            "tls-server.key": self.tls.key_file if self.tls else None,
            "tls-ca.crt": self.tls.ca_file if self.tls else None,
        }
        for name, source in copies.items():
            if source is not None:
                target = state_dir / name
                shutil.copyfile(source, target)
                target.chmod(0o600)
                if account is not None:
                    os.chown(target, account.pw_uid, account.pw_gid)
        if account is not None:
            os.chown(state_dir, account.pw_uid, account.pw_gid)
        return state_dir

    def _config_text(self, files: str) -> str:
        # Security and persistence settings are global (per_listener_settings false),
        # so they come before the listeners.
        lines = [f"allow_anonymous {'false' if self.password_file else 'true'}"]
        if self.password_file is not None:
            lines.append(f"password_file {files}/passwd")
        if self.acl_file is not None:
            lines.append(f"acl_file {files}/acl")
        if self.persistence:
            lines += ["persistence true", f"persistence_location {files}/"]
        else:
            lines.append("persistence false")
        if self.max_queued_messages is not None:
            lines.append(f"max_queued_messages {self.max_queued_messages}")
        # log to stderr (a file we open for it): the broker runs unprivileged.
        lines += ["log_dest stderr", "log_type error", "log_type warning", "log_type notice"]
        lines.append(f"listener {self.port} {self.host}")
        if self.tls is not None:
            lines += [
                f"listener {self.tls_port} {self.host}",
                f"certfile {files}/tls-server.crt",
                f"keyfile {files}/tls-server.key",
            ]
            if self.tls.ca_file is not None:
                lines.append(f"cafile {files}/tls-ca.crt")
            if self.tls.require_certificate:
                lines.append("require_certificate true")
        return "\n".join(lines) + "\n"

    def _spawn_blocking(self, conf_fd: int, dir_fd: int) -> subprocess.Popen[bytes]:
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary, argument list
            [mosquitto_binary(), "-c", f"/dev/fd/{conf_fd}"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            pass_fds=(conf_fd, dir_fd),
            # Its own session: a Ctrl-C meant for the daemon must not kill the
            # broker before the daemon has said `offline` on it.
            start_new_session=True,
            preexec_fn=functools.partial(_child_setup, death_signal_preexec()),  # noqa: PLW1509 - only setuid and prctl, before exec
        )
        return self._process

    def _wait_listening_blocking(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        ports = [self.port] if self.tls_port is None else [self.port, self.tls_port]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self._process = None
                self._close_log()
                tail = self.log_path.read_text(errors="replace")[-500:]
                raise BrokerError(f"mosquitto exited at start: {tail}")
            if all(self._accepts(port) for port in ports):
                return
            time.sleep(0.05)
        self.stop_blocking()
        raise BrokerError(f"mosquitto did not listen on {self.host}:{ports} in {timeout} s")

    def _accepts(self, port: int) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=0.5):
                return True
        except OSError:
            return False

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
