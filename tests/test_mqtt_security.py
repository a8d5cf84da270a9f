"""Broker security against a real mosquitto: the shipped ACL, passwords, TLS, persistence."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from daemon.config import SecretSources
from daemon.config_loader import ConfigError, parse_config
from daemon.service import mqtt_settings
from drivers.backoff import Backoff
from drivers.mqtt import MqttLink, MqttRefusedError, MqttSettings, MqttTls
from drivers.sim.broker import BrokerError, BrokerTls, PrivateBroker, add_password_blocking
from tests.support import REPO

ACL = REPO / "config" / "mosquitto" / "acl"
PASSWORD = "s3cret-for-tests"
NOT_AUTHORIZED = 0x87
SITE = "xa"


class AckedClient(aiomqtt.Client):
    """An MQTT 5 test client that keeps the reason code of every PUBACK.

    aiomqtt's publish waits for the PUBACK but drops its reason code, which is where
    mosquitto says "Not authorized"; `_on_publish` is the paho callback it installs.
    """

    def __init__(self, port: int, username: str | None, password: str = PASSWORD) -> None:
        super().__init__(
            "127.0.0.1",
            port,
            # never the user name: a client id with '+' or '#' is refused patterns too
            identifier=f"test-{secrets.token_hex(4)}",
            username=username,
            password=password,
            protocol=aiomqtt.ProtocolVersion.V5,
        )
        self.acks: list[ReasonCode] = []

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self.acks.append(reason)
        super()._on_publish(client, userdata, mid, reason, props)

    async def publish_code(self, topic: str, payload: bytes = b"x") -> int:
        """Publish at QoS 1 and return the broker's PUBACK reason code (publishes are serial)."""
        await self.publish(topic, payload, qos=1)
        return int(self.acks[-1].value)

    async def nothing_received(self) -> bool:
        """True if no message is waiting, after a round trip that follows any delivery.

        Anything the broker routed to us before our PUBLISH reached it precedes its
        PUBACK on this connection, so once the PUBACK is in, it would be queued here.
        """
        await self.publish(f"loacam/{SITE}/barrier/{secrets.token_hex(4)}", b"", qos=1)
        return len(self.messages) == 0


async def topics_until(client: aiomqtt.Client, barrier: str) -> list[str]:
    """The topics received, in order, up to and including `barrier`."""
    seen: list[str] = []
    async with asyncio.timeout(10):
        async for message in client.messages:
            seen.append(str(message.topic))
            if seen[-1] == barrier:
                return seen
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    """A broker with the ACL exactly as shipped in config/mosquitto/acl."""
    directory = tmp_path_factory.mktemp("secured")
    passwords = directory / "passwd"
    for user in ("loacam", "loa-1", "loa-2", "+", "a+b", "#"):
        add_password_blocking(passwords, user, PASSWORD)
    with PrivateBroker(directory / "mosquitto", password_file=passwords, acl_file=ACL) as broker:
        yield broker


async def test_a_speaker_cannot_command_any_speaker(secured: PrivateBroker) -> None:
    spk = f"loacam/{SITE}/spk"
    async with AckedClient(secured.port, "loacam") as daemon:
        await daemon.subscribe("loacam/#", qos=1)
        async with AckedClient(secured.port, "loa-1") as speaker:
            assert await speaker.publish_code(f"{spk}/loa-2/cmd") == NOT_AUTHORIZED
            assert await speaker.publish_code(f"{spk}/loa-1/cmd") == NOT_AUTHORIZED
            for report in ("ack", "event", "status"):  # status last: the barrier
                assert await speaker.publish_code(f"{spk}/loa-1/{report}") < 0x80
        # Same publisher, one subscription: had a cmd got through, it would come first.
        assert await topics_until(daemon, f"{spk}/loa-1/status") == [
            f"{spk}/loa-1/ack",
            f"{spk}/loa-1/event",
            f"{spk}/loa-1/status",
        ]


async def test_a_speaker_reads_its_own_commands_only(secured: PrivateBroker) -> None:
    spk = f"loacam/{SITE}/spk"
    async with AckedClient(secured.port, "loa-1") as speaker:
        # mosquitto 2 grants any subscription and filters every delivery by the ACL.
        await speaker.subscribe("loacam/#", qos=1)
        await speaker.subscribe(f"{spk}/loa-2/cmd", qos=1)
        async with AckedClient(secured.port, "loacam") as daemon:
            assert await daemon.publish_code(f"{spk}/loa-2/cmd", b"for loa-2") < 0x80
            assert await daemon.publish_code(f"{spk}/loa-2/status", b"online") < 0x80
            assert await daemon.publish_code(f"{spk}/loa-1/cmd", b"for loa-1") < 0x80
        async with asyncio.timeout(10):
            message = await anext(aiter(speaker.messages))
        assert (str(message.topic), message.payload) == (f"{spk}/loa-1/cmd", b"for loa-1")
        assert await speaker.nothing_received()


async def test_the_daemon_may_drive_hermes_speakers(secured: PrivateBroker) -> None:
    async with AckedClient(secured.port, "loacam") as daemon:
        for topic in ("hermes/audioServer/loa-1/playBytes/r1", "rhasspy/audioServer/setVolume"):
            assert await daemon.publish_code(topic) < 0x80
        assert await daemon.publish_code("hermes/audioServer/loa-1/playFinished") == (
            NOT_AUTHORIZED
        )


@pytest.mark.parametrize("user", ["+", "a+b"])
async def test_a_wildcard_user_name_gets_nothing_from_the_patterns(
    secured: PrivateBroker, user: str
) -> None:
    spk = f"loacam/{SITE}/spk"
    async with AckedClient(secured.port, user) as intruder:
        # `+` in place of %u would match every speaker's topics.
        assert await intruder.publish_code(f"{spk}/loa-1/status") == NOT_AUTHORIZED
        assert await intruder.publish_code("hermes/audioServer/loa-1/playFinished") == (
            NOT_AUTHORIZED
        )
        await intruder.subscribe(f"{spk}/+/cmd", qos=1)
        await intruder.subscribe("rhasspy/audioServer/setVolume", qos=1)
        async with AckedClient(secured.port, "loa-2") as control:
            await control.subscribe("rhasspy/audioServer/setVolume", qos=1)
            async with AckedClient(secured.port, "loacam") as daemon:
                await daemon.publish_code(f"{spk}/loa-1/cmd")
                await daemon.publish_code("rhasspy/audioServer/setVolume")
            # The same pattern line does serve an ordinary user.
            async with asyncio.timeout(10):
                message = await anext(aiter(control.messages))
            assert str(message.topic) == "rhasspy/audioServer/setVolume"
        assert await intruder.nothing_received()


@pytest.mark.parametrize(
    ("user", "password"),
    [("loa-1", "wrong"), (None, PASSWORD), ("#", PASSWORD)],
    ids=["wrong-password", "anonymous", "hash-user"],
)
async def test_a_login_is_refused(secured: PrivateBroker, user: str | None, password: str) -> None:
    # A user named `#` is in the password file, but mosquitto reads `#...` as a comment.
    with pytest.raises(aiomqtt.MqttCodeError) as refused:
        async with AckedClient(secured.port, user, password):
            pass
    assert refused.value.rc in (0x86, NOT_AUTHORIZED)  # bad user name or password


def test_a_user_name_mosquitto_cannot_store_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="a:b"):
        add_password_blocking(tmp_path / "passwd", "a:b", PASSWORD)


# --- TLS -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    server: tuple[Path, Path]  # certificate for IP 127.0.0.1, key
    misnamed: tuple[Path, Path]  # certificate for another name only
    client: tuple[Path, Path]


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


def _make_ca(directory: Path, name: str) -> Path:
    _openssl(
        directory, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "2", "-keyout", f"{name}.key", "-out", f"{name}.crt",
        "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return directory / f"{name}.crt"


def _make_cert(directory: Path, name: str, ca: str, extensions: str) -> tuple[Path, Path]:
    _openssl(
        directory, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
    )  # fmt: skip
    (directory / f"{name}.ext").write_text(extensions, encoding="utf-8")
    _openssl(
        directory, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt",
        "-CAkey", f"{ca}.key", "-CAcreateserial", "-days", "2",
        "-extfile", f"{name}.ext", "-out", f"{name}.crt",
    )  # fmt: skip
    return directory / f"{name}.crt", directory / f"{name}.key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    server_ext = "extendedKeyUsage=serverAuth\nsubjectAltName="
    return Pki(
        ca=_make_ca(d, "ca"),
        other_ca=_make_ca(d, "other-ca"),
        server=_make_cert(d, "server", "ca", server_ext + "IP:127.0.0.1\n"),
        misnamed=_make_cert(d, "misnamed", "ca", server_ext + "DNS:broker.invalid\n"),
        client=_make_cert(d, "client", "ca", "extendedKeyUsage=clientAuth\n"),
    )


# paho never closes the socket of a failed TLS handshake (paho-mqtt 2.2,
# Client._ssl_wrap_socket); it is closed when the exception is dropped, with a warning.
paho_drops_failed_tls_sockets = pytest.mark.filterwarnings(
    "ignore:unclosed <ssl.SSLSocket:ResourceWarning"
)


@asynccontextmanager
async def tls_link(port: int, tls: MqttTls) -> AsyncIterator[MqttLink]:
    # A broker refusing a missing client certificate does so after the handshake,
    # and aiomqtt then only notices the connect timeout: keep it short.
    settings = MqttSettings(
        "127.0.0.1", port, "tls-link", "t/tls/status", tls=tls, connect_timeout=1.0
    )
    link = MqttLink(settings, backoff=Backoff(initial=0.05, cap=0.2))
    stop = asyncio.Event()
    task = asyncio.create_task(link.run(stop))
    try:
        yield link
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def first_error(link: MqttLink) -> str:
    async with asyncio.timeout(10):
        # Polls a condition: the link reports errors as state, not as events.
        while link.state.last_error is None:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    assert not link.connected
    return link.state.last_error


@paho_drops_failed_tls_sockets
async def test_tls_link_checks_the_broker_against_the_ca(pki: Pki, tmp_path: Path) -> None:
    tls = BrokerTls(*pki.server)
    with PrivateBroker(tmp_path / "mosquitto", tls=tls) as broker:
        assert broker.tls_port is not None
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="plain-sub") as plain:
            await plain.subscribe("t/tls/x", qos=1)
            async with tls_link(broker.tls_port, MqttTls(ca_file=pki.ca)) as link:
                await asyncio.wait_for(link.wait_connected(), 10)
                await link.publish("t/tls/x", b"over tls")
            async with asyncio.timeout(10):
                message = await anext(aiter(plain.messages))
            assert message.payload == b"over tls"
        for wrong_ca in (pki.other_ca, None):  # None: the system's CAs do not know ours
            async with tls_link(broker.tls_port, MqttTls(ca_file=wrong_ca)) as link:
                assert "certificate verify failed" in await first_error(link)


@paho_drops_failed_tls_sockets
async def test_tls_insecure_skips_only_the_name_check(pki: Pki, tmp_path: Path) -> None:
    with PrivateBroker(tmp_path / "mosquitto", tls=BrokerTls(*pki.misnamed)) as broker:
        assert broker.tls_port is not None
        async with tls_link(broker.tls_port, MqttTls(ca_file=pki.ca)) as link:
            assert "mismatch" in await first_error(link)
        async with tls_link(broker.tls_port, MqttTls(ca_file=pki.ca, insecure=True)) as link:
            await asyncio.wait_for(link.wait_connected(), 10)
        other = MqttTls(ca_file=pki.other_ca, insecure=True)
        async with tls_link(broker.tls_port, other) as link:
            assert "certificate verify failed" in await first_error(link)


@paho_drops_failed_tls_sockets
async def test_tls_client_certificate(pki: Pki, tmp_path: Path) -> None:
    tls = BrokerTls(*pki.server, ca_file=pki.ca, require_certificate=True)
    with PrivateBroker(tmp_path / "mosquitto", tls=tls) as broker:
        assert broker.tls_port is not None
        cert, key = pki.client
        with_cert = MqttTls(ca_file=pki.ca, cert_file=cert, key_file=key)
        async with tls_link(broker.tls_port, with_cert) as link:
            await asyncio.wait_for(link.wait_connected(), 10)
        async with tls_link(broker.tls_port, MqttTls(ca_file=pki.ca)) as link:
            assert await first_error(link)
        missing = MqttTls(ca_file=tmp_path / "nowhere.crt")
        async with tls_link(broker.tls_port, missing) as link:
            assert "TLS certificate files" in await first_error(link)


# --- Configuration -------------------------------------------------------------------

NO_SECRETS = SecretSources({}, None)


@pytest.mark.parametrize(("written", "protocol"), [("5", "5"), ("3.1.1", "3.1.1"), ("'5'", "5")])
def test_mqtt_protocol_as_yaml_writes_it(written: str, protocol: str) -> None:
    config = parse_config(f"site: a\nmqtt: {{protocol: {written}}}\n", "x.yaml", NO_SECRETS)
    assert mqtt_settings(config).protocol == protocol


def test_mqtt_tls_settings_reach_the_link() -> None:
    text = (
        "site: a\nmqtt:\n  port: 8883\n  tls:\n    enabled: true\n    ca_file: /etc/ca.crt\n"
        "    cert_file: /etc/c.crt\n    key_file: /etc/c.key\n    insecure: true\n"
    )
    settings = mqtt_settings(parse_config(text, "x.yaml", NO_SECRETS))
    assert settings.tls == MqttTls(
        Path("/etc/ca.crt"), Path("/etc/c.crt"), Path("/etc/c.key"), insecure=True
    )
    default = mqtt_settings(parse_config("site: a\n", "x.yaml", NO_SECRETS))
    assert (default.tls, default.protocol) == (None, "5")
    system_cas = parse_config("site: a\nmqtt: {tls: {enabled: true}}\n", "x.yaml", NO_SECRETS)
    assert mqtt_settings(system_cas).tls == MqttTls()


@pytest.mark.parametrize(
    ("tls", "path", "message"),
    [
        ("{enabled: true, ca_file: ca.crt}", "mqtt.tls.ca_file", "must be an absolute path"),
        ("{enabled: true, cert_file: /c.crt}", "mqtt.tls", "cert_file is given without key_file"),
        ("{enabled: true, key_file: /c.key}", "mqtt.tls", "key_file is given without cert_file"),
        ("{ca_file: /ca.crt}", "mqtt.tls", "ca_file has no effect while enabled is false"),
        ("{enabled: true, verify: false}", "mqtt.tls.verify", "unknown key"),
    ],
)
def test_mqtt_tls_mistakes_are_refused(tls: str, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"site: a\nmqtt:\n  tls: {tls}\n", "x.yaml", NO_SECRETS)
    (issue,) = caught.value.issues
    assert (issue.line, issue.path) == (3, path)
    assert message in issue.message


def test_mqtt_protocol_4_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("site: a\nmqtt: {protocol: 4}\n", "x.yaml", NO_SECRETS)
    (issue,) = caught.value.issues
    assert issue.path == "mqtt.protocol"
    assert "'5' or '3.1.1'" in issue.message


async def test_a_publish_the_acl_refuses_raises_and_the_link_carries_on(
    secured: PrivateBroker,
) -> None:
    settings = MqttSettings(
        "127.0.0.1",
        secured.port,
        "loacam-acl",
        f"loacam/{SITE}/status",
        username="loacam",
        password=PASSWORD,
    )
    link = MqttLink(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(link.run(stop))
    try:
        await asyncio.wait_for(link.wait_connected(), 10)
        with pytest.raises(MqttRefusedError, match=r"playFinished: .*Not authorized.*0x87"):
            await link.publish("hermes/audioServer/loa-1/playFinished", b"x")
        async with AckedClient(secured.port, "loa-1") as speaker:
            await speaker.subscribe(f"loacam/{SITE}/spk/loa-1/cmd", qos=1)
            await link.publish(f"loacam/{SITE}/spk/loa-1/cmd", b"still allowed")
            async with asyncio.timeout(10):
                message = await anext(aiter(speaker.messages))
        assert message.payload == b"still allowed"
        assert link.state.connects == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


# --- Persistence ---------------------------------------------------------------------


async def test_a_queued_command_survives_a_broker_restart(tmp_path: Path) -> None:
    broker = PrivateBroker(tmp_path / "mosquitto", persistence=True, max_queued_messages=100)
    session = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    session.SessionExpiryInterval = 86400  # as docs/mqtt-speakers.md asks of speakers

    def speaker() -> aiomqtt.Client:
        return aiomqtt.Client(
            "127.0.0.1",
            broker.port,
            identifier="spk-xa-loa-1",
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=session,
        )

    with broker:
        async with speaker() as client:
            await client.subscribe("loacam/xa/spk/loa-1/cmd", qos=1)
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="daemon") as daemon:
            await daemon.publish("loacam/xa/spk/loa-1/cmd", b"play", qos=1)
        broker.stop_blocking()  # SIGTERM: mosquitto writes its database as it exits
        broker.start_blocking()
        async with speaker() as client:
            async with asyncio.timeout(10):
                message = await anext(aiter(client.messages))
            assert (str(message.topic), message.payload) == ("loacam/xa/spk/loa-1/cmd", b"play")
    assert (broker.state_dir / "mosquitto.db").is_file()
