"""Audio files speakers download, and the signed URLs that let them do it without a login.

A speaker on a 4G link has no account: it gets a URL that names one file and carries
an expiry and an HMAC over both, so the URL cannot be stretched to another file or a
later time. Files are named by their content hash, so nothing a user types reaches
a path.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import shutil
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlencode

from audio.decode import WAV_RATE, AudioDecodeError, Decoded, to_wav_blocking

MEDIA_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "opus": "audio/ogg",
    "flac": "audio/flac",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
    "webm": "audio/webm",
}
_NAME = re.compile(r"^[0-9a-f]{32}\.(" + "|".join(MEDIA_TYPES) + r")$")
_WAV_CACHE_BYTES = 64 * 1024 * 1024  # about 25 minutes of speech as 22 kHz PCM
# A broadcast makes every speaker download the same file within a second: files up to
# this size are served from memory (a file response costs a worker-thread round trip
# per read, which a 1,000-speaker dispatch measured as most of the daemon's CPU).
MEMORY_FILE_BYTES = 4 * 1024 * 1024
_MEMORY_CACHE_BYTES = 32 * 1024 * 1024


_CHUNK = 1024 * 1024


def _name(digest: hashlib._Hash, suffix: str) -> str:
    if suffix not in MEDIA_TYPES:
        raise MediaError(f"unsupported audio type {suffix!r}")
    return f"{digest.hexdigest()[:32]}.{suffix}"


class MediaError(Exception):
    """A media file is missing or cannot be used."""


def is_media_name(name: str) -> bool:
    return bool(_NAME.match(name))


class MediaStore:
    """Content-addressed audio files under one directory."""

    def __init__(self, directory: Path, wav_rate: int = WAV_RATE) -> None:
        self.directory = directory
        self.wav_rate = wav_rate  # what Hermes speakers get
        self._wav: OrderedDict[str, Decoded] = OrderedDict()
        self._decoding: dict[str, asyncio.Future[Decoded]] = {}
        self._bytes: OrderedDict[str, bytes] = OrderedDict()
        self._pinned: set[str] = set()

    def put_blocking(self, data: bytes, suffix: str) -> str:
        """Store `data` (written to a temporary file, then renamed: never half a file)."""
        name = _name(hashlib.sha256(data), suffix)
        return self._write_blocking(name, lambda out: out.write(data))

    def put_file_blocking(self, source: Path, suffix: str) -> str:
        """Store a copy of the file at `source`, read in chunks (uploads can be large)."""
        digest = hashlib.sha256()
        with source.open("rb") as data:
            while chunk := data.read(_CHUNK):
                digest.update(chunk)

        def copy(out: BinaryIO) -> None:
            with source.open("rb") as data:
                shutil.copyfileobj(data, out, _CHUNK)

        return self._write_blocking(_name(digest, suffix), copy)

    def _write_blocking(self, name: str, write: Callable[[BinaryIO], object]) -> str:
        target = self.directory / name
        if target.exists():
            return name
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
            Path(tmp).replace(target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return name

    async def put(self, data: bytes, suffix: str) -> str:
        return await asyncio.to_thread(self.put_blocking, data, suffix)

    async def put_file(self, source: Path, suffix: str) -> str:
        return await asyncio.to_thread(self.put_file_blocking, source, suffix)

    def pin(self, name: str) -> None:
        """Never remove this file (e.g. the test tone, which no table names)."""
        self._pinned.add(name)

    async def remove(self, names: Iterable[str]) -> None:
        """Delete files nothing needs any more (the caller checked that)."""
        for name in set(names) - self._pinned:
            self._bytes.pop(name, None)
            self._wav.pop(name, None)
            await asyncio.to_thread(self.path(name).unlink, missing_ok=True)

    def path(self, name: str) -> Path:
        if not is_media_name(name):
            raise MediaError(f"not a media file name: {name[:80]!r}")
        return self.directory / name

    async def small_file(self, name: str) -> bytes | None:
        """The file's bytes if it is small enough to serve from memory, else None."""
        if (cached := self._bytes.get(name)) is not None:
            self._bytes.move_to_end(name)
            return cached
        path = self.path(name)
        try:
            size = (await asyncio.to_thread(path.stat)).st_size
            if size > MEMORY_FILE_BYTES:
                return None
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise MediaError(f"{name}: no such media file") from None
        self._bytes[name] = data  # content-addressed: a name's bytes never change
        while sum(len(d) for d in self._bytes.values()) > _MEMORY_CACHE_BYTES:
            self._bytes.popitem(last=False)
        return data

    async def wav(self, name: str) -> Decoded:
        """The file as mono PCM WAV (for Hermes speakers), decoded once and cached.

        A dispatch to many Hermes speakers asks for the same file at once: they all
        wait for one decode.
        """
        if (cached := self._wav.get(name)) is not None:
            self._wav.move_to_end(name)
            return cached
        pending = self._decoding.get(name)
        if pending is None:
            pending = asyncio.ensure_future(self._decode(name))
            self._decoding[name] = pending
            pending.add_done_callback(lambda _: self._decoding.pop(name, None))
        return await asyncio.shield(pending)

    async def _decode(self, name: str) -> Decoded:
        path = self.path(name)
        try:
            # Decoding is CPU work in FFmpeg: keep it off the event loop.
            decoded = await asyncio.to_thread(to_wav_blocking, path, self.wav_rate)
        except FileNotFoundError:
            raise MediaError(f"{name}: no such media file") from None
        except AudioDecodeError as exc:
            raise MediaError(str(exc)) from exc
        self._wav[name] = decoded
        while sum(len(d.wav) for d in self._wav.values()) > _WAV_CACHE_BYTES:
            self._wav.popitem(last=False)
        return decoded


class MediaSigner:
    """Signs and checks `/media/<name>?exp=<unix>&sig=<hex>` URLs."""

    def __init__(self, key: bytes, base_url: str) -> None:
        # A key of its own, derived from the login-token key: a media signature can
        # never be replayed as anything else.
        self._key = hmac.new(key, b"loacam media url v1", hashlib.sha256).digest()
        self.base_url = base_url.rstrip("/")

    def _mac(self, name: str, expires: int) -> str:
        return hmac.new(self._key, f"{name}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def url(self, name: str, expires_at: datetime) -> str:
        expires = int(expires_at.timestamp())
        query = urlencode({"exp": expires, "sig": self._mac(name, expires)})
        return f"{self.base_url}/media/{name}?{query}"

    def check(self, name: str, expires: int, signature: str, now: float | None = None) -> bool:
        if (now if now is not None else time.time()) > expires:
            return False
        return hmac.compare_digest(self._mac(name, expires), signature)
