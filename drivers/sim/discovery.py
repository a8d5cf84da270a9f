"""A simulated camera's WS-Discovery side: it answers multicast Probes like an ONVIF camera.

Several responders share port 3702 on one host (SO_REUSEPORT), each answering for
its own endpoint, so a test or `loacam demo` can show a LAN of cameras on loopback.
The wire format is written out here on its own rather than shared with the client
in drivers/camera/discovery.py, so that a mistake there is not mirrored here; only
the hardened XML parser is shared.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import socket
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any
from xml.sax.saxutils import escape

from drivers.camera.discovery import MessageError, parse_untrusted_xml

log = logging.getLogger(__name__)

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
ONVIF_NETWORK = "http://www.onvif.org/ver10/network/wsdl"
VIDEO_TRANSMITTER = "NetworkVideoTransmitter"
MAX_PROBE_BYTES = 8 * 1024

_PROBE_MATCHES = f"""<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="{SOAP12}" xmlns:a="{WSA}" xmlns:d="{WSD}" xmlns:dn="{ONVIF_NETWORK}">
<s:Header>
<a:MessageID>urn:uuid:{{message_id}}</a:MessageID>
<a:RelatesTo>{{relates_to}}</a:RelatesTo>
<a:To>{WSA}/role/anonymous</a:To>
<a:Action>{WSD}/ProbeMatches</a:Action>
<d:AppSequence InstanceId="{{instance_id}}" MessageNumber="{{message_number}}"/>
</s:Header>
<s:Body><d:ProbeMatches><d:ProbeMatch>
<a:EndpointReference><a:Address>{{endpoint}}</a:Address></a:EndpointReference>
<d:Types>dn:{VIDEO_TRANSMITTER}</d:Types>
<d:Scopes>{{scopes}}</d:Scopes>
<d:XAddrs>{{xaddrs}}</d:XAddrs>
<d:MetadataVersion>{{metadata_version}}</d:MetadataVersion>
</d:ProbeMatch></d:ProbeMatches></s:Body>
</s:Envelope>
"""


class DiscoveryResponder:
    """Answers each Probe for NetworkVideoTransmitter (or for any type) with a ProbeMatches.

    `endpoint` is the camera's endpoint reference, e.g. "urn:uuid:...". `scopes` are
    full scope URIs, already URL-encoded as they go on the wire. `interface_address`
    is the camera's own IP: the group is joined there and the answers come from it
    (any 127.x.y.z works on loopback, so several "cameras" can have their own address).
    The Probe's Scopes filter is not evaluated: every Probe for video transmitters is
    answered.
    """

    def __init__(
        self,
        endpoint: str,
        xaddrs: Sequence[str],
        scopes: Sequence[str],
        *,
        interface_address: str = "127.0.0.1",
        multicast_group: str = "239.255.255.250",
        port: int = 3702,
        metadata_version: int = 1,
    ) -> None:
        self.endpoint = endpoint
        self.xaddrs = tuple(xaddrs)
        self.scopes = tuple(scopes)
        self.interface_address = interface_address
        self.multicast_group = multicast_group
        self.port = port
        self.metadata_version = metadata_version
        self._sockets: list[tuple[asyncio.DatagramTransport, _Socket]] = []
        # A client repeats its Probe with the same MessageID; answer it once.
        self._seen: collections.deque[str] = collections.deque(maxlen=64)
        self._instance_id = int(time.time())
        self._message_numbers = itertools.count(1)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            # Answers leave from a socket of their own, bound to the camera's address:
            # the listening socket is bound to the group and cannot choose its source.
            self._sockets.append(
                await loop.create_datagram_endpoint(_Socket, local_addr=(self.interface_address, 0))
            )
            self._sockets.append(
                await loop.create_datagram_endpoint(
                    lambda: _Socket(self._received), sock=self._listening_socket()
                )
            )
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        sockets, self._sockets = self._sockets, []
        for transport, _ in sockets:
            transport.close()
        for _, protocol in sockets:
            await protocol.closed  # the socket is closed once this returns

    async def __aenter__(self) -> DiscoveryResponder:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def _listening_socket(self) -> socket.socket:
        """On the group's port, bound to the group address so it sees this group only."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.multicast_group, self.port))
            membership = socket.inet_aton(self.multicast_group) + socket.inet_aton(
                self.interface_address
            )
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        except OSError:
            sock.close()
            raise
        return sock

    def _received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        reply = self.answer(data)
        if reply is not None and self._sockets:
            sender, _ = self._sockets[0]
            sender.sendto(reply, addr)  # unicast, back to the prober's address and port

    def answer(self, data: bytes) -> bytes | None:
        """The ProbeMatches for a Probe datagram, or None when it is not ours to answer."""
        try:
            root = parse_untrusted_xml(data, MAX_PROBE_BYTES)
        except MessageError as exc:
            log.debug("%s: datagram skipped: %s", self.endpoint, exc)
            return None
        probe = root.find(f"{{{SOAP12}}}Body/{{{WSD}}}Probe")
        message_id = _text(root.find(f"{{{SOAP12}}}Header/{{{WSA}}}MessageID"))
        if probe is None or not message_id or message_id in self._seen:
            return None
        self._seen.append(message_id)
        types = _text(probe.find(f"{{{WSD}}}Types")).split()
        # Matched by local name: clients in the field send the dn: prefix, and cameras
        # do not resolve it either.
        if types and not any(name.rpartition(":")[2] == VIDEO_TRANSMITTER for name in types):
            return None
        return _PROBE_MATCHES.format(
            message_id=uuid.uuid4(),
            relates_to=escape(message_id),
            instance_id=self._instance_id,
            message_number=next(self._message_numbers),
            endpoint=escape(self.endpoint),
            scopes=escape(" ".join(self.scopes)),
            xaddrs=escape(" ".join(self.xaddrs)),
            metadata_version=self.metadata_version,
        ).encode()


class _Socket(asyncio.DatagramProtocol):
    """One UDP socket: hands datagrams to `received`, resolves `closed` when it is closed."""

    def __init__(self, received: Callable[[bytes, tuple[Any, ...]], None] | None = None) -> None:
        self._received = received
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if self._received is not None:
            self._received(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("discovery responder socket: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            log.warning("discovery responder socket failed: %s", exc)
        if not self.closed.done():
            self.closed.set_result(None)


def _text(element: ET.Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""
