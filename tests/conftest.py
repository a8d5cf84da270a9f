"""Fixtures: a private mosquitto for the session, free ports, notify sockets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.sim.broker import PrivateBroker, free_port
from tests.support import NotifySocket


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    """One private mosquitto for the whole test session (never the system one)."""
    with PrivateBroker(tmp_path_factory.mktemp("mosquitto")) as running:
        yield running


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    """A broker this test alone may stop and restart."""
    with PrivateBroker(tmp_path / "mosquitto") as running:
        yield running


@pytest.fixture
def http_port() -> int:
    return free_port()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()
