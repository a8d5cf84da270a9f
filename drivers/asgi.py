"""uvicorn embedded in a process that owns its signals, with an event for "listening".

Used by the daemon's HTTP server and by the simulated ONVIF camera.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn


class EmbeddedServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, started: asyncio.Event) -> None:
        super().__init__(config)
        self._started_event = started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The embedding process owns SIGTERM/SIGINT and stops uvicorn through should_exit.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # uvicorn has no start event of its own; after startup() it accepts connections.
        if self.started:
            self._started_event.set()
