"""Roles, password hashing (argon2id), signed tokens (JWT) and the login throttle."""

from __future__ import annotations

import os
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
MIN_PASSWORD_LENGTH = 10
TOKEN_KEY_FILE = "token.key"  # noqa: S105 - a file name
_ALGORITHM = "HS256"

# argon2-cffi's PasswordHasher defaults to argon2id with RFC 9106's low-memory profile.
_hasher = PasswordHasher()
# Verified when the user does not exist, so a wrong name costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class Role(StrEnum):
    ADMIN = "admin"
    TECHNICIAN = "technician"
    LEADER = "leader"
    DISTRICT = "district"
    RADIO = "radio"


class InvalidTokenError(Exception):
    """The token is missing, malformed, forged or expired."""


def check_new_password(password: str) -> str | None:
    """Why a password cannot be used, or None if it can."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"password must have at least {MIN_PASSWORD_LENGTH} characters"
    if password.strip() != password:
        return "password must not start or end with spaces"
    return None


def hash_password_blocking(password: str) -> str:
    """CPU-bound (~50 ms by design): call from a thread."""
    return _hasher.hash(password)


def verify_password_blocking(password_hash: str | None, password: str) -> bool:
    """CPU-bound (~50 ms by design): call from a thread."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Claims:
    username: str
    role: Role
    expires_at: datetime


class TokenService:
    def __init__(self, key: bytes, ttl: timedelta) -> None:
        self._key = key
        self.ttl = ttl

    def issue(self, username: str, role: Role, now: datetime | None = None) -> tuple[str, Claims]:
        issued = now or datetime.now(UTC)
        expires = issued + self.ttl
        payload = {"sub": username, "role": role.value, "iat": issued, "exp": expires}
        token = jwt.encode(payload, self._key, algorithm=_ALGORITHM)
        return token, Claims(username, role, expires.replace(microsecond=0))

    def decode(self, token: str) -> Claims:
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                options={"require": ["sub", "role", "exp", "iat"]},
            )
            return Claims(
                str(payload["sub"]),
                Role(payload["role"]),
                datetime.fromtimestamp(payload["exp"], UTC),
            )
        except (jwt.PyJWTError, ValueError) as exc:
            raise InvalidTokenError(str(exc)) from exc


def load_or_create_token_key(directory: Path) -> bytes:
    """The signing key kept beside the database, created (mode 0600) on first start."""
    path = directory / TOKEN_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


class LoginThrottle:
    """Counts login attempts per client address and per user name in a sliding window.

    An attempt is counted *before* the (slow) password check, in the same step as the
    limit is checked, so parallel guesses cannot all slip past; a successful login
    takes its attempt back. The tight limit is per client address (the TCP peer, never
    X-Forwarded-For, which an attacker sets); the per-user limit is looser, so that one
    person guessing cannot lock the radio operator out, while many addresses guessing
    one account are still stopped.
    """

    MAX_KEYS = 10_000  # bounds memory when someone tries many names or addresses
    USER_FACTOR = 4

    def __init__(self, max_failures: int, window_s: float) -> None:
        self._limits = {"client": max_failures, "user": max_failures * self.USER_FACTOR}
        self._window = window_s
        self._attempts: dict[str, deque[float]] = {}

    def reserve(self, client: str, username: str, now: float | None = None) -> float:
        """Count an attempt and return 0, or return the seconds to wait (nothing counted)."""
        moment = time.monotonic() if now is None else now
        keys = (f"client:{client}", f"user:{username}")
        wait = 0.0
        for key in keys:
            times = self._recent(key, moment)
            if len(times) >= self._limits[key.split(":", 1)[0]]:
                wait = max(wait, times[0] + self._window - moment)
        if wait > 0:
            return wait
        if len(self._attempts) >= self.MAX_KEYS:
            for stale in list(self._attempts):
                self._recent(stale, moment)
        for key in keys:
            self._attempts.setdefault(key, deque()).append(moment)
        return 0.0

    def forgive(self, client: str, username: str) -> None:
        """Take back the attempt of a login that succeeded."""
        for key in (f"client:{client}", f"user:{username}"):
            times = self._attempts.get(key)
            if times:
                times.pop()
            if not times:
                self._attempts.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._attempts.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._attempts[key]
        return times
