"""The snapshot URL: a JPEG drawn per request, behind HTTP Basic or Digest (RFC 7616, MD5)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from enum import Enum

import cv2
import numpy as np

REALM = "loacam-sim"
NONCE_LIFETIME_S = 300.0
JPEG_QUALITY = 80


def render_jpeg_blocking(width: int, height: int, lines: list[str], phase: float) -> bytes:
    """A colour gradient that drifts with `phase`, with `lines` burnt in (a few ms of CPU)."""
    columns = np.linspace(0.0, 255.0, width, dtype=np.float32)[np.newaxis, :]
    rows = np.linspace(0.0, 255.0, height, dtype=np.float32)[:, np.newaxis]
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[..., 0] = np.broadcast_to((columns + phase * 40.0) % 256.0, (height, width))
    image[..., 1] = np.broadcast_to(rows, (height, width))
    image[..., 2] = (columns + rows) / 2.0
    scale = width / 1280.0
    for index, line in enumerate(lines):
        # Hershey fonts draw ASCII only.
        text = line.encode("ascii", "replace").decode("ascii")
        origin = (int(24 * scale), int((60 + 56 * index) * scale))
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 1.4 * scale, (0, 0, 0),
                    max(1, int(6 * scale)), cv2.LINE_AA)  # fmt: skip
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 1.4 * scale,
                    (255, 255, 255), max(1, int(2 * scale)), cv2.LINE_AA)  # fmt: skip
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("OpenCV could not encode the snapshot")
    return encoded.tobytes()


class Verdict(Enum):
    OK = "ok"
    STALE = "stale"  # a good answer to a nonce we no longer accept: the client should retry
    DENIED = "denied"


_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


def _digest_params(value: str) -> dict[str, str]:
    return {
        match.group(1).lower(): match.group(2) if match.group(2) is not None else match.group(3)
        for match in _PARAM.finditer(value)
    }


def _md5(text: str) -> str:
    # RFC 7616 with algorithm=MD5: what camera snapshot URLs and their clients speak.
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324


def _same(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())


class HttpAuth:
    """Basic and Digest checks; nonces are signed timestamps, so nothing is remembered."""

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)

    def _sign(self, stamp: str) -> str:
        return hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]

    def new_nonce(self) -> str:
        stamp = f"{time.time():.3f}"
        return f"{stamp}-{self._sign(stamp)}"

    def _nonce_verdict(self, nonce: str) -> Verdict:
        stamp, _, mac = nonce.partition("-")
        if not _same(mac, self._sign(stamp)):
            return Verdict.DENIED
        if time.time() - float(stamp) > NONCE_LIFETIME_S:
            return Verdict.STALE
        return Verdict.OK

    def challenges(self, *, allow_basic: bool, stale: bool = False) -> list[str]:
        # Digest first: aiohttp's DigestAuthMiddleware reads only the first
        # WWW-Authenticate header, and httpx's DigestAuth wants a Digest scheme first.
        digest = f'Digest realm="{REALM}", qop="auth", algorithm=MD5, nonce="{self.new_nonce()}"'
        if stale:
            digest += ", stale=true"
        return [digest, f'Basic realm="{REALM}"'] if allow_basic else [digest]

    def check(
        self,
        authorization: str | None,
        *,
        method: str,
        uri: str,
        username: str,
        password: str,
        allow_basic: bool,
    ) -> Verdict:
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() == "basic" and allow_basic:
            return self._check_basic(value.strip(), username, password)
        if scheme.lower() == "digest":
            return self._check_digest(value, method, uri, username, password)
        return Verdict.DENIED

    @staticmethod
    def _check_basic(value: str, username: str, password: str) -> Verdict:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return Verdict.DENIED
        given_user, _, given_password = decoded.partition(":")
        good = _same(given_user, username) & _same(given_password, password)
        return Verdict.OK if good else Verdict.DENIED

    def _check_digest(
        self, value: str, method: str, uri: str, username: str, password: str
    ) -> Verdict:
        params = _digest_params(value)
        needed = ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce")
        if any(key not in params for key in needed):
            return Verdict.DENIED
        if (
            params["realm"] != REALM
            or params["uri"] != uri
            or params["qop"] != "auth"
            or params.get("algorithm", "MD5").upper() != "MD5"
        ):
            return Verdict.DENIED
        ha1 = _md5(f"{username}:{REALM}:{password}")
        ha2 = _md5(f"{method}:{params['uri']}")
        expected = _md5(
            f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:{params['qop']}:{ha2}"
        )
        if not (_same(params["username"], username) & _same(params["response"], expected)):
            return Verdict.DENIED
        try:
            return self._nonce_verdict(params["nonce"])
        except ValueError:
            return Verdict.DENIED
