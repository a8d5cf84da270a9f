"""Live view: MJPEG for the console, HLS pass-through for slow links. One capture per stream."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import Response, StreamingResponse

from daemon.api.cameras import camera_errors, visible
from daemon.api.deps import Principal, State
from daemon.auth import Claims
from daemon.cameras.manager import ManagedCamera
from drivers.camera.hls import (
    PLAYLIST_MEDIA_TYPE,
    SEGMENT_MEDIA_TYPE,
    HlsNotFoundError,
    HlsUnavailableError,
)
from drivers.camera.stream import Frame, StreamKey

router = APIRouter(prefix="/api/v1/cameras", tags=["live"])
Stream = Literal["main", "sub"]
BOUNDARY = "loacamframe"
NO_STORE = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def _part(frame: Frame) -> bytes:
    # X-Placeholder marks the "signal lost" picture, for the console to show a badge.
    head = (
        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}\r\n"
        f"X-Placeholder: {int(frame.placeholder)}\r\n"
        # CLOCK_MONOTONIC is one clock for the whole machine: a viewer on this host (the
        # benchmark) measures capture → delivery latency from it.
        f"X-Frame-Time: {frame.captured_at:.6f}\r\n\r\n"
    )
    return head.encode() + frame.jpeg + b"\r\n"


@router.get("/{camera_id}/mjpeg", response_class=StreamingResponse)
async def mjpeg(
    camera_id: str,
    state: State,
    claims: Principal,
    stream: Stream = "main",
    fps: Annotated[
        float | None, Query(gt=0, le=30, description="Frames per second at most")
    ] = None,
) -> StreamingResponse:
    """The newest frames as multipart/x-mixed-replace; one capture serves every viewer."""
    camera = visible(state, claims, camera_id)
    with camera_errors():
        camera.monitor.profile(stream)  # 503 at once if the camera never connected
    return StreamingResponse(
        _frames(state, camera, stream, claims, fps),
        media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        headers=NO_STORE,
    )


async def _frames(
    state: State, camera: ManagedCamera, stream: Stream, claims: Claims, fps: float | None
) -> AsyncIterator[bytes]:
    monitor = camera.monitor
    expires = claims.expires_at.timestamp()
    key = StreamKey(camera.config.id, stream)
    # The URL (with credentials) is made by the capture thread at each (re)connect.
    async with state.live.subscribe(
        key, lambda: monitor.stream_url(stream), camera_name=camera.config.name
    ) as viewer:
        async for frame in viewer.frames(max_fps=fps):
            # A live view ends with the login that opened it.
            if time.time() >= expires:
                return
            yield _part(frame)


@router.get("/{camera_id}/live.jpg", response_class=Response)
async def live_frame(
    camera_id: str, state: State, claims: Principal, stream: Stream = "main"
) -> Response:
    """The newest frame of a running capture (404 when none runs: use snapshot.jpg)."""
    visible(state, claims, camera_id)
    frame = await state.live.snapshot(StreamKey(camera_id, stream))
    if frame is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail="Không có hình trực tiếp (no live capture)"
        )
    return Response(frame.jpeg, media_type="image/jpeg", headers=NO_STORE)


@router.get("/{camera_id}/hls/index.m3u8", response_class=Response)
async def hls_playlist(
    camera_id: str, state: State, claims: Principal, stream: Stream = "sub"
) -> Response:
    """H.264 as HLS, remuxed without transcoding (for slow links); started on demand."""
    camera = visible(state, claims, camera_id)
    with camera_errors():
        url = camera.monitor.stream_url(stream)
    try:
        playlist = await state.hls.playlist(
            f"{camera_id}/{stream}", url, segment_query=f"stream={stream}"
        )
    except HlsUnavailableError as exc:
        raise _unavailable(exc) from exc
    return Response(playlist, media_type=PLAYLIST_MEDIA_TYPE, headers={"Cache-Control": "no-cache"})


@router.get("/{camera_id}/hls/{segment}", response_class=Response)
async def hls_segment(
    camera_id: str, segment: str, state: State, claims: Principal, stream: Stream = "sub"
) -> Response:
    visible(state, claims, camera_id)
    try:
        data = await state.hls.segment(f"{camera_id}/{stream}", segment)
    except HlsNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from exc
    except HlsUnavailableError as exc:
        raise _unavailable(exc) from exc
    return Response(data, media_type=SEGMENT_MEDIA_TYPE, headers={"Cache-Control": "max-age=60"})


def _unavailable(exc: HlsUnavailableError) -> HTTPException:
    headers = {"Retry-After": str(int(exc.retry_after_s) + 1)} if exc.retry_after_s else None
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc), headers=headers)
