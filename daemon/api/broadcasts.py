"""Broadcasts: the radio station schedules, leaders read, each execution shows every speaker."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from daemon.api.deps import State, audit, require_role
from daemon.api.speaker_models import CommandOut, TargetsIn
from daemon.audio.service import AudioInputError
from daemon.auth import Claims, Role
from daemon.broadcasts.dispatch import source_of
from daemon.broadcasts.store import (
    BroadcastRecord,
    Kind,
    Status,
    Targets,
    executions,
    get_broadcast,
    insert_broadcast,
    list_broadcasts,
    set_status,
)
from daemon.config_audio import Voice
from daemon.schedule.lunar import LunarDateError
from daemon.schedule.recurrence import LOCAL, Lunar, Schedule, ScheduleError, occurrences, validate
from daemon.speakers.outbox import recent_commands
from daemon.speakers.service import TargetError

router = APIRouter(prefix="/api/v1/broadcasts", tags=["broadcasts"])
Radio = Annotated[Claims, Depends(require_role(Role.RADIO))]
Reader = Annotated[Claims, Depends(require_role(Role.RADIO, Role.LEADER))]
_NOT_FOUND = "Không có chương trình phát này (no such broadcast)"


class LunarIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    day: int = Field(ge=1, le=30, description="Lunar day 1-30.")
    month: int | None = Field(None, ge=1, le=12, description="Lunar month; none: every month.")


class RecurrenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rrule: str | None = Field(None, max_length=500, description="RFC 5545, e.g. FREQ=DAILY")
    lunar: LunarIn | None = None

    @model_validator(mode="after")
    def _one(self) -> RecurrenceIn:
        if (self.rrule is None) == (self.lunar is None):
            raise ValueError("recurrence: give rrule or lunar (lặp theo RRULE hoặc âm lịch)")
        return self


class BroadcastIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    title: str = Field("", max_length=200, description="Name shown in lists and reports.")
    text: str | None = Field(
        None, min_length=1, max_length=50_000, description="Announcement to speak."
    )
    voice: Voice | None = None
    media_id: str | None = Field(None, max_length=32, description="A recording of the library.")
    url: str | None = Field(None, max_length=2000, description="A stream to relay.")
    targets: TargetsIn
    priority: Literal["normal", "priority", "emergency"] = "normal"
    volume: int | None = Field(None, ge=0, le=100)
    start_at: datetime | None = Field(None, description="ISO 8601 with offset; none: now.")
    recurrence: RecurrenceIn | None = None
    lateness_min: int = Field(10, ge=1, le=24 * 60, description="Still air if this late.")

    @model_validator(mode="after")
    def _content(self) -> BroadcastIn:
        if sum(x is not None for x in (self.text, self.media_id, self.url)) != 1:
            raise ValueError("give exactly one of text, media_id, url (nội dung phát)")
        return self


class ExecutionOut(BaseModel):
    id: int
    slot: datetime
    state: str
    error: str | None
    summary: dict[str, int] = Field(description="Speakers per delivery state.")
    speakers: list[CommandOut]


class BroadcastOut(BaseModel):
    id: str
    title: str
    kind: str
    priority: str
    status: str
    start_at: datetime
    rrule: str | None
    lunar: LunarIn | None
    created_by: str
    executions: list[ExecutionOut] = Field(default_factory=list)


def _out(record: BroadcastRecord, runs: list[ExecutionOut] | None = None) -> BroadcastOut:
    lunar = (
        LunarIn(day=record.lunar_day, month=record.lunar_month)
        if record.lunar_day is not None
        else None
    )
    return BroadcastOut(
        id=record.id,
        title=record.title,
        kind=record.kind.value,
        priority=record.priority,
        status=record.status.value,
        start_at=record.start_at,
        rrule=record.rrule,
        lunar=lunar,
        created_by=record.created_by,
        executions=runs or [],
    )


def _unprocessable(message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=message)


async def _record(
    body: BroadcastIn, state: State, claims: Claims, now: datetime
) -> BroadcastRecord:
    start = body.start_at or now
    recurrence = body.recurrence
    if recurrence is not None:
        start = start.replace(second=0, microsecond=0)  # 05:30, not 05:30:43 every day
    lunar = recurrence.lunar if recurrence else None
    try:
        # Walking a schedule is CPU work (a rule may be walked for years): off the loop.
        await asyncio.to_thread(
            validate,
            Schedule(
                start,
                rrule=recurrence.rrule if recurrence else None,
                lunar=Lunar(lunar.day, lunar.month) if lunar else None,
            ),
            now,
        )
        targets = body.targets.targets()
        state.speakers.resolve(targets)
    except (ScheduleError, TargetError) as exc:
        raise _unprocessable(str(exc)) from exc
    if body.url is not None:
        raise _unprocessable("Chưa hỗ trợ phát tiếp sóng (relaying a stream is not supported yet)")
    if body.media_id is not None and await state.library.get_item(body.media_id) is None:
        raise _unprocessable("Không có bản ghi này trong thư viện (no such recording)")
    if body.text is not None:
        try:
            state.audio.normalize(body.text)  # too long, or nothing to say: refused now
        except AudioInputError as exc:
            raise _unprocessable(str(exc)) from exc
    kind = Kind.TEXT if body.text is not None else Kind.MEDIA
    title = body.title or (body.text or "")[:60] or kind.value
    return BroadcastRecord(
        id=uuid.uuid4().hex,
        title=title,
        kind=kind,
        targets=Targets(targets.all, targets.zones, targets.speakers),
        priority=body.priority,
        start_at=start.astimezone(UTC),
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
        lateness_s=body.lateness_min * 60,
    )


@router.post("", response_model=BroadcastOut, status_code=201)
async def create_broadcast(
    body: BroadcastIn, state: State, claims: Radio, request: Request
) -> BroadcastOut:
    """Schedule a broadcast (no start_at: now); 422 in plain words for an impossible one."""
    now = datetime.now(UTC)
    record = await _record(body, state, claims, now)
    await insert_broadcast(state.store, record)
    state.broadcasts.wake()
    await audit(state, request, claims, "broadcast.create", record.id, detail=record.title)
    return _out(record)


@router.get("", response_model=list[BroadcastOut])
async def list_all(
    state: State, _: Reader, status_: Annotated[Status | None, Query(alias="status")] = None
) -> list[BroadcastOut]:
    return [_out(record) for record in await list_broadcasts(state.store, status_)]


async def _found(state: State, broadcast_id: str) -> BroadcastRecord:
    record = await get_broadcast(state.store, broadcast_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=_NOT_FOUND)
    return record


@router.get("/{broadcast_id}", response_model=BroadcastOut)
async def get_one(broadcast_id: str, state: State, _: Reader) -> BroadcastOut:
    """The broadcast, each execution, and each speaker's delivery state."""
    record = await _found(state, broadcast_id)
    commands = await recent_commands(state.store, source=source_of(record.id), limit=100_000)
    runs = []
    for run in await executions(state.store, record.id):
        mine = [c for c in commands if c.item_id == str(run.id)]
        runs.append(
            ExecutionOut(
                id=run.id,
                slot=run.slot,
                state=run.state.value,
                error=run.error,
                summary=dict(Counter(c.state.value for c in mine)),
                speakers=[CommandOut.of(c) for c in sorted(mine, key=lambda c: c.speaker_id)],
            )
        )
    return _out(record, runs)


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
    await audit(state, request, claims, "broadcast.cancel", record.id, detail=record.title)
    return _out(await _found(state, broadcast_id))
