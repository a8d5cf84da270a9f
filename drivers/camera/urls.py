"""Camera URLs: credentials go in only in memory, and never come out in a log line."""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit, urlunsplit

# Greedy up to the last '@' of the URL: a password may itself hold '@' or '/'. Where a
# path holds an '@', more than the credentials is hidden, which is the safe way to err.
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)\S*@", re.IGNORECASE)


def redact(text: str) -> str:
    """Replace user:password in every URL inside `text` with `***`."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def pin_host(url: str | None, host: str) -> str | None:
    """The camera's URL with the configured host: credentials go nowhere else.

    Cameras behind NAT report their internal address; a camera that names another
    host must not receive the password there either.
    """
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.hostname is None or parts.hostname == host:
        return url
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def with_credentials(url: str, username: str, password: str) -> str:
    """rtsp://host/path → rtsp://user:pass@host/path (for the capture only; never log it)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
