"""SOAP envelopes for the simulator: safe parsing, WS-Security checks, faults.

lxml is confined to this module; handlers see `SoapRequest` and plain strings.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from xml.sax.saxutils import escape

from lxml import etree

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST_TYPE = (  # the Type attribute of a PasswordDigest
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
    "#PasswordDigest"
)
NS = {
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tptz": "http://www.onvif.org/ver20/ptz/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "ter": "http://www.onvif.org/ver10/error",
    "wsse": WSSE,
    "wsu": WSU,
}
# The window real cameras allow between a token's Created and their own clock.
CREATED_WINDOW = timedelta(minutes=5)
MAX_REQUEST_BYTES = 256 * 1024


def xml_text(value: object) -> str:
    """Escape a value for element text or a double-quoted attribute."""
    return escape(str(value), {'"': "&quot;"})


class SoapFaultError(Exception):
    """An error answered as a SOAP Fault (HTTP 400 for Sender, 500 for Receiver)."""

    def __init__(
        self, code: Literal["Sender", "Receiver"], subcodes: tuple[str, ...], reason: str
    ) -> None:
        super().__init__(reason)
        self.code = code
        self.subcodes = subcodes  # prefixed with ter:, outermost first
        self.reason = reason

    @property
    def http_status(self) -> int:
        return 400 if self.code == "Sender" else 500


def not_supported(reason: str = "Optional Action Not Implemented") -> SoapFaultError:
    return SoapFaultError("Receiver", ("ter:ActionNotSupported",), reason)


def not_authorized() -> SoapFaultError:
    # Real cameras never say why (password, user or clock): neither does the simulator.
    return SoapFaultError("Sender", ("ter:NotAuthorized",), "Sender not Authorized")


def invalid_arg(subcode: str, reason: str) -> SoapFaultError:
    return SoapFaultError("Sender", ("ter:InvalidArgVal", subcode), reason)


@dataclass(frozen=True)
class UsernameToken:
    username: str
    password: str
    digest: bool  # PasswordDigest; otherwise PasswordText
    nonce: str | None
    created: str | None


@dataclass(frozen=True)
class SoapRequest:
    envelope_ns: str
    namespace: str
    operation: str
    token: UsernameToken | None
    _body: etree._Element  # the operation element

    def text(self, path: str) -> str | None:
        """Text of the first element at `path` (prefixes from NS) below the operation."""
        found = self._body.find(path, NS)
        return None if found is None else (found.text or "").strip()

    def attr(self, path: str, name: str) -> str | None:
        found = self._body.find(path, NS)
        return None if found is None else found.get(name)

    def texts(self, path: str) -> list[str]:
        return [(found.text or "").strip() for found in self._body.findall(path, NS)]


def _parser() -> etree.XMLParser:
    # No entities, no DTD, no network: a request is data, never instructions.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _malformed(reason: str) -> SoapFaultError:
    return SoapFaultError("Sender", ("ter:WellFormed",), reason)


def parse_request(data: bytes | None) -> SoapRequest:
    """The request in `data` (None: a body larger than MAX_REQUEST_BYTES)."""
    if data is None:
        raise _malformed("The request is too large")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise _malformed(f"The request is not well-formed XML: {exc}") from exc
    if root is None or not isinstance(root.tag, str):
        raise _malformed("The request has no root element")
    qname = etree.QName(root)
    if qname.localname != "Envelope" or qname.namespace not in {SOAP12, SOAP11}:
        raise _malformed("The root element is not a SOAP Envelope")
    envelope_ns: str = qname.namespace
    body = root.find(f"{{{envelope_ns}}}Body")
    operations = [] if body is None else [el for el in body if isinstance(el.tag, str)]
    if len(operations) != 1:
        raise _malformed("The SOAP Body must hold exactly one operation")
    operation = etree.QName(operations[0])
    header = root.find(f"{{{envelope_ns}}}Header")
    token = None if header is None else _username_token(header)
    return SoapRequest(
        envelope_ns=envelope_ns,
        namespace=operation.namespace or "",
        operation=operation.localname,
        token=token,
        _body=operations[0],
    )


def _username_token(header: etree._Element) -> UsernameToken | None:
    token = header.find("wsse:Security/wsse:UsernameToken", NS)
    if token is None:
        return None
    password = token.find("wsse:Password", NS)
    return UsernameToken(
        username=(token.findtext("wsse:Username", "", NS) or "").strip(),
        password=(password.text or "").strip() if password is not None else "",
        digest=password is not None and password.get("Type") == DIGEST_TYPE,
        nonce=token.findtext("wsse:Nonce", None, NS),
        created=token.findtext("wsu:Created", None, NS),
    )


def password_digest(nonce: bytes, created: str, password: str) -> str:
    """WS-Security UsernameToken Profile 1.0: Base64(SHA-1(nonce + created + password))."""
    # SHA-1 is what the ONVIF / WS-Security profile mandates, not our choice.
    raw = hashlib.sha1(nonce + created.encode() + password.encode()).digest()  # noqa: S324
    return base64.b64encode(raw).decode("ascii")


def _parse_created(created: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(created.strip())
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _created_problem(token: UsernameToken, device_now: datetime) -> str | None:
    if token.created is None:
        # Created is optional with PasswordText; a digest without it would be replayable.
        return "PasswordDigest without Created" if token.digest else None
    created = _parse_created(token.created)
    if created is None:
        return f"unreadable Created {token.created!r}"
    if abs(created - device_now) > CREATED_WINDOW:
        return f"Created {token.created} is more than 5 min from the device clock"
    return None


def _expected_password(token: UsernameToken, password: str) -> str | None:
    """What the token's Password must read, None when its nonce is unusable."""
    if not token.digest:
        return password
    try:
        nonce = base64.b64decode(token.nonce or "", validate=True)
    except binascii.Error:
        return None
    return password_digest(nonce, token.created or "", password) if nonce else None


def check_token(
    token: UsernameToken | None, *, username: str, password: str, device_now: datetime
) -> str | None:
    """None when the token is good, else why not (for the log, never for the client)."""
    if token is None:
        return "no WS-Security UsernameToken"
    problem = _created_problem(token, device_now)
    if problem is not None:
        return problem
    expected = _expected_password(token, password)
    if expected is None:
        return "PasswordDigest without a usable Base64 Nonce"
    user_ok = hmac.compare_digest(token.username.encode(), username.encode())
    password_ok = hmac.compare_digest(token.password.encode(), expected.encode())
    return None if user_ok and password_ok else "wrong username or password"


_NSDECL = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NS.items())


def render_envelope(envelope_ns: str, body: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<s:Envelope xmlns:s="{envelope_ns}" {_NSDECL}>'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def render_fault(envelope_ns: str, fault: SoapFaultError) -> bytes:
    reason = xml_text(fault.reason)
    if envelope_ns == SOAP11:
        code = "s:Client" if fault.code == "Sender" else "s:Server"
        detail = "".join(f"<{sub}/>" for sub in fault.subcodes)
        body = (
            f"<s:Fault><faultcode>{code}</faultcode><faultstring>{reason}</faultstring>"
            f"<detail>{detail}</detail></s:Fault>"
        )
        return render_envelope(envelope_ns, body)
    subcodes = "".join(
        f"<s:Subcode><s:Value>{sub}</s:Value>" for sub in fault.subcodes
    ) + "</s:Subcode>" * len(fault.subcodes)
    body = (
        f"<s:Fault><s:Code><s:Value>s:{fault.code}</s:Value>{subcodes}</s:Code>"
        f'<s:Reason><s:Text xml:lang="en">{reason}</s:Text></s:Reason></s:Fault>'
    )
    return render_envelope(envelope_ns, body)


def content_type(envelope_ns: str) -> str:
    if envelope_ns == SOAP11:
        return "text/xml; charset=utf-8"
    return "application/soap+xml; charset=utf-8"
