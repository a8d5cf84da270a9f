"""uvicorn embedded as a supervised child, on a socket the daemon binds itself.

Binding first gives a plain error for a taken port before anything starts, and
lets the daemon say READY=1 only once the API really listens.
"""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from fastapi import FastAPI

from daemon.supervisor import LoacamError
from drivers.asgi import EmbeddedServer


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class HttpServer:
    def __init__(
        self,
        app: FastAPI,
        sock: socket.socket,
        graceful_timeout_s: int,
        *,
        closing: asyncio.Event | None = None,
    ) -> None:
        self._app = app
        self._sock = sock
        self._graceful = graceful_timeout_s
        self._closing = closing  # set when stopping begins: endless responses end then
        self.started = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        config = uvicorn.Config(
            self._app,
            log_config=None,  # the daemon configures logging
            access_log=False,  # query strings may carry signed media URLs
            lifespan="on",
            timeout_graceful_shutdown=self._graceful,
            server_header=False,
        )
        if self._closing is not None:
            self._closing.clear()  # a restarted server serves live streams again
        server = EmbeddedServer(config, self.started)
        # uvicorn closes the sockets it serves on when it stops; hand it a duplicate so
        # a restarted loop still has the bound socket.
        listener = self._sock.dup()
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if self._closing is not None:
            self._closing.set()
        server.should_exit = True
        stopping.cancel()
        try:
            await serving
        finally:
            listener.close()
            self.started.clear()
        if not stop.is_set():
            raise LoacamError("the HTTP server stopped by itself")
