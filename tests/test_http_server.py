"""The embedded HTTP server: READY only once it listens, and it survives a restart."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from daemon.http_server import HttpServer, bind
from drivers.sim.broker import free_port


def tiny_app() -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    return app


async def test_a_restarted_server_serves_on_the_same_socket() -> None:
    port = free_port()
    sock = bind("127.0.0.1", port)
    server = HttpServer(tiny_app(), sock, graceful_timeout_s=1)
    try:
        for _run in range(2):  # the supervisor restarts a child by running it again
            stop = asyncio.Event()
            task = asyncio.create_task(server.run(stop))
            await asyncio.wait_for(server.started.wait(), 10)
            async with httpx.AsyncClient() as client:
                response = await client.get(f"http://127.0.0.1:{port}/ping")
            assert response.json() == {"pong": "yes"}
            stop.set()
            await asyncio.wait_for(task, 10)
            assert not server.started.is_set()
    finally:
        sock.close()
