"""Live progress of one broadcast, pushed to the console as Server-Sent Events.

The console opens `GET /api/v1/broadcasts/{id}/events` while a broadcast's page is shown
and gets an `event: progress` with the same JSON as `GET /api/v1/broadcasts/{id}` at
once, then again whenever an execution or one of its speakers' deliveries changes. The
changes come from the engine and the speaker dispatcher as they happen (no polling);
a burst of acks from a hundred speakers is sent as one event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from daemon.aio import wait_first
from daemon.api.broadcasts import Reader, view
from daemon.api.deps import State
from daemon.auth import Claims
from daemon.broadcasts.dispatch import source_of
from daemon.speakers.outbox import CommandRecord

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/broadcasts", tags=["broadcasts"])

KEEPALIVE_S = 15.0  # a comment line so proxies and phones keep an idle stream open
COALESCE_S = 0.25  # changes within this are sent as one event
# A stream ends after this (or when its login expires) and the console opens a new one:
# a disabled account or a changed role is asked again, at most this late.
LIFETIME = timedelta(minutes=10)


@router.get(
    "/{broadcast_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(broadcast_id: str, state: State, claims: Reader) -> StreamingResponse:
    """Server-Sent Events: `progress` with the broadcast's view, on connect and on changes.

    The stream ends when the login expires, after 10 minutes, or when loacam stops; the
    console then opens a new one (and its first event is the whole state again)."""
    first = await view(state, broadcast_id, claims)  # 404 before the stream starts
    ends_at = min(claims.expires_at, datetime.now(UTC) + LIFETIME)
    return StreamingResponse(
        _stream(state, broadcast_id, claims, first.model_dump_json(), ends_at),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _stream(
    state: State, broadcast_id: str, claims: Claims, first: str, ends_at: datetime
) -> AsyncIterator[str]:
    changed = asyncio.Event()
    source = source_of(broadcast_id)

    def on_command(record: CommandRecord) -> None:
        if record.source == source:
            changed.set()

    def on_execution(changed_id: str) -> None:
        if changed_id == broadcast_id:
            changed.set()

    unsubscribe = (
        state.speakers.dispatcher.listen(on_command),
        state.broadcasts.listen(on_execution),
    )
    try:
        sent = first
        yield _event(first)
        while not (state.closing.is_set() or state.broadcasts.stopped.is_set()):
            left = (ends_at - datetime.now(UTC)).total_seconds()
            if left <= 0:
                return
            await wait_first(
                changed,
                state.closing,
                state.broadcasts.stopped,
                within_s=min(KEEPALIVE_S, left),
            )
            if state.closing.is_set():
                return
            if not changed.is_set():
                yield ": keepalive\n\n"
                continue
            await asyncio.sleep(COALESCE_S)  # let a burst of speaker answers land together
            changed.clear()
            current = (await view(state, broadcast_id, claims)).model_dump_json()
            if current != sent:
                sent = current
                yield _event(current)
    finally:
        for stop_listening in unsubscribe:
            stop_listening()


def _event(data: str) -> str:
    return f"event: progress\ndata: {data}\n\n"
