"""WS-Discovery for ONVIF cameras: one multicast Probe, the ProbeMatches that come back.

The replies come from anyone on the LAN, so they are parsed as untrusted input: a
size cap, no DTD (SOAP forbids one, and it is where entity expansion attacks live),
and a reply that is not a well-formed answer to our own Probe is skipped with a
debug log. Callers see `DiscoveredDevice` and `DiscoveryError` only.

The standard library's ElementTree is used rather than lxml: it is typed, expat
>= 2.4.1 bounds entity expansion anyway, and ElementTree never fetches external
entities or DTDs.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import random
import socket
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

log = logging.getLogger(__name__)

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
ONVIF_NETWORK = "http://www.onvif.org/ver10/network/wsdl"

MULTICAST_GROUP = "239.255.255.250"
PORT = 3702
# One hop: cameras sit on the office segment, and a probe has no business crossing routers.
MULTICAST_TTL = 1
# A ProbeMatches with a dozen scopes is 2-3 KB; anything far larger is not a camera talking.
MAX_REPLY_BYTES = 32 * 1024
NAME_SCOPE = "onvif://www.onvif.org/name/"
HARDWARE_SCOPE = "onvif://www.onvif.org/hardware/"

_PROBE = f"""<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="{SOAP12}" xmlns:a="{WSA}" xmlns:d="{WSD}" xmlns:dn="{ONVIF_NETWORK}">
<s:Header>
<a:MessageID>{{message_id}}</a:MessageID>
<a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>
<a:Action s:mustUnderstand="1">{WSD}/Probe</a:Action>
</s:Header>
<s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body>
</s:Envelope>
"""


class DiscoveryError(Exception):
    """WS-Discovery could not run: no socket, no multicast route, a bad interface address."""


class MessageError(DiscoveryError):
    """A datagram that is no usable WS-Discovery message; `discover()` skips it."""


@dataclass(frozen=True)
class DiscoveredDevice:
    endpoint: str
    """The WS-Addressing endpoint reference (usually urn:uuid:...), stable across reboots."""
    address: str
    """The IP address the answer came from."""
    xaddrs: tuple[str, ...]
    """Device service URLs, e.g. http://192.168.1.64/onvif/device_service."""
    scopes: tuple[str, ...]
    name: str | None
    model: str | None


async def discover(
    timeout_s: float = 3.0,
    *,
    interface_address: str | None = None,
    multicast_group: str = MULTICAST_GROUP,
    port: int = PORT,
) -> list[DiscoveredDevice]:
    """Probe for ONVIF video transmitters and collect the answers for `timeout_s` seconds.

    `interface_address` picks the network card (one of this computer's IPv4 addresses)
    the probe leaves from; by default the routing table decides.
    """
    message_id = f"urn:uuid:{uuid.uuid4()}"
    probe = _PROBE.format(message_id=message_id).encode()
    target = (multicast_group, port)
    loop = asyncio.get_running_loop()
    try:
        sock = _probe_socket(interface_address)
        try:
            # The first send is awaited on the bare socket so that "no route" surfaces
            # here as an exception; a transport would hand it to error_received().
            await loop.sock_sendto(sock, probe, target)
            transport, collector = await loop.create_datagram_endpoint(
                lambda: _Collector(message_id), sock=sock
            )
        except BaseException:
            sock.close()
            raise
    except OSError as exc:
        raise DiscoveryError(_plain(exc, multicast_group, interface_address)) from exc
    try:
        await _repeat_until(loop.time() + timeout_s, transport, probe, target)
    finally:
        transport.close()
    return sorted(
        collector.devices.values(),
        key=lambda device: (ipaddress.ip_address(device.address), device.endpoint),
    )


def _probe_socket(interface_address: str | None) -> socket.socket:
    if interface_address is not None:
        try:
            ipaddress.IPv4Address(interface_address)
        except ValueError:
            raise DiscoveryError(f"{interface_address!r} is not an IPv4 address") from None
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)  # noqa: FBT003 - the socket module's own signature
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, MULTICAST_TTL)
        if interface_address is not None:
            sock.setsockopt(
                socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface_address)
            )
        # Any local address by default: the answers come back to whichever address the
        # routing table gave the probe.
        sock.bind((interface_address or "", 0))
    except OSError:
        sock.close()
        raise
    return sock


async def _repeat_until(
    deadline: float,
    transport: asyncio.DatagramTransport,
    probe: bytes,
    target: tuple[str, int],
) -> None:
    """Send the Probe twice more, then wait out the deadline.

    UDP multicast is lossy: SOAP-over-UDP repeats a multicast message twice, after a
    random 50-250 ms and then twice that (capped at 500 ms). The same MessageID lets
    the cameras and `_Collector` drop the duplicates.
    """
    loop = asyncio.get_running_loop()
    delay = random.uniform(0.05, 0.25)  # noqa: S311 - spreading traffic, not a secret
    for _ in range(2):
        if loop.time() + delay >= deadline:
            break
        await asyncio.sleep(delay)
        transport.sendto(probe, target)
        delay = min(2 * delay, 0.5)
    await asyncio.sleep(max(0.0, deadline - loop.time()))


def _plain(exc: OSError, group: str, interface_address: str | None) -> str:
    if exc.errno in {errno.ENETUNREACH, errno.EHOSTUNREACH}:
        return f"no network route for multicast to {group}: is this computer on a network?"
    if exc.errno == errno.EADDRNOTAVAIL and interface_address is not None:
        return f"{interface_address} is not an address of this computer"
    return f"cannot send the discovery probe: {exc.strerror or exc}"


class _Collector(asyncio.DatagramProtocol):
    def __init__(self, message_id: str) -> None:
        self._message_id = message_id
        self.devices: dict[str, DiscoveredDevice] = {}

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        address = str(addr[0])
        try:
            matches = parse_probe_matches(data, address, self._message_id)
        except MessageError as exc:
            log.debug("%s: reply skipped: %s", address, exc)
            return
        for device in matches:
            # A camera answers each repeated Probe, and once per network card: keep the first.
            self.devices.setdefault(device.endpoint, device)

    def error_received(self, exc: Exception) -> None:
        # A later repeat failed to send, or an ICMP error came back: the first probe went out.
        log.debug("discovery socket: %s", exc)


def parse_probe_matches(data: bytes, address: str, message_id: str) -> list[DiscoveredDevice]:
    """The devices in a ProbeMatches datagram from `address` answering Probe `message_id`.

    Raises `MessageError` for anything else: oversized, not XML, a DTD, not SOAP, an
    answer to another Probe, no ProbeMatches.
    """
    root = parse_untrusted_xml(data)
    soap = _namespace(root.tag)
    if soap not in {SOAP12, SOAP11} or root.tag != f"{{{soap}}}Envelope":
        raise MessageError(f"not a SOAP envelope but {root.tag!r}")
    relates_to = _text(root.find(f"{{{soap}}}Header/{{{WSA}}}RelatesTo"))
    if relates_to != message_id:
        raise MessageError(f"answers another probe (RelatesTo {relates_to!r})")
    matches = root.find(f"{{{soap}}}Body/{{{WSD}}}ProbeMatches")
    if matches is None:
        raise MessageError("no ProbeMatches in the body")
    devices = []
    for match in matches.iterfind(f"{{{WSD}}}ProbeMatch"):
        endpoint = _text(match.find(f"{{{WSA}}}EndpointReference/{{{WSA}}}Address"))
        if not endpoint:
            log.debug("%s: ProbeMatch without an endpoint reference skipped", address)
            continue
        scopes = tuple(_text(match.find(f"{{{WSD}}}Scopes")).split())
        devices.append(
            DiscoveredDevice(
                endpoint=endpoint,
                address=address,
                xaddrs=tuple(_text(match.find(f"{{{WSD}}}XAddrs")).split()),
                scopes=scopes,
                name=scope_value(scopes, NAME_SCOPE),
                model=scope_value(scopes, HARDWARE_SCOPE),
            )
        )
    return devices


def scope_value(scopes: tuple[str, ...], prefix: str) -> str | None:
    """The URL-decoded rest of the first scope starting with `prefix`, printable characters only.

    `onvif://www.onvif.org/name/B%E1%BB%99%20ph%E1%BA%ADn` gives "Bộ phận". Control
    characters are dropped: the value comes off the network and ends up on terminals.
    """
    for scope in scopes:
        # scheme and host are case-insensitive (RFC 3986); some cameras capitalise them.
        if scope.lower().startswith(prefix):
            value = unquote(scope[len(prefix) :], errors="replace")
            return "".join(char for char in value if char.isprintable()).strip() or None
    return None


class _NoDoctypeBuilder(ET.TreeBuilder):
    def doctype(self, _name: str, _pubid: str | None, _system: str | None) -> None:
        # Called by expat at <!DOCTYPE, before any entity declaration is read.
        raise MessageError("a DTD in a SOAP message")


def parse_untrusted_xml(data: bytes, max_bytes: int = MAX_REPLY_BYTES) -> ET.Element:
    """Parse XML from the network, refusing any DTD (and with it, every entity trick)."""
    if len(data) > max_bytes:
        raise MessageError(f"{len(data)} bytes, more than a discovery message needs")
    # S314: the builder refuses any DTD, which is all defusedxml would add here.
    parser = ET.XMLParser(target=_NoDoctypeBuilder())  # noqa: S314
    try:
        parser.feed(data)
        return parser.close()
    except ET.ParseError as exc:
        raise MessageError(f"not well-formed XML: {exc}") from None


def _namespace(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


def _text(element: ET.Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""
