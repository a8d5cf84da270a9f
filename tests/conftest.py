"""Fixtures: a private mosquitto for the session, free ports, notify sockets."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from drivers.sim.broker import PrivateBroker, free_port
from tests.fake_google_tts import TONE_S, FakeGoogleTts, self_signed_certificate, sine_mp3
from tests.support import NotifySocket, refusing_port


@pytest.fixture(scope="session", autouse=True)
def no_internet() -> Iterator[None]:
    """Keep every test, and every daemon it starts, off the internet.

    gTTS (and any other HTTPS client that honours the standard proxy variables) is sent
    to a loopback port that refuses connections, so a test that forgot to choose an
    offline engine fails over to espeak-ng instead of calling Google. Loopback stays
    direct. A test that wants a fake Google sets HTTPS_PROXY to its own fake.
    """
    names = ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy")
    saved = {name: os.environ.get(name) for name in names}
    with refusing_port() as port:
        for name in names[:2]:
            os.environ[name] = f"http://127.0.0.1:{port}"
        for name in names[2:]:
            os.environ[name] = "127.0.0.1,localhost,::1"
        yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def google_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, bytes]:
    certificate, key = self_signed_certificate(tmp_path_factory.mktemp("fake-google"))
    return certificate, key, sine_mp3(TONE_S)


@pytest.fixture
async def google(
    google_files: tuple[Path, Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FakeGoogleTts]:
    """A fake Google text-to-speech on loopback, which gTTS reaches as its HTTPS proxy."""
    # Async on purpose: it is torn down before the test's event loop, whose closing waits for
    # gTTS worker threads, which a hanging fake holds until it closes.
    with FakeGoogleTts(*google_files) as fake:
        # requests reads the proxy variables at each call (gTTS passes getproxies()).
        monkeypatch.setenv("HTTPS_PROXY", fake.proxy_url)
        monkeypatch.setenv("https_proxy", fake.proxy_url)
        yield fake


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
def site() -> str:
    """An MQTT site of its own per test: retained messages and persistent sessions of
    other tests (on the session's one broker) stay apart."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def http_port() -> int:
    return free_port()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()
