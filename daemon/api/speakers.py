"""Speaker, zone and alarm API: the fleet for those who run it, commands for technicians."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from daemon.api.deps import State, audit, require_role
from daemon.api.speaker_models import (
    AlarmOut,
    CommandOut,
    GroupToneIn,
    SpeakerDetail,
    SpeakerOut,
    ToneIn,
    VolumeIn,
    ZoneIn,
    ZoneOut,
    ZonePatch,
)
from daemon.auth import Claims, Role
from daemon.speakers.alarms import list_alarms
from daemon.speakers.dispatcher import DispatcherNotReadyError
from daemon.speakers.outbox import CommandRecord
from daemon.speakers.registry import Speaker
from daemon.speakers.service import TargetError
from drivers.speaker.model import Op

router = APIRouter(prefix="/api/v1", tags=["speakers"])
# Leaders see that broadcasts went out; the radio operator picks villages; district
# officials have no business with the commune's speakers.
Viewer = Annotated[Claims, Depends(require_role(Role.TECHNICIAN, Role.RADIO, Role.LEADER))]
Technician = Annotated[Claims, Depends(require_role(Role.TECHNICIAN))]
Operator = Annotated[Claims, Depends(require_role(Role.TECHNICIAN, Role.RADIO))]
Status = Literal["online", "offline", "unknown"]


def _speaker(state: State, speaker_id: str) -> Speaker:
    speaker = state.speakers.registry.get(speaker_id)
    if speaker is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Không có loa này (no such speaker)")
    return speaker


def _supports(state: State, speaker: Speaker, op: Op) -> None:
    if op not in state.speakers.drivers[speaker.driver].operations:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"Loa {speaker.name} (giao thức {speaker.driver}) không hỗ trợ lệnh này "
            f"(a {speaker.driver} speaker cannot {op.value})",
        )


@contextlib.contextmanager
def _dispatching() -> Iterator[None]:
    try:
        yield
    except DispatcherNotReadyError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from exc


def _out(records: list[CommandRecord]) -> list[CommandOut]:
    return [CommandOut.of(record) for record in records]


@router.get("/speakers", response_model=list[SpeakerOut])
async def list_speakers(
    state: State,
    _: Viewer,
    zone: Annotated[str | None, Query(max_length=63)] = None,
    status_: Annotated[Status | None, Query(alias="status")] = None,
) -> list[SpeakerOut]:
    """Every speaker with its status; filter by zone and/or status."""
    return [SpeakerOut.of(s) for s in state.speakers.registry.speakers(zone=zone, status=status_)]


@router.get("/speakers/{speaker_id}", response_model=SpeakerDetail)
async def speaker_detail(speaker_id: str, state: State, _: Viewer) -> SpeakerDetail:
    """One speaker, its codecs and its latest commands with their delivery state."""
    speaker = _speaker(state, speaker_id)
    commands = await state.speakers.dispatcher.recent(speaker_id=speaker_id, limit=20)
    return SpeakerDetail(
        **SpeakerOut.of(speaker).model_dump(),
        codecs=list(speaker.codecs),
        commands=_out(commands),
    )


@router.get("/speakers/{speaker_id}/commands", response_model=list[CommandOut])
async def speaker_commands(
    speaker_id: str, state: State, _: Viewer, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[CommandOut]:
    """The latest commands sent to this speaker, each with its delivery state."""
    _speaker(state, speaker_id)
    return _out(await state.speakers.dispatcher.recent(speaker_id=speaker_id, limit=limit))


@router.get("/speaker-commands/{cmd_id}", response_model=CommandOut)
async def command_detail(cmd_id: str, state: State, _: Viewer) -> CommandOut:
    """One command and where its delivery stands."""
    record = await state.speakers.dispatcher.get(cmd_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Không có lệnh này (no such command)")
    return CommandOut.of(record)


@router.post("/speakers/{speaker_id}/volume", response_model=CommandOut, status_code=202)
async def set_volume(
    speaker_id: str, body: VolumeIn, state: State, claims: Technician, request: Request
) -> CommandOut:
    """Set the speaker's default volume (0-100)."""
    speaker = _speaker(state, speaker_id)
    _supports(state, speaker, Op.SET_VOLUME)
    with _dispatching():
        records = await state.speakers.command(
            [speaker.id], Op.SET_VOLUME, source="volume", volume=body.volume
        )
    await audit(state, request, claims, "speaker.volume", speaker.id, detail=str(body.volume))
    return CommandOut.of(records[0])


@router.post("/speakers/{speaker_id}/test-tone", response_model=CommandOut, status_code=202)
async def test_tone(
    speaker_id: str, body: ToneIn, state: State, claims: Technician, request: Request
) -> CommandOut:
    """Play the test tone on one speaker."""
    speaker = _speaker(state, speaker_id)
    with _dispatching():
        records = await state.speakers.test_tone(
            [speaker.id], volume=body.volume, source="test-tone"
        )
    await audit(state, request, claims, "speaker.test_tone", speaker.id)
    return CommandOut.of(records[0])


@router.post("/speakers/test-tone", response_model=list[CommandOut], status_code=202)
async def group_test_tone(
    body: GroupToneIn, state: State, claims: Technician, request: Request
) -> list[CommandOut]:
    """Play the test tone on all speakers, some zones and/or some speakers."""
    try:
        speaker_ids = state.speakers.resolve(body.targets.targets())
    except TargetError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from exc
    with _dispatching():
        records = await state.speakers.test_tone(
            speaker_ids, volume=body.volume, source="test-tone"
        )
    await audit(state, request, claims, "speaker.test_tone", f"{len(records)} speakers")
    return _out(records)


@router.post("/speakers/{speaker_id}/stop", response_model=CommandOut, status_code=202)
async def stop_speaker(
    speaker_id: str, state: State, claims: Operator, request: Request
) -> CommandOut:
    """Stop whatever the speaker plays."""
    speaker = _speaker(state, speaker_id)
    _supports(state, speaker, Op.STOP)
    with _dispatching():
        records = await state.speakers.command([speaker.id], Op.STOP, source="stop")
    await audit(state, request, claims, "speaker.stop", speaker.id)
    return CommandOut.of(records[0])


@router.get("/zones", response_model=list[ZoneOut])
async def zones(state: State, _: Viewer) -> list[ZoneOut]:
    """Zones (villages) with how many speakers each has and how many are online."""
    return [ZoneOut.of(zone) for zone in await state.speakers.zones()]


@router.post("/zones", response_model=ZoneOut, status_code=201)
async def create_zone(body: ZoneIn, state: State, claims: Technician, request: Request) -> ZoneOut:
    """Name a new zone (village)."""
    if any(zone.id == body.id for zone in await state.speakers.zones()):
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"Vùng {body.id} đã có (zone exists)")
    await state.speakers.save_zone(body.id, body.name)
    await audit(state, request, claims, "zone.create", body.id, detail=body.name)
    return next(ZoneOut.of(z) for z in await state.speakers.zones() if z.id == body.id)


@router.patch("/zones/{zone_id}", response_model=ZoneOut)
async def rename_zone(
    zone_id: str, body: ZonePatch, state: State, claims: Technician, request: Request
) -> ZoneOut:
    """Rename a zone."""
    if not any(zone.id == zone_id for zone in await state.speakers.zones()):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Không có vùng này (no such zone)")
    await state.speakers.save_zone(zone_id, body.name)
    await audit(state, request, claims, "zone.rename", zone_id, detail=body.name)
    return next(ZoneOut.of(z) for z in await state.speakers.zones() if z.id == zone_id)


@router.get("/alarms", response_model=list[AlarmOut])
async def alarms(
    state: State,
    _: Viewer,
    *,
    active: bool = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AlarmOut]:
    """Alarms, newest first (`active=true`: only those not cleared)."""
    found = await list_alarms(state.store, active_only=active, limit=limit)
    return [AlarmOut.of(alarm) for alarm in found]
