"""`loacam demo`: starts, answers, prints a login that works, and cleans up after Ctrl-C."""

from __future__ import annotations

import contextlib
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from drivers.sim.broker import free_port
from tests.support import REPO, poll_until

LOGIN = re.compile(r"Đăng nhập / log in:\s+(\S+) / (\S+)")
TEMP_DIR = re.compile(r"(/tmp/loacam-demo-[A-Za-z0-9_]+)/")
OPEN = re.compile(r"Mở / open:\s+(http://\S+)")


class Lines:
    """Reads a process's output on a thread, so a test can wait for a line with a timeout."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.seen = ""
        threading.Thread(target=self._pump, args=(process,), daemon=True).start()

    def _pump(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen += line
            if match := pattern.search(line):
                return match
        raise AssertionError(f"{pattern.pattern!r} not printed within {timeout} s:\n{self.seen}")


def children_named(parent: int, name: str) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            comm = stat.read_text().split("(", 1)[1].rsplit(")", 1)[0]
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent and comm == name:
            found.append(int(stat.parent.name))
    return found


@contextlib.contextmanager
def demo() -> Iterator[tuple[subprocess.Popen[str], Lines, int]]:
    """`loacam demo` on a free port, killed at the end whatever the test did."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "daemon", "demo", "--port", str(port)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = Lines(process)
    try:
        yield process, lines, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        # A demo killed outright cannot remove its temporary directory: the test does.
        for leftover in TEMP_DIR.findall(lines.seen):
            shutil.rmtree(leftover, ignore_errors=True)


def test_demo_prints_a_working_login_and_stops_cleanly() -> None:
    with demo() as (process, output, port):
        url = output.wait_for(OPEN, timeout=30).group(1)
        user, password = output.wait_for(LOGIN, timeout=5).groups()
        assert url == f"http://127.0.0.1:{port}/"
        assert httpx.get(url + "healthz", timeout=5).status_code == 200
        assert httpx.get(url + "readyz", timeout=5).status_code == 200  # its private broker is up
        login = httpx.post(
            url + "api/v1/auth/login", json={"username": user, "password": password}, timeout=10
        )
        assert login.status_code == 200
        assert login.json()["role"] == "admin"
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

        def cameras() -> dict[str, str]:
            listed = httpx.get(url + "api/v1/cameras", headers=headers, timeout=10).json()
            return {camera["id"]: camera["status"] for camera in listed}

        # Two simulated cameras; the one an hour off still comes online.
        poll_until(lambda: cameras() == {"motcua-1": "online", "tiepdan-1": "online"}, timeout=30)
        shot = httpx.get(url + "api/v1/cameras/motcua-1/snapshot.jpg", headers=headers, timeout=10)
        assert shot.headers["content-type"] == "image/jpeg"

        def speakers() -> list[dict[str, str]]:
            listed: list[dict[str, str]] = httpx.get(
                url + "api/v1/speakers", params={"status": "online"}, headers=headers, timeout=10
            ).json()
            return listed

        # Twelve simulated clusters in three villages, all online, each playing a test tone.
        online = poll_until(lambda: len(speakers()) == 12 and speakers(), timeout=30)
        assert len({speaker["zone"] for speaker in online}) == 3
        tone = httpx.post(
            url + "api/v1/speakers/test-tone",
            json={"targets": {"zones": ["thon-dong"]}},
            headers=headers,
            timeout=10,
        )
        assert tone.status_code == 202
        cmd_ids = [command["cmd_id"] for command in tone.json()]
        assert len(cmd_ids) == 4

        def started() -> bool:
            return all(
                httpx.get(
                    url + f"api/v1/speaker-commands/{cmd_id}", headers=headers, timeout=10
                ).json()["state"]
                in {"started", "finished"}
                for cmd_id in cmd_ids
            )

        poll_until(started, timeout=30)
        brokers = children_named(process.pid, "mosquitto")
        assert len(brokers) == 1

        (temp_dir,) = set(TEMP_DIR.findall(output.seen))
        assert Path(temp_dir, "data", "loacam.db").exists()

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        assert not Path(f"/proc/{brokers[0]}").exists()
        assert not Path(temp_dir).exists()  # database and token key go with the demo


def test_demo_killed_outright_leaves_no_broker_behind() -> None:
    with demo() as (process, output, _port):
        output.wait_for(LOGIN, timeout=30)
        (broker,) = children_named(process.pid, "mosquitto")
        media = children_named(process.pid, "python3")  # the GStreamer RTSP servers
        assert len(media) == 2
        process.kill()
        process.wait(timeout=10)
        # Gone, or a zombie waiting for init to reap it: either way no longer serving.
        poll_until(lambda: all(_state(pid) == "Z" for pid in (broker, *media)))


def _state(pid: int) -> str:
    """The process state letter from /proc; "Z" also when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"
