"""Scheduling checks: conflicts reported (409) or settled by the radio station's choice, and
a changed schedule that never airs a programme twice on a day it has already aired out."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, time, timedelta

from fastapi import HTTPException, Request, status

from daemon.api.broadcast_models import MAX_RELAY_S
from daemon.api.deps import State, audit
from daemon.audio.service import AudioInputError
from daemon.auth import Claims
from daemon.broadcasts.conflicts import (
    Choice,
    ConflictError,
    Planned,
    conflict_view,
    find,
    length_of,
    moved_first,
    queue_after,
    replaced,
)
from daemon.broadcasts.store import (
    BroadcastRecord,
    Kind,
    Status,
    aired_count,
    list_broadcasts,
    set_status,
    update_broadcast,
)
from daemon.schedule.recurrence import LOCAL, day_already_aired, occurrences
from daemon.speakers.service import TargetError, Targets

_CHOICES = [choice.value for choice in Choice if choice is not Choice.ASK]
# A one-off sent this long ago may still be playing (a relay lasts 6 hours at most).
ON_AIR_AT_MOST = timedelta(seconds=MAX_RELAY_S)


async def planned(state: State, record: BroadcastRecord) -> Planned:
    """A broadcast with its speakers and its (estimated) length."""
    wanted = record.targets
    try:
        speakers = frozenset(
            state.speakers.resolve(Targets(wanted.all, wanted.zones, wanted.speakers))
        )
    except TargetError:  # a zone since removed from the configuration: it plays nowhere
        speakers = frozenset()
    spoken: str | None = None
    media_s: float | None = None
    if record.kind is Kind.TEXT and record.text is not None:
        try:
            spoken = state.audio.normalize(record.text)
        except AudioInputError:
            spoken = record.text
    if record.kind is Kind.MEDIA and record.media_id is not None:
        item = await state.library.get_item(record.media_id)
        media_s = item.duration_s if item is not None else None
    return Planned(record, speakers, length_of(record, spoken, media_s))


def _conflict(message: str, clash: list[object] | None = None) -> HTTPException:
    return HTTPException(
        status.HTTP_409_CONFLICT,
        detail={"message": message, "conflicts": clash or [], "choices": _CHOICES},
    )


async def settle(
    state: State,
    request: Request,
    claims: Claims,
    record: BroadcastRecord,
    *,
    choice: Choice,
    now: datetime,
) -> BroadcastRecord:
    """The record as it will be stored once its conflicts are settled by `choice`.

    Raises 409 (with the conflicts and the choices) when asked to ask, or when the choice
    cannot be carried out. Other broadcasts moved or replaced are written and audited here.
    """
    if record.priority == "emergency":
        return record  # never asked: it pre-empts
    new = await planned(state, record)
    # What is scheduled, and the one-offs already sent that may still be playing.
    candidates = await list_broadcasts(state.store, Status.ACTIVE)
    candidates += await list_broadcasts(state.store, Status.DONE, since=now - ON_AIR_AT_MOST)
    others = [await planned(state, other) for other in candidates if other.id != record.id]
    # Walking every schedule a week ahead is CPU work: off the event loop.
    clash = await asyncio.to_thread(find, new, others, now)
    if not clash or choice is Choice.ALLOW:
        return record
    by_id = {other.record.id: other for other in others}
    view = conflict_view(clash, lambda other_id: by_id[other_id].record.title)
    if choice is Choice.ASK:
        first = clash[0]
        raise _conflict(
            f"Trùng giờ với {len({c.other.id for c in clash})} chương trình trên cùng loa, "
            f'đầu tiên là "{by_id[first.other.id].record.title}" lúc '
            f"{first.other.start.astimezone(LOCAL):%H:%M %d/%m/%Y}. Chọn xếp sau, đưa lên "
            "trước, thay thế, hoặc vẫn phát (overlaps another broadcast)",
            list(view),
        )
    try:
        if choice is Choice.QUEUE:
            return await asyncio.to_thread(queue_after, new, others, now)
        moved = (
            await asyncio.to_thread(moved_first, new, others, clash, now)
            if choice is Choice.REORDER
            else []
        )
    except ConflictError as exc:
        raise _conflict(str(exc), list(view)) from exc
    for other in moved:
        await _rewrite(state, request, claims, replace(other, planned_at=now), what="move", now=now)
    if choice is Choice.REPLACE:
        cancel, skipping = replaced(by_id, clash)
        for other_id in cancel:
            await set_status(state.store, other_id, Status.CANCELLED, now)
            await audit(state, request, claims, "broadcast.cancel", other_id, detail="replaced")
        for other in skipping:  # skipping a day adds no slot: it keeps counting as before
            await _rewrite(state, request, claims, other, what="skip", now=now)
    return record


async def _rewrite(
    state: State,
    request: Request,
    claims: Claims,
    record: BroadcastRecord,
    *,
    what: str,
    now: datetime,
) -> None:
    if not await update_broadcast(state.store, replace(record, updated_at=now), record.updated_at):
        raise _conflict(
            f'"{record.title}" vừa được sửa hoặc đã kết thúc, hãy thử lại (changed meanwhile)'
        )
    await audit(state, request, claims, f"broadcast.{what}", record.id, detail=record.title)


async def not_twice_today(state: State, record: BroadcastRecord, now: datetime) -> BroadcastRecord:
    """Today skipped if the new schedule would air again a day already aired out."""
    midnight = datetime.combine(now.astimezone(LOCAL).date(), time(), LOCAL)
    aired = await aired_count(state.store, record.id, midnight, now)
    skip = await asyncio.to_thread(day_already_aired, record.schedule, aired, now)
    if skip is None:
        return record
    skipped = replace(record, skip_dates=(*record.skip_dates, skip))
    if not await asyncio.to_thread(occurrences, skipped.schedule, now, 1):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail="Chương trình đã phát hôm nay và lịch mới không còn lần phát nào sau hôm nay; "
            'gửi "air_again_today": true để phát lại hôm nay (no air time left after today)',
        )
    return skipped
