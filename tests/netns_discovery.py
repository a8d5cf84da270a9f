"""WS-Discovery scenes inside a private network namespace, for tests/test_discovery.py.

Run as `unshare --net -- python -m tests.netns_discovery SCENE NETNS`, NETNS being
the starter's own `network_namespace()`: the new namespace has a loopback interface
only, so no probe can reach a real network. This script refuses to run anywhere
else. It brings `lo` up with a multicast route, starts simulated cameras (and a
rogue peer), plays the scene and prints the outcome as JSON.

  probe     discover() with two cameras and a rogue sending malformed answers
  cli       `loacam discover --timeout 1` with the same two cameras
  cli-none  the same with no camera at all
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

from drivers.camera.discovery import MAX_REPLY_BYTES, discover
from drivers.sim.discovery import DiscoveryResponder

VIETNAMESE_NAME = "B%E1%BB%99%20ph%E1%BA%ADn%20m%E1%BB%99t%20c%E1%BB%ADa"  # Bộ phận một cửa
CAMERAS = [
    # Endpoint order is the reverse of address order, and .9 < .10 only as numbers:
    # the expected result order shows discover() sorts by address.
    {
        "endpoint": "urn:uuid:11111111-1111-4111-8111-111111111111",
        "interface_address": "127.0.0.10",
        "xaddrs": ["http://127.0.0.1:8002/onvif/device_service"],
        "scopes": [
            "onvif://www.onvif.org/type/video_encoder",
            "onvif://www.onvif.org/name/Qu%E1%BA%A7y%202",  # Quầy 2
            "onvif://www.onvif.org/hardware/IPC-HDW2431T",
            "onvif://www.onvif.org/location/city/Ph%C3%BAc%20H%C3%B2a",
        ],
    },
    {
        "endpoint": "urn:uuid:22222222-2222-4222-8222-222222222222",
        "interface_address": "127.0.0.9",
        "xaddrs": [
            "http://127.0.0.1:8001/onvif/device_service",
            "http://[::1]:8001/onvif/device_service",
        ],
        "scopes": [
            "onvif://www.onvif.org/type/video_encoder",
            f"onvif://www.onvif.org/name/{VIETNAMESE_NAME}",
            "onvif://www.onvif.org/hardware/DS-2CD2143G2-I",
        ],
    },
]
ROGUE_ENDPOINT = "urn:uuid:99999999-9999-4999-8999-999999999999"


def network_namespace() -> int:
    """The identity (inode) of the calling process's network namespace."""
    return Path("/proc/self/ns/net").stat().st_ino


def require_private_namespace(starter_namespace: int) -> None:
    """Refuse to run in the namespace of the process that started us, or with a real NIC."""
    interfaces = [name for _, name in socket.if_nameindex()]
    if network_namespace() == starter_namespace or interfaces != ["lo"]:
        sys.exit("netns_discovery: not in a private network namespace; run under `unshare --net`")


def _bring_up_loopback() -> None:
    for command in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "link", "set", "lo", "multicast", "on"],
        ["ip", "route", "add", "224.0.0.0/4", "dev", "lo"],
    ):
        subprocess.run(command, check=True)


def _responders() -> list[DiscoveryResponder]:
    return [
        DiscoveryResponder(
            camera["endpoint"],
            camera["xaddrs"],
            camera["scopes"],
            interface_address=camera["interface_address"],
        )
        for camera in CAMERAS
    ]


class _Rogue(asyncio.DatagramProtocol):
    """A peer answering every Probe with datagrams discover() must skip, one of each kind.

    Each is derived from a well-formed answer for ROGUE_ENDPOINT, so a check that
    went missing in discover() would let the rogue into its result.
    """

    def __init__(self) -> None:
        self.camera = DiscoveryResponder(ROGUE_ENDPOINT, ["http://127.0.0.66/"], [])
        self.transport: asyncio.DatagramTransport | None = None
        self.sent = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Python 3.11's selector datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        good = self.camera.answer(data)
        if good is None or self.transport is None:
            return  # a repeat of a Probe already answered
        header, _, rest = good.partition(b"\n")
        variants = [
            b"\x00\xff garbage, not XML",
            re.sub(rb"<a:RelatesTo>[^<]*<", b"<a:RelatesTo>urn:uuid:someone-else<", good),
            header + b'\n<!DOCTYPE x [<!ENTITY a "aaaaaaaa">]>\n' + rest,
            good.replace(b"</s:Body>", b"<!--" + b"x" * MAX_REPLY_BYTES + b"--></s:Body>"),
            good[: len(good) // 2],
            re.sub(rb"<s:Body>.*</s:Body>", b"<s:Body/>", good, flags=re.DOTALL),
            b"<html><body>not SOAP</body></html>",
        ]
        for variant in variants:
            self.transport.sendto(variant, addr)
        self.sent += len(variants)


def _rogue_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("239.255.255.250", 3702))
    group = socket.inet_aton("239.255.255.250") + socket.inet_aton("127.0.0.66")
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group)
    return sock


class _Skipped(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.reasons: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "reply skipped" in record.msg:
            self.reasons.append(record.getMessage())


async def _probe_scene() -> dict[str, Any]:
    skipped = _Skipped()
    logger = logging.getLogger("drivers.camera.discovery")
    logger.addHandler(skipped)
    logger.setLevel(logging.DEBUG)
    loop = asyncio.get_running_loop()
    transport, rogue = await loop.create_datagram_endpoint(_Rogue, sock=_rogue_socket())
    try:
        cameras = _responders()
        for camera in cameras:
            await camera.start()
        try:
            devices = await discover(1.0)
        finally:
            for camera in cameras:
                await camera.stop()
    finally:
        transport.close()
    return {
        "devices": [dataclasses.asdict(device) for device in devices],
        "rogue_sent": rogue.sent,
        "skipped": skipped.reasons,
    }


async def _cli_scene(cameras: list[DiscoveryResponder]) -> dict[str, Any]:
    loacam = Path(sys.executable).with_name("loacam")
    for camera in cameras:
        await camera.start()
    try:
        process = await asyncio.create_subprocess_exec(
            str(loacam),
            "discover",
            "--timeout",
            "1",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await process.communicate()
    finally:
        for camera in cameras:
            await camera.stop()
    return {
        "returncode": process.returncode,
        "stdout": stdout.decode(),
        "stderr": stderr.decode(),
    }


SCENES: dict[str, Callable[[], Coroutine[None, None, dict[str, Any]]]] = {
    "probe": _probe_scene,
    "cli": lambda: _cli_scene(_responders()),
    "cli-none": lambda: _cli_scene([]),
}


def main() -> None:
    scene, starter_namespace = sys.argv[1], int(sys.argv[2])
    require_private_namespace(starter_namespace)
    _bring_up_loopback()
    outcome = asyncio.run(SCENES[scene]())
    sys.stdout.write(json.dumps(outcome, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
