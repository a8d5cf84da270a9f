"""sd_notify without libsystemd: path and abstract sockets, watchdog settings."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from daemon.notify import Notifier


def test_messages_reach_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        notifier = Notifier(str(path), None)
        notifier.ready("all good")
        notifier.watchdog()
        notifier.stopping()
        assert server.recv(1024) == b"READY=1\nSTATUS=all good"
        assert server.recv(1024) == b"WATCHDOG=1"
        assert server.recv(1024) == b"STOPPING=1\nSTATUS=stopping"


def test_messages_reach_an_abstract_socket() -> None:
    name = f"loacam-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        Notifier("@" + name, None).status("hello")
        assert server.recv(1024) == b"STATUS=hello"


def test_a_vanished_socket_is_not_fatal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    Notifier(str(tmp_path / "gone"), None).watchdog()
    assert "sd_notify" in caplog.text


def test_watchdog_interval_is_half_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/x")
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert Notifier.from_env().watchdog_interval_s == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert Notifier.from_env().watchdog_interval_s is None  # meant for another process


def test_without_systemd_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier.from_env()
    assert not notifier.enabled
    notifier.ready("x")  # no socket, no error
