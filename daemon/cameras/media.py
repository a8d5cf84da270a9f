"""Live view as one supervised loop: the captures and HLS remuxes live inside it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from daemon.cameras.monitor import CameraMonitor
from daemon.state import AppState
from drivers.backoff import pause
from drivers.camera.stream import StreamKey

PIN_CHECK_S = 5.0


async def run_media(state: AppState, stop: asyncio.Event) -> None:
    """Serve until `stop`; then end every live stream so HTTP can close its connections."""
    pinned: set[StreamKey] = set()
    await state.hls.start()
    try:
        while not stop.is_set():
            _pin_always_on(state, pinned)
            await pause(stop, PIN_CHECK_S)
    finally:
        await state.live.aclose()
        await state.hls.close_all()


def _sub_url(monitor: CameraMonitor) -> Callable[[], str]:
    return lambda: monitor.stream_url("sub")


def _pin_always_on(state: AppState, pinned: set[StreamKey]) -> None:
    """`always_on` cameras keep their sub stream (the one the grid shows) captured."""
    for camera in state.cameras.cameras():
        key = StreamKey(camera.config.id, "sub")
        wanted = camera.config.always_on and camera.monitor.state.probe is not None
        if wanted and key not in pinned:
            state.live.pin(key, _sub_url(camera.monitor), camera_name=camera.config.name)
            pinned.add(key)
        elif not wanted and key in pinned:
            state.live.unpin(key)
            pinned.discard(key)
