"""WS-Discovery: `discover()` and `loacam discover` against simulated cameras.

Every probe runs inside a private network namespace made by `unshare --net` (loopback
only, gone when the process exits): nothing is ever sent on the host's networks.
The parsing tests below need no network at all.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from drivers.camera.discovery import (
    HARDWARE_SCOPE,
    NAME_SCOPE,
    MessageError,
    parse_probe_matches,
    scope_value,
)
from drivers.sim.discovery import DiscoveryResponder
from tests.netns_discovery import CAMERAS, ROGUE_ENDPOINT, network_namespace
from tests.support import in_private_network

LOACAM = str(Path(sys.executable).with_name("loacam"))


def scene(name: str) -> dict[str, Any]:
    done = in_private_network(
        sys.executable, "-W", "error", "-m", "tests.netns_discovery", name,
        str(network_namespace()),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no warning, no unclosed socket
    outcome: dict[str, Any] = json.loads(done.stdout)
    return outcome


@pytest.fixture(scope="module")
def probe_scene() -> dict[str, Any]:
    return scene("probe")


def test_discover_finds_exactly_the_two_simulated_cameras(probe_scene: dict[str, Any]) -> None:
    found = [
        (d["endpoint"], d["address"], d["xaddrs"], d["name"], d["model"])
        for d in probe_scene["devices"]
    ]
    # Sorted by address as numbers (127.0.0.9 before 127.0.0.10), not as text.
    assert found == [
        (
            "urn:uuid:22222222-2222-4222-8222-222222222222",
            "127.0.0.9",
            [
                "http://127.0.0.1:8001/onvif/device_service",
                "http://[::1]:8001/onvif/device_service",
            ],
            "Bộ phận một cửa",
            "DS-2CD2143G2-I",
        ),
        (
            "urn:uuid:11111111-1111-4111-8111-111111111111",
            "127.0.0.10",
            ["http://127.0.0.1:8002/onvif/device_service"],
            "Quầy 2",
            "IPC-HDW2431T",
        ),
    ]
    assert [d["scopes"] for d in probe_scene["devices"]] == [
        CAMERAS[1]["scopes"],
        CAMERAS[0]["scopes"],
    ]


def test_malformed_and_foreign_replies_are_skipped(probe_scene: dict[str, Any]) -> None:
    assert ROGUE_ENDPOINT not in [d["endpoint"] for d in probe_scene["devices"]]
    # Every rogue datagram arrived and was skipped, each for its own reason.
    assert probe_scene["rogue_sent"] == 7
    reasons = "\n".join(probe_scene["skipped"])
    assert len(probe_scene["skipped"]) == 7, reasons
    for reason in (
        "not well-formed XML",
        "answers another probe (RelatesTo 'urn:uuid:someone-else')",
        "a DTD in a SOAP message",
        "more than a discovery message needs",
        "no ProbeMatches in the body",
        "not a SOAP envelope",
    ):
        assert reason in reasons


def test_cli_discover_prints_both_cameras() -> None:
    outcome = scene("cli")
    assert outcome["returncode"] == 0, outcome["stderr"]
    assert outcome["stdout"] == (
        "Tìm thấy 2 camera ONVIF:\n"
        "  127.0.0.9   DS-2CD2143G2-I  Bộ phận một cửa  http://127.0.0.1:8001/onvif/device_service\n"
        "  127.0.0.10  IPC-HDW2431T    Quầy 2           http://127.0.0.1:8002/onvif/device_service\n"
    )


def test_cli_discover_says_so_when_nothing_answers() -> None:
    outcome = scene("cli-none")
    assert (outcome["returncode"], outcome["stderr"]) == (0, "")
    assert outcome["stdout"] == "Không tìm thấy camera ONVIF nào.\n"


@pytest.mark.parametrize(
    ("arguments", "exit_code", "message"),
    [
        # The namespace's loopback is down: there is no route for multicast.
        ([], 69, "loacam: no network route for multicast to 239.255.255.250"),
        (["--interface", "192.0.2.7"], 69, "loacam: 192.0.2.7 is not an address of this computer"),
        (["--interface", "camera-lan"], 69, "loacam: 'camera-lan' is not an IPv4 address"),
        (["--timeout", "0"], 64, "loacam: --timeout takes more than 0"),
    ],
)
def test_cli_discover_failures_are_plain_words(
    arguments: list[str], exit_code: int, message: str
) -> None:
    done = in_private_network(LOACAM, "discover", "--timeout", "1", *arguments)
    assert done.returncode == exit_code, done.stderr
    assert done.stderr.startswith(message)
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


# Parsing: pure, no sockets.

MESSAGE_ID = "urn:uuid:0f5d5c7a-3c5e-4b43-9a1e-2d6f0c1b8e11"
# Shaped like a Hikvision answer: other prefixes, two ProbeMatch, extra header blocks.
CAMERA_REPLY = f"""<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"
 xmlns:wsadis="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"
 xmlns:dn="http://www.onvif.org/ver10/network/wsdl">
<env:Header>
<wsadis:MessageID>urn:uuid:d5ab1e2a-0000-4000-8000-c056e3a1b2c3</wsadis:MessageID>
<wsadis:RelatesTo>
 {MESSAGE_ID}
</wsadis:RelatesTo>
<wsadis:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsadis:To>
<wsadis:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsadis:Action>
<d:AppSequence InstanceId="1700000000" MessageNumber="3"/>
</env:Header>
<env:Body><d:ProbeMatches>
<d:ProbeMatch>
<wsadis:EndpointReference>
<wsadis:Address>urn:uuid:4c4c4544-0042-3010-8054-b4c04f4a3132</wsadis:Address>
</wsadis:EndpointReference>
<d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>
<d:Scopes>onvif://www.onvif.org/type/video_encoder ONVIF://WWW.ONVIF.ORG/Name/HIKVISION%20Qu%E1%BA%A7y
  onvif://www.onvif.org/hardware/DS-2CD1023G0E-I</d:Scopes>
<d:XAddrs>http://192.168.1.64/onvif/device_service http://[fe80::1]/onvif/device_service</d:XAddrs>
<d:MetadataVersion>10</d:MetadataVersion>
</d:ProbeMatch>
<d:ProbeMatch><d:Types>dn:NetworkVideoTransmitter</d:Types></d:ProbeMatch>
</d:ProbeMatches></env:Body>
</env:Envelope>
""".encode()


def test_a_real_world_shaped_reply_is_parsed() -> None:
    (device,) = parse_probe_matches(CAMERA_REPLY, "192.168.1.64", MESSAGE_ID)
    assert device.endpoint == "urn:uuid:4c4c4544-0042-3010-8054-b4c04f4a3132"
    assert device.address == "192.168.1.64"
    assert device.xaddrs == (
        "http://192.168.1.64/onvif/device_service",
        "http://[fe80::1]/onvif/device_service",
    )
    assert len(device.scopes) == 3
    assert device.name == "HIKVISION Quầy"  # scheme and host compared without case
    assert device.model == "DS-2CD1023G0E-I"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (CAMERA_REPLY.replace(MESSAGE_ID.encode(), b"urn:uuid:other"), "answers another probe"),
        (
            CAMERA_REPLY.replace(
                b"?>",
                b'?><!DOCTYPE env:Envelope [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>',
                1,
            ).replace(b"HIKVISION", b"&b;"),
            "a DTD",
        ),
        (
            CAMERA_REPLY.replace(
                b"?>", b'?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/hostname">]>', 1
            ).replace(b"HIKVISION", b"&xxe;"),
            "a DTD",
        ),
        (CAMERA_REPLY.decode().encode("utf-16"), "not well-formed XML"),  # says UTF-8, is not
        (b"", "not well-formed XML"),
        (CAMERA_REPLY[:-40], "not well-formed XML"),
        (b"<Envelope/>", "not a SOAP envelope"),
        (CAMERA_REPLY + b"<!--" + b" " * 40_000 + b"-->", "more than a discovery message"),
    ],
)
def test_unusable_replies_raise_message_error(data: bytes, reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        parse_probe_matches(data, "192.168.1.66", MESSAGE_ID)


def test_scope_values_are_decoded_and_made_printable() -> None:
    scopes = (
        "onvif://www.onvif.org/name/C%E1%BB%ADa%1B%5B2J%20ch%C3%ADnh",
        "onvif://www.onvif.org/hardware/",
        "onvif://www.onvif.org/hardware/X-1",
    )
    assert scope_value(scopes, NAME_SCOPE) == "Cửa[2J chính"  # the ESC byte is gone
    assert scope_value(scopes, HARDWARE_SCOPE) is None  # the first one counts, and it is empty
    assert scope_value((), NAME_SCOPE) is None


# The simulator's answers, without sockets.

PROBE = """<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
 xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery">
<s:Header><a:MessageID>{message_id}</a:MessageID></s:Header>
<s:Body><d:Probe>{types}</d:Probe></s:Body>
</s:Envelope>
"""


def probe(message_id: str, types: str | None) -> bytes:
    element = "" if types is None else f"<d:Types>{types}</d:Types>"
    return PROBE.format(message_id=message_id, types=element).encode()


def test_responder_answers_video_probes_once_each() -> None:
    camera = DiscoveryResponder(
        "urn:uuid:c0ffee00-0000-4000-8000-000000000001",
        ["http://10.0.0.5/onvif/device_service"],
        [f"{NAME_SCOPE}C%E1%BB%95ng%20%3C1%3E", f"{HARDWARE_SCOPE}SIM"],
    )
    answer = camera.answer(probe("urn:uuid:p1", "dn:NetworkVideoTransmitter"))
    assert answer is not None
    (device,) = parse_probe_matches(answer, "10.0.0.5", "urn:uuid:p1")
    assert (device.endpoint, device.name, device.model) == (
        "urn:uuid:c0ffee00-0000-4000-8000-000000000001",
        "Cổng <1>",
        "SIM",
    )
    assert device.xaddrs == ("http://10.0.0.5/onvif/device_service",)
    assert camera.answer(probe("urn:uuid:p1", "dn:NetworkVideoTransmitter")) is None  # repeat
    assert camera.answer(probe("urn:uuid:p2", None)) is not None  # no Types: any device
    assert camera.answer(probe("urn:uuid:p3", "pr:Printer")) is None
    assert camera.answer(probe("urn:uuid:p4&<x>", "dn:NetworkVideoTransmitter")) is None  # bad XML
    # The MessageID is echoed as RelatesTo: escaped, not pasted into the XML.
    echoed = camera.answer(
        probe("urn:uuid:p5&amp;&lt;/a:RelatesTo&gt;", "dn:NetworkVideoTransmitter")
    )
    assert echoed is not None
    assert parse_probe_matches(echoed, "10.0.0.5", "urn:uuid:p5&</a:RelatesTo>")
    assert camera.answer(b"\xff\xfe garbage") is None
