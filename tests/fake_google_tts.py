"""A fake Google Translate text-to-speech service, reached the way gTTS reaches Google.

gTTS sends its requests through the proxy named in HTTPS_PROXY. This fake is that proxy, on
127.0.0.1: it accepts `CONNECT translate.google.<tld>:443`, answers `200 Connection
established`, then terminates TLS itself with a throwaway self-signed certificate (gTTS
passes verify=False), reads the POST to /_/TranslateWebserverUi/data/batchexecute, records
the text piece it carries, and answers as scripted: MP3 audio in a batchexecute body, an HTTP
status (429...), or nothing at all (a hang, released when the fake closes).

Nothing here ever connects anywhere: a CONNECT to any other host is refused with 403.
"""

from __future__ import annotations

import base64
import contextlib
import http
import json
import re
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import urllib.parse
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

AUDIO = 200
"""Reply with MP3 audio, as Google does."""
HANG = 0
"""Reply with nothing, ever (until the fake closes)."""

TONE_S = 0.5  # the length of each answer the fixtures make
BATCHEXECUTE_PATH = "/_/TranslateWebserverUi/data/batchexecute"
_GOOGLE = re.compile(r"translate\.google\.[a-z.]+:443")
_MAX_HEAD = 16_384


@dataclass(frozen=True)
class SeenRequest:
    """One batchexecute request: the text piece gTTS sent and the language it asked for."""

    text: str
    lang: str


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate and key for translate.google.com (openssl, as setup.sh installs)."""
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=translate.google.com",
            "-keyout", "google.key", "-out", "google.crt",
        ],
        cwd=directory,
        check=True,
        capture_output=True,
    )  # fmt: skip
    return directory / "google.crt", directory / "google.key"


def sine_mp3(seconds: float) -> bytes:
    """Real MP3 audio: a 440 Hz tone, encoded by ffmpeg (LAME, as Google's own answers are).

    No ID3 tag: Google's pieces carry none, which is why gTTS (and loacam) can join them.
    """
    result = subprocess.run(
        [
            "ffmpeg", "-hide_banner", "-v", "error", "-f", "lavfi",
            "-i", f"sine=f=440:d={seconds}", "-ac", "1", "-id3v2_version", "0", "-f", "mp3", "-",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return result.stdout


def batchexecute_body(audio: bytes) -> bytes:
    """Google's answer: the RPC's result, a JSON list holding the base64 MP3, as JSON text.

    gTTS finds the audio with the regex `jQ1olc","\\[\\\\"(.*)\\\\"]` on one line of it.
    """
    result = json.dumps([base64.b64encode(audio).decode("ascii")])
    envelope = json.dumps(
        [["wrb.fr", "jQ1olc", result, None, None, None, "generic"], ["di", 52]],
        separators=(",", ":"),
    )
    return f")]}}'\n\n{len(envelope)}\n{envelope}\n".encode()


class _Server(socketserver.ThreadingTCPServer):
    # ThreadingTCPServer's defaults are kept on purpose: handler threads are not daemons and
    # server_close() joins them, so a closed fake has no thread left behind.
    allow_reuse_address = True

    def __init__(self, fake: FakeGoogleTts) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, _request: object, client_address: object) -> None:
        # Record, don't print: a test asserts on `errors` where it matters.
        self.fake.errors.append(f"{client_address}: {sys.exc_info()[1]!r}")


class _Handler(socketserver.BaseRequestHandler):
    server: _Server
    request: socket.socket

    def handle(self) -> None:
        self.server.fake.serve_connection(self.request)


class FakeGoogleTts:
    """The fake; use it as a context manager and point HTTPS_PROXY at `proxy_url`."""

    def __init__(self, certificate: Path, key: Path, mp3: bytes) -> None:
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(certificate, key)
        self._mp3 = mp3
        self._lock = threading.Lock()
        self._script: deque[int] = deque()
        self._then = AUDIO
        self._requests: list[SeenRequest] = []
        self._live: set[socket.socket] = set()
        self._closing = threading.Event()
        self.tunnels: list[str] = []
        self.errors: list[str] = []
        self._server = _Server(self)
        # A short poll interval: shutdown() waits for it, at the end of every test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-google"
        )

    @property
    def proxy_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[SeenRequest]:
        with self._lock:
            return list(self._requests)

    def script(self, *first: int, then: int = AUDIO) -> None:
        """Answer the next requests with `first` in order (AUDIO, HANG or a status), then `then`."""
        with self._lock:
            self._script = deque(first)
            self._then = then

    def __enter__(self) -> FakeGoogleTts:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release hanging answers, drop open connections, stop, and join every thread."""
        self._closing.set()
        with self._lock:
            live = list(self._live)
        for sock in live:
            with contextlib.suppress(OSError):  # the client closed it first
                sock.shutdown(socket.SHUT_RDWR)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    # ---- one client connection (runs in the server's handler thread) ----

    def serve_connection(self, sock: socket.socket) -> None:
        with self._lock:
            self._live.add(sock)
        try:
            target = self._read_connect(sock)
            if target is None:
                return
            with self._tls.wrap_socket(sock, server_side=True) as tls:
                with self._lock:
                    self._live.add(tls)
                try:
                    self._serve_request(tls)
                finally:
                    with self._lock:
                        self._live.discard(tls)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._live.discard(sock)

    def _read_connect(self, sock: socket.socket) -> str | None:
        """The proxy's half: accept a tunnel to Google only."""
        head = b""
        while b"\r\n\r\n" not in head:  # the client sends nothing more until it has our 200
            chunk = sock.recv(1024)
            if not chunk or len(head) > _MAX_HEAD:
                return None
            head += chunk
        method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        if method != "CONNECT" or not _GOOGLE.fullmatch(target):
            sock.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            self.errors.append(f"refused {method} {target}")
            return None
        self.tunnels.append(target)
        sock.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        return target

    def _serve_request(self, tls: ssl.SSLSocket) -> None:
        """Google's half: one batchexecute POST (gTTS opens a connection per request)."""
        with tls.makefile("rb") as reader:
            method, path, headers = _read_head(reader)
            body = reader.read(int(headers.get("content-length", "0")))
        if method != "POST" or path.split("?")[0] != BATCHEXECUTE_PATH:
            self.errors.append(f"unexpected {method} {path}")
            tls.sendall(_response(404, b"not found"))
            return
        seen = _parse_rpc(body)
        with self._lock:
            self._requests.append(seen)
            reply = self._script.popleft() if self._script else self._then
        if reply == HANG:
            self._closing.wait()
        elif reply == AUDIO:
            tls.sendall(_response(200, batchexecute_body(self._mp3), "application/json"))
        else:
            tls.sendall(_response(reply, http.HTTPStatus(reply).phrase.encode()))


def _read_head(reader: BinaryIO) -> tuple[str, str, dict[str, str]]:
    method, path, _ = reader.readline(_MAX_HEAD).decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (line := reader.readline(_MAX_HEAD).decode("latin-1").strip()) != "":
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, path, headers


def _parse_rpc(body: bytes) -> SeenRequest:
    """gTTS's `f.req=[[["jQ1olc", "[text, lang, speed, \\"null\\"]", null, "generic"]]]`."""
    rpc = json.loads(urllib.parse.parse_qs(body.decode("ascii"))["f.req"][0])
    rpc_id, parameter, _, _ = rpc[0][0]
    if rpc_id != "jQ1olc":
        raise ValueError(f"unexpected RPC {rpc_id}")
    text, lang, _, _ = json.loads(parameter)
    return SeenRequest(text=text, lang=lang)


def _response(status: int, body: bytes, content_type: str = "text/plain") -> bytes:
    head = (
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body
