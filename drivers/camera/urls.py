"""Camera URLs: credentials go in only in memory, and never come out in a log line."""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit, urlunsplit

_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]*@", re.IGNORECASE)


def redact(text: str) -> str:
    """Replace user:password in every URL inside `text` with `***`."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


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
