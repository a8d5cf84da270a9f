"""A simulated ONVIF camera: real SOAP over HTTP on a loopback port, faults switchable live."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from drivers.asgi import EmbeddedServer
from drivers.sim.broker import free_port
from drivers.sim.onvif.services import SERVICE_PATHS, SNAPSHOT_PATH, Service, handle
from drivers.sim.onvif.snapshot import HttpAuth, Verdict, render_jpeg_blocking
from drivers.sim.onvif.soap import (
    MAX_REQUEST_BYTES,
    SOAP12,
    SoapFaultError,
    content_type,
    parse_request,
    render_envelope,
    render_fault,
)
from drivers.sim.onvif.state import (
    CameraFaults,
    CameraIdentity,
    DeviceModel,
    Preset,
    PtzPosition,
    PtzVelocity,
)
from drivers.sim.onvif.templates import PROFILES

log = logging.getLogger(__name__)


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        # The previous run's connections may sit in TIME_WAIT: "camera back" reuses the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    return sock


async def _read_limited(request: Request) -> bytes | None:
    """The request body, or None when it exceeds what a camera would take."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class SimulatedOnvifCamera:
    """One simulated camera. `stop()` is "camera down" (connections refused), `start()` again
    brings it back on the same port."""

    def __init__(
        self,
        *,
        username: str,
        password: str,
        rtsp_main: str,
        rtsp_sub: str,
        identity: CameraIdentity,
        port: int | None = None,
        host: str = "127.0.0.1",
        faults: CameraFaults | None = None,
    ) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        url_host = f"[{host}]" if ":" in host else host
        self._model = DeviceModel(
            identity=identity,
            username=username,
            password=password,
            rtsp_main=rtsp_main,
            rtsp_sub=rtsp_sub,
            base_url=f"http://{url_host}:{self.port}",
            faults=faults if faults is not None else CameraFaults(),
        )
        self._http_auth = HttpAuth()
        routes = [
            Route(path, self._soap_endpoint(service), methods=["POST"])
            for service, path in SERVICE_PATHS.items()
        ]
        routes.append(Route(SNAPSHOT_PATH, self._snapshot, methods=["GET"]))
        self._app = Starlette(routes=routes)
        self._server: EmbeddedServer | None = None
        self._serving: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self._stopping = asyncio.Event()

    # -- observable state ---------------------------------------------------------------------

    @property
    def faults(self) -> CameraFaults:
        return self._model.faults

    @faults.setter
    def faults(self, faults: CameraFaults) -> None:
        self._model.faults = faults

    @property
    def identity(self) -> CameraIdentity:
        return self._model.identity

    @property
    def device_url(self) -> str:
        return self._model.url(SERVICE_PATHS["device"])

    def snapshot_url(self, profile: str = "main") -> str:
        return self._model.url(f"{SNAPSHOT_PATH}?profile={profile}")

    def clock(self) -> datetime:
        """The device clock (UTC), skew fault and SetSystemDateAndTime included."""
        return self._model.clock()

    @property
    def ptz_position(self) -> PtzPosition:
        return self._model.ptz.position()

    @property
    def ptz_moving(self) -> bool:
        return self._model.ptz.moving

    @property
    def last_move(self) -> PtzVelocity | None:
        """The velocity of the last ContinuousMove (kept after Stop), None before any."""
        return self._model.ptz.last_move

    @property
    def presets(self) -> dict[str, Preset]:
        return dict(self._model.ptz.presets)

    @property
    def reboot_count(self) -> int:
        return self._model.reboot_count

    @property
    def requests(self) -> Counter[str]:
        """Requests received per SOAP operation name (and "snapshot" per snapshot GET)."""
        return self._model.requests

    @property
    def running(self) -> bool:
        return self._server is not None

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on host:port; returns once connections are accepted."""
        if self._server is not None:
            return
        self._socket = _bind(self.host, self.port)
        config = uvicorn.Config(
            self._app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=2,
        )
        started = asyncio.Event()
        self._stopping = asyncio.Event()
        self._server = EmbeddedServer(config, started)
        self._serving = asyncio.create_task(
            self._server.serve(sockets=[self._socket]), name=f"sim-onvif-{self.port}"
        )
        waiting = asyncio.create_task(started.wait())
        await asyncio.wait({self._serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if not started.is_set():
            await self.stop()
            raise RuntimeError(f"simulated camera on port {self.port} did not start")

    async def stop(self) -> None:
        """Stop listening and drop connections: clients now see "connection refused"."""
        server, serving, sock = self._server, self._serving, self._socket
        self._server = self._serving = self._socket = None
        self._stopping.set()  # cut short any reply held back by soap_delay_s
        try:
            if server is not None and serving is not None:
                server.should_exit = True
                await serving
        finally:
            if sock is not None:
                sock.close()

    async def __aenter__(self) -> SimulatedOnvifCamera:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    # -- HTTP -----------------------------------------------------------------------------------

    def _soap_endpoint(self, service: Service) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._soap(service, request)

        return endpoint

    async def _hold_reply(self) -> None:
        delay = self._model.faults.soap_delay_s
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _soap(self, service: Service, request: Request) -> Response:
        try:
            body = await _read_limited(request)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody left to answer
        await self._hold_reply()
        envelope_ns = SOAP12
        try:
            parsed = parse_request(body)
            envelope_ns = parsed.envelope_ns
            self._model.requests[parsed.operation] += 1
            answer = handle(self._model, service, parsed)
            if self._model.faults.empty_body and parsed.operation != "GetSystemDateAndTime":
                answer = ""
            reply = render_envelope(envelope_ns, answer)
            status = 200
        except SoapFaultError as fault:
            reply = render_fault(envelope_ns, fault)
            status = fault.http_status
        return Response(reply, status_code=status, media_type=content_type(envelope_ns))

    async def _snapshot(self, request: Request) -> Response:
        model = self._model
        model.requests["snapshot"] += 1
        faults = model.faults
        allow_basic = not faults.snapshot_digest_only
        raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
        query: bytes = request.scope.get("query_string", b"")
        target = (raw_path + (b"?" + query if query else b"")).decode("latin-1")
        verdict = self._http_auth.check(
            request.headers.get("authorization"),
            method=request.method,
            uri=target,
            username=model.username,
            password=model.password,
            allow_basic=allow_basic,
        )
        if faults.wrong_password:  # the client's password is never the camera's
            verdict = Verdict.DENIED
        scheme = request.headers.get("authorization", "").partition(" ")[0].lower()
        if faults.snapshot_basic_only and scheme != "basic":
            verdict = Verdict.DENIED
        if verdict is not Verdict.OK:
            response = Response("Unauthorized\n", status_code=401, media_type="text/plain")
            challenges = self._http_auth.challenges(
                allow_basic=allow_basic, stale=verdict is Verdict.STALE
            )
            if faults.snapshot_basic_only:
                challenges = challenges[-1:]  # the Basic challenge alone
            for challenge in challenges:
                response.headers.append("WWW-Authenticate", challenge)
            return response
        token = request.query_params.get("profile", "main")
        profile = next((entry for entry in PROFILES if entry.token == token), None)
        if profile is None:
            return Response("No such profile\n", status_code=404, media_type="text/plain")
        now = model.clock()
        lines = [
            f"{model.identity.model} {model.identity.serial}",
            now.strftime("%Y-%m-%d %H:%M:%S UTC"),
            f"{profile.name} {profile.width}x{profile.height}",
        ]
        # Drawing and JPEG encoding hold the GIL-free C++ side for a few ms: keep the
        # event loop (which also serves SOAP) free.
        jpeg = await asyncio.to_thread(
            render_jpeg_blocking, profile.width, profile.height, lines, time.monotonic()
        )
        model.requests["snapshot_served"] += 1
        return Response(jpeg, media_type="image/jpeg")
