"""The shapes of the broadcasts API: what the radio station sends, what it reads back."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from daemon.api.speaker_models import CommandOut, TargetsIn
from daemon.broadcasts.conflicts import Choice
from daemon.broadcasts.relay import display_url
from daemon.broadcasts.store import BroadcastRecord, ExecutionRecord
from daemon.config_audio import Voice
from daemon.schedule.recurrence import LOCAL
from daemon.speakers.outbox import CommandRecord, latest_per_speaker

Priority = Literal["normal", "priority", "emergency"]
MAX_RELAY_S = 6 * 3600


class LunarIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    day: int = Field(ge=1, le=30, description="Lunar day 1-30.")
    month: int | None = Field(None, ge=1, le=12, description="Lunar month; none: every month.")


class RecurrenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rrule: str | None = Field(None, max_length=500, description="RFC 5545, e.g. FREQ=DAILY")
    lunar: LunarIn | None = None
    skip_dates: list[date] = Field(
        default_factory=list, max_length=366, description="Vietnam dates it does not air."
    )

    @model_validator(mode="after")
    def _one(self) -> RecurrenceIn:
        if (self.rrule is None) == (self.lunar is None):
            raise ValueError("recurrence: give rrule or lunar (lặp theo RRULE hoặc âm lịch)")
        return self


class _Fields(BaseModel):
    """What POST and PATCH share."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    voice: Voice | None = None
    volume: int | None = Field(None, ge=0, le=100)
    start_at: AwareDatetime | None = Field(
        None, description="ISO 8601 with its UTC offset (+07:00); none: now."
    )
    recurrence: RecurrenceIn | None = None
    duration_s: int | None = Field(
        None, ge=5, le=MAX_RELAY_S, description="A relay's length; it is stopped after it."
    )
    on_conflict: Choice = Field(
        Choice.ASK,
        description="When it overlaps another broadcast on the same speakers: ask (409 with "
        "the conflicts), queue, reorder, replace or allow.",
    )


class BroadcastIn(_Fields):
    title: str = Field("", max_length=200, description="Name shown in lists and reports.")
    text: str | None = Field(
        None, min_length=1, max_length=50_000, description="Announcement to speak."
    )
    media_id: str | None = Field(None, max_length=32, description="A recording of the library.")
    url: str | None = Field(None, max_length=2000, description="An http(s) stream to relay.")
    targets: TargetsIn
    priority: Priority = "normal"
    lateness_min: int = Field(10, ge=1, le=24 * 60, description="Still air if this late.")

    @model_validator(mode="after")
    def _content(self) -> BroadcastIn:
        if sum(x is not None for x in (self.text, self.media_id, self.url)) != 1:
            raise ValueError("give exactly one of text, media_id, url (nội dung phát)")
        if (self.url is not None) != (self.duration_s is not None):
            raise ValueError(
                "a relayed stream needs duration_s, and only a relay has one "
                "(tiếp sóng cần thời lượng)"
            )
        return self


class BroadcastPatch(_Fields):
    """Only what is given changes; `recurrence: null` is "once", not "unchanged"."""

    air_again_today: bool = Field(
        default=False,
        description="A new schedule that would air a repeating programme again on a day it "
        "has already aired out starts the next day (today is added to skip_dates), unless "
        "this is true.",
    )
    title: str | None = Field(None, min_length=1, max_length=200)
    text: str | None = Field(None, min_length=1, max_length=50_000)
    media_id: str | None = Field(None, max_length=32)
    url: str | None = Field(None, max_length=2000)
    targets: TargetsIn | None = None
    priority: Priority | None = None
    lateness_min: int | None = Field(None, ge=1, le=24 * 60)

    @model_validator(mode="after")
    def _content(self) -> BroadcastPatch:
        if sum(x is not None for x in (self.text, self.media_id, self.url)) > 1:
            raise ValueError("give at most one of text, media_id, url (nội dung phát)")
        return self


class TargetsOut(BaseModel):
    all: bool
    zones: list[str]
    speakers: list[str]


class ExecutionOut(BaseModel):
    id: int
    slot: datetime = Field(description="The scheduled air time, Vietnam's time.")
    state: str = Field(description="pending, dispatched, missed, failed or cancelled.")
    fired_at: datetime | None
    stopped_at: datetime | None = Field(description="A relay: when its end was sent.")
    error: str | None
    summary: dict[str, int] = Field(description="Speakers per delivery state (latest play).")
    speakers: list[CommandOut] = Field(description="Each speaker's latest play of it.")
    plays: int = Field(description="Plays sent, resumed plays after an emergency included.")


class BroadcastOut(BaseModel):
    id: str
    title: str
    kind: str
    priority: str
    status: str
    text: str | None
    media_id: str | None
    url: str | None
    duration_s: int | None
    voice: str | None
    volume: int | None
    lateness_min: int
    targets: TargetsOut
    start_at: datetime = Field(description="Vietnam's time.")
    rrule: str | None
    lunar: LunarIn | None
    skip_dates: list[date]
    next_at: datetime | None = Field(description="The next air time, Vietnam's time.")
    created_by: str
    executions: list[ExecutionOut] = Field(default_factory=list)


def _local(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(LOCAL)


def broadcast_out(
    record: BroadcastRecord,
    next_at: datetime | None,
    runs: list[ExecutionOut] | None = None,
    *,
    full_url: bool = True,
) -> BroadcastOut:
    """The API's view; `full_url` False shows a relay's URL without its query (a token)."""
    lunar = (
        LunarIn(day=record.lunar_day, month=record.lunar_month)
        if record.lunar_day is not None
        else None
    )
    targets = record.targets
    return BroadcastOut(
        id=record.id,
        title=record.title,
        kind=record.kind.value,
        priority=record.priority,
        status=record.status.value,
        text=record.text,
        media_id=record.media_id,
        url=record.url if full_url or record.url is None else display_url(record.url),
        duration_s=record.duration_s,
        voice=record.voice,
        volume=record.volume,
        lateness_min=record.lateness_s // 60,
        targets=TargetsOut(
            all=targets.all, zones=list(targets.zones), speakers=list(targets.speakers)
        ),
        start_at=record.start_at.astimezone(LOCAL),
        rrule=record.rrule,
        lunar=lunar,
        skip_dates=sorted(record.skip_dates),
        next_at=_local(next_at),
        created_by=record.created_by,
        executions=runs or [],
    )


def execution_out(run: ExecutionRecord, commands: Iterable[CommandRecord]) -> ExecutionOut:
    """One execution with each speaker's latest play (a resumed play supersedes the cut one)."""
    mine = [c for c in commands if c.item_id == str(run.id)]
    shown = sorted(latest_per_speaker(mine), key=lambda c: c.speaker_id)
    return ExecutionOut(
        id=run.id,
        slot=run.slot.astimezone(LOCAL),
        state=run.state.value,
        fired_at=_local(run.fired_at),
        stopped_at=_local(run.stopped_at),
        error=run.error,
        summary=dict(Counter(c.state.value for c in shown)),
        speakers=[CommandOut.of(c) for c in shown],
        plays=len(mine),
    )
