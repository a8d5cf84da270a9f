"""Broadcasts: the radio station schedules, leaders read, each execution shows every speaker."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from daemon.api.broadcast_models import (
    BroadcastIn,
    BroadcastOut,
    BroadcastPatch,
    ExecutionOut,
    broadcast_out,
    execution_out,
)
from daemon.api.broadcast_planning import not_twice_today, settle
from daemon.api.deps import State, audit, require_role
from daemon.audio.service import AudioInputError
from daemon.auth import Claims, Role
from daemon.broadcasts.clock import forget_the_future
from daemon.broadcasts.dispatch import source_of
from daemon.broadcasts.relay import RelayError, check_stream
from daemon.broadcasts.store import (
    BroadcastRecord,
    Kind,
    Status,
    Targets,
    get_broadcast,
    insert_broadcast,
    latest_fired_at,
    list_broadcasts,
    recent_executions,
    set_status,
    update_broadcast,
)
from daemon.schedule.lunar import LunarDateError
from daemon.schedule.recurrence import (
    LOCAL,
    ScheduleError,
    occurrences,
    validate,
)
from daemon.speakers.outbox import item_commands
from daemon.speakers.service import TargetError
from daemon.speakers.service import Targets as SpeakerTargets

router = APIRouter(prefix="/api/v1/broadcasts", tags=["broadcasts"])
Radio = Annotated[Claims, Depends(require_role(Role.RADIO))]
Reader = Annotated[Claims, Depends(require_role(Role.RADIO, Role.LEADER))]
Technician = Annotated[Claims, Depends(require_role(Role.TECHNICIAN))]
_NOT_FOUND = "Không có chương trình phát này (no such broadcast)"
_SHOWN_EXECUTIONS = 20
RELAY_CHECK_S = 10.0


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=message)


async def next_air(record: BroadcastRecord, now: datetime) -> datetime | None:
    if record.status is not Status.ACTIVE:
        return None
    try:
        # Walking a schedule is CPU work (a lunar rule computes calendars): off the loop.
        upcoming = await asyncio.to_thread(occurrences, record.schedule, now, 1)
    except (ScheduleError, LunarDateError):
        return None
    return upcoming[0] if upcoming else None


async def _check(state: State, record: BroadcastRecord, now: datetime, *, new_start: bool) -> None:
    """Refuse, in plain words, a broadcast that could not air as asked."""
    try:
        # A new start must not be in the past; a kept one (last week's programme given a
        # new rule) may be. Either way the rule must be valid and still fire.
        await asyncio.to_thread(
            validate, record.schedule, now if new_start else min(now, record.start_at)
        )
        wanted = record.targets
        state.speakers.resolve(SpeakerTargets(wanted.all, wanted.zones, wanted.speakers))
    except (ScheduleError, TargetError) as exc:
        raise _unprocessable(str(exc)) from exc
    if not new_start and await next_air(record, now) is None:
        raise _unprocessable("Lịch này không còn lần phát nào (no air time left)")
    if record.kind is Kind.MEDIA and await state.library.get_item(record.media_id or "") is None:
        raise _unprocessable("Không có bản ghi này trong thư viện (no such recording)")
    if record.kind is Kind.TEXT:
        try:
            state.audio.normalize(record.text or "")  # too long, or nothing to say: refused now
        except AudioInputError as exc:
            raise _unprocessable(str(exc)) from exc
    if record.kind is Kind.URL:
        try:
            await check_stream(record.url or "", timeout_s=RELAY_CHECK_S)
        except RelayError as exc:
            raise _unprocessable(str(exc)) from exc


def _kind(text: str | None, media_id: str | None) -> Kind:
    if text is not None:
        return Kind.TEXT
    return Kind.MEDIA if media_id is not None else Kind.URL


def _new_record(body: BroadcastIn, claims: Claims, now: datetime) -> BroadcastRecord:
    start = body.start_at or now
    recurrence = body.recurrence
    if recurrence is not None:
        start = start.replace(second=0, microsecond=0)  # 05:30, not 05:30:43 every day
    lunar = recurrence.lunar if recurrence else None
    targets = body.targets.targets()
    kind = _kind(body.text, body.media_id)
    return BroadcastRecord(
        id=uuid.uuid4().hex,
        title=body.title or (body.text or "")[:60] or kind.value,
        kind=kind,
        targets=Targets(targets.all, targets.zones, targets.speakers),
        priority=body.priority,
        start_at=_utc(start),
        created_by=claims.username,
        created_at=now,
        updated_at=now,
        text=body.text,
        voice=body.voice,
        media_id=body.media_id,
        url=body.url,
        volume=body.volume,
        rrule=recurrence.rrule if recurrence else None,
        lunar_day=lunar.day if lunar else None,
        lunar_month=lunar.month if lunar else None,
        skip_dates=tuple(recurrence.skip_dates) if recurrence else (),
        lateness_s=body.lateness_min * 60,
        duration_s=body.duration_s,
    )


def _changed(record: BroadcastRecord, body: BroadcastPatch, now: datetime) -> BroadcastRecord:
    given = body.model_fields_set
    changes: dict[str, object] = {"updated_at": now}
    if body.text is not None or body.media_id is not None or body.url is not None:
        changes.update(
            kind=_kind(body.text, body.media_id),
            text=body.text,
            media_id=body.media_id,
            url=body.url,
        )
    for name in ("title", "priority", "voice", "volume", "duration_s"):
        if name in given:
            changes[name] = getattr(body, name)
    if body.targets is not None:
        targets = body.targets.targets()
        changes["targets"] = Targets(targets.all, targets.zones, targets.speakers)
    if body.lateness_min is not None:
        changes["lateness_s"] = body.lateness_min * 60
    if body.start_at is not None:
        changes["start_at"] = _utc(body.start_at)
    if "recurrence" in given:
        recurrence = body.recurrence
        lunar = recurrence.lunar if recurrence else None
        changes.update(
            rrule=recurrence.rrule if recurrence else None,
            lunar_day=lunar.day if lunar else None,
            lunar_month=lunar.month if lunar else None,
            skip_dates=tuple(recurrence.skip_dates) if recurrence else (),
        )
    changed = replace(record, **changes)  # type: ignore[arg-type]
    if changed.schedule.recurring:
        changed = replace(changed, start_at=changed.start_at.replace(second=0, microsecond=0))
    if changed.schedule != record.schedule:  # slots count from now (engine.counts_from)
        changed = replace(changed, planned_at=now)
    if changed.kind is not Kind.URL and changed.duration_s is not None:
        raise _unprocessable("Chỉ tiếp sóng mới có thời lượng (only a relay has duration_s)")
    if changed.kind is Kind.URL and changed.duration_s is None:
        raise _unprocessable("Tiếp sóng cần thời lượng (a relay needs duration_s)")
    return changed


@router.post("", response_model=BroadcastOut, status_code=201)
async def create_broadcast(
    body: BroadcastIn, state: State, claims: Radio, request: Request
) -> BroadcastOut:
    """Schedule a broadcast (no start_at: now); 422 in plain words for an impossible one,
    409 with the conflicts when it overlaps another on the same speakers (`on_conflict`)."""
    now = datetime.now(UTC)
    record = _new_record(body, claims, now)
    await _check(state, record, now, new_start=True)
    async with state.broadcast_planning:  # two at once would each miss the other's conflict
        record = await settle(state, request, claims, record, choice=body.on_conflict, now=now)
        await insert_broadcast(state.store, record)
    _planned_again(state, record, now)
    await audit(state, request, claims, "broadcast.create", record.id, detail=record.title)
    return broadcast_out(record, await next_air(record, now))


@router.patch("/{broadcast_id}", response_model=BroadcastOut)
async def update(
    broadcast_id: str, body: BroadcastPatch, state: State, claims: Radio, request: Request
) -> BroadcastOut:
    """Change an active broadcast: what is given changes, the rest stays."""
    now = datetime.now(UTC)
    record = await _found(state, broadcast_id)
    if record.status is not Status.ACTIVE:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail="Chương trình đã phát xong hoặc đã hủy, không sửa được (not active)",
        )
    changed = _changed(record, body, now)
    await _check(state, changed, now, new_start=changed.start_at != record.start_at)
    # When it airs changed (a skipped day given back is not a change of air times).
    unskipped = frozenset[date]()
    retimed = replace(changed.schedule, skip=unskipped) != replace(record.schedule, skip=unskipped)
    if retimed and not body.air_again_today:
        changed = await not_twice_today(state, changed, now)
    # Only what can make it overlap another is checked again (a new title is not).
    overlaps_anew = (changed.schedule, changed.targets, changed.priority, changed.duration_s,
                     changed.text, changed.media_id) != (
        record.schedule, record.targets, record.priority, record.duration_s, record.text,
        record.media_id)  # fmt: skip
    async with state.broadcast_planning:
        if overlaps_anew:
            changed = await settle(
                state, request, claims, changed, choice=body.on_conflict, now=now
            )
        if not await update_broadcast(state.store, changed, read_at=record.updated_at):
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                detail="Chương trình vừa được sửa, đã kết thúc hoặc đã hủy: hãy tải lại "
                "(changed meanwhile)",
            )
    _planned_again(state, changed, now)
    await audit(state, request, claims, "broadcast.update", record.id, detail=changed.title)
    return broadcast_out(changed, await next_air(changed, now))


def _planned_again(state: State, record: BroadcastRecord, now: datetime) -> None:
    state.broadcasts.wake()
    state.render_ahead.wake()
    state.relays.wake()  # a relay shortened or cut by this ends at its new time
    if record.priority == "emergency" and record.start_at <= now:
        state.broadcasts.air_urgent(record)


def _utc(moment: datetime) -> datetime:
    try:
        return moment.astimezone(UTC)
    except OverflowError as exc:  # year 9999 with a negative offset
        raise _unprocessable("Thời điểm ngoài phạm vi (start_at out of range)") from exc


@router.get("", response_model=list[BroadcastOut])
async def list_all(
    state: State,
    claims: Reader,
    status_: Annotated[Status | None, Query(alias="status")] = None,
    priority: Annotated[str | None, Query(pattern="^(normal|priority|emergency)$")] = None,
    kind: Annotated[Kind | None, Query()] = None,
) -> list[BroadcastOut]:
    """Broadcasts, newest first, with their next air time; filtered if asked."""
    now = datetime.now(UTC)
    records = [
        record
        for record in await list_broadcasts(state.store, status_)
        if (priority is None or record.priority == priority)
        and (kind is None or record.kind is kind)
    ]
    full = writes(claims)
    return [broadcast_out(record, await next_air(record, now), full_url=full) for record in records]


async def _found(state: State, broadcast_id: str) -> BroadcastRecord:
    record = await get_broadcast(state.store, broadcast_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=_NOT_FOUND)
    return record


async def _runs(
    state: State, record: BroadcastRecord, limit: int, before: int | None = None
) -> list[ExecutionOut]:
    runs = await recent_executions(state.store, record.id, limit=limit, before=before)
    if not runs:
        return []
    source = source_of(record.id)
    shown = []
    for run in runs:
        stored = await item_commands(state.store, source, str(run.id))
        # The dispatcher's view: progress not yet saved is taken from memory.
        shown.append(execution_out(run, state.speakers.dispatcher.latest(stored)))
    return shown


def writes(claims: Claims) -> bool:
    """The radio station (and admin) see a relay's whole URL; leaders see scheme, host, path."""
    return claims.role in {Role.RADIO, Role.ADMIN}


async def view(state: State, broadcast_id: str, claims: Claims) -> BroadcastOut:
    """The broadcast with its latest executions and each speaker's delivery (also for SSE)."""
    record = await _found(state, broadcast_id)
    runs = await _runs(state, record, _SHOWN_EXECUTIONS)
    now = datetime.now(UTC)
    return broadcast_out(record, await next_air(record, now), runs, full_url=writes(claims))


@router.get("/{broadcast_id}", response_model=BroadcastOut)
async def get_one(broadcast_id: str, state: State, claims: Reader) -> BroadcastOut:
    """The broadcast, its latest 20 executions, and each speaker's delivery state."""
    return await view(state, broadcast_id, claims)


@router.get("/{broadcast_id}/executions", response_model=list[ExecutionOut])
async def list_executions(
    broadcast_id: str,
    state: State,
    _: Reader,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=2**62, description="Older than this execution id.")
    ] = None,
) -> list[ExecutionOut]:
    """Executions, newest first; page with `before` = the last id seen."""
    return await _runs(state, await _found(state, broadcast_id), limit, before)


@router.get("/{broadcast_id}/next", response_model=list[str])
async def next_times(
    broadcast_id: str, state: State, _: Reader, count: Annotated[int, Query(ge=1, le=100)] = 5
) -> list[str]:
    """The next `count` air times, ISO 8601 in Vietnam's time."""
    record = await _found(state, broadcast_id)
    if record.status != Status.ACTIVE:
        return []
    try:
        upcoming = await asyncio.to_thread(occurrences, record.schedule, datetime.now(UTC), count)
    except (ScheduleError, LunarDateError) as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail=f"Không đọc được lịch phát ({exc})"
        ) from exc
    return [moment.astimezone(LOCAL).isoformat() for moment in upcoming]


@router.post("/{broadcast_id}/cancel", response_model=BroadcastOut)
async def cancel(broadcast_id: str, state: State, claims: Radio, request: Request) -> BroadcastOut:
    record = await _found(state, broadcast_id)
    await set_status(state.store, record.id, Status.CANCELLED, datetime.now(UTC))
    state.broadcasts.wake()
    state.relays.wake()  # a relay on air now is stopped at once
    await audit(state, request, claims, "broadcast.cancel", record.id, detail=record.title)
    return await view(state, broadcast_id, claims)


class ClockResetOut(BaseModel):
    deleted: int = Field(description="Executions of slots that have not come yet, forgotten.")
    brought_back: int = Field(description="Past slots whose send time was in the future.")
    reactivated: list[str] = Field(description="One-off broadcasts active again.")


@router.post("/clock-reset", response_model=ClockResetOut)
async def clock_reset(state: State, claims: Technician, request: Request) -> ClockResetOut:
    """After the server's clock was set ahead and corrected: forget what was decided in the
    future, so scheduled broadcasts air again (see daemon/broadcasts/clock.py)."""
    now = datetime.now(UTC)
    latest = await latest_fired_at(state.store)
    if latest is None or latest <= now:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail="Đồng hồ không chậm hơn lần phát gần nhất: không có gì để sửa "
            "(the clock is not behind the last execution)",
        )
    forgotten = await forget_the_future(state.store, now)
    state.speakers.dispatcher.forget(forgotten.dropped_commands)
    state.broadcasts.wake()
    await audit(
        state,
        request,
        claims,
        "broadcast.clock_reset",
        "clock",
        detail=f"{forgotten.deleted} forgotten, {forgotten.brought_back} brought back",
    )
    return ClockResetOut(
        deleted=forgotten.deleted,
        brought_back=forgotten.brought_back,
        reactivated=list(forgotten.reactivated),
    )
