"""Helpers shared by the tests: the daemon as a process, a notify socket, MQTT probes."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]


def write_config(path: Path, data: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(data), allow_unicode=True), encoding="utf-8")
    return path


def base_config(tmp: Path, *, http_port: int, mqtt_port: int, site: str = "test") -> dict[str, Any]:
    return {
        "site": site,
        "http": {"host": "127.0.0.1", "port": http_port, "graceful_timeout_s": 1},
        "storage": {"path": str(tmp / "data")},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "keepalive_s": 5},
    }


def in_private_network(*command: str) -> subprocess.CompletedProcess[str]:
    """Run `command` in a new network namespace holding only a loopback interface (down)."""
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    # Root has CAP_SYS_ADMIN; anyone else gets it inside a user namespace of their own.
    as_user = [] if os.geteuid() == 0 else ["--map-root-user"]
    return subprocess.run(
        [unshare, "--net", *as_user, "--", *command],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ffmpeg_children() -> list[int]:
    """ffmpeg processes (zombies included) whose parent is this test process."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:  # it exited while we looked
            continue
        fields = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
        if fields.get("PPid") == str(os.getpid()) and fields.get("Name") == "ffmpeg":
            found.append(int(status.parent.name))
    return found


@contextmanager
def refusing_port(containing: str = "") -> Iterator[int]:
    """A loopback port that refuses connections for as long as the block runs.

    The socket is bound but never listens, so nobody else can take the port and a client's own
    ephemeral port can never land on it (a TCP self-connect would "answer" the client).
    `containing` asks for a port whose number holds those digits (e.g. "401"), else any port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if not containing:
            sock.bind(("127.0.0.1", 0))
        else:
            for port in (p for p in range(1024, 65536) if containing in str(p)):
                try:
                    sock.bind(("127.0.0.1", port))
                    break
                except OSError:  # taken: the next one
                    continue
            else:
                raise RuntimeError(f"no free loopback port holding {containing}")
        yield sock.getsockname()[1]


@dataclass
class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    path: Path
    sock: socket.socket = field(init=False)
    received: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))

    def wait_for(self, field_: str, timeout: float = 15.0) -> list[str]:
        """Block until a datagram carrying `field_` (e.g. READY=1) arrives; return its fields."""
        deadline = time.monotonic() + timeout
        for seen in self.received:
            if field_ in seen.split("\n"):
                return seen.split("\n")
        while (remaining := deadline - time.monotonic()) > 0:
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            self.received.append(data)
            if field_ in data.split("\n"):
                return data.split("\n")
        raise AssertionError(f"{field_} not received within {timeout} s; got {self.received}")

    def close(self) -> None:
        self.sock.close()


class Daemon:
    """`loacam run` as a subprocess of the test."""

    def __init__(
        self, config: Path, notify: NotifySocket | None, *, watchdog_usec: int | None = None
    ) -> None:
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        if notify is not None:
            env["NOTIFY_SOCKET"] = str(notify.path)
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        self.config = config
        self.log = config.with_suffix(".log")
        self._log_handle = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(config)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
        )
        http = yaml.safe_load(config.read_text())["http"]
        self.base = f"http://{http['host']}:{http['port']}"

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.base + path, timeout=5, **kwargs)

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._log_handle.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log_handle.close()

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


def poll_until(check: Any, timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Re-evaluate `check()` until it returns a truthy value (a condition, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value: {last!r})")


async def retained(port: int, topic: str, expected: bytes, within_s: float = 10.0) -> bytes:
    """Subscribe and wait until `topic` carries `expected` (retained or live)."""
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier=f"probe-{os.getpid()}-{time.monotonic_ns()}"
    ) as client:
        await client.subscribe(topic, qos=1)
        async with asyncio.timeout(within_s):
            async for message in client.messages:
                if message.payload == expected:
                    return expected
    raise AssertionError("unreachable")


def retained_blocking(port: int, topic: str, expected: bytes, within_s: float = 10.0) -> bytes:
    return asyncio.run(retained(port, topic, expected, within_s))
