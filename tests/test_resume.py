"""An item an emergency cut off: played again after it, or recorded as interrupted.

End to end: the daemon in this process (MQTT, speakers, broadcast engine, HTTP) with a
Resumer on its dispatcher, simulated speakers on a real mosquitto downloading and
timing real audio, the emergency spoken by espeak-ng through the real pipeline.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from daemon.auth import Role
from daemon.broadcasts.dispatch import source_of
from daemon.broadcasts.report import CUT_BY_EMERGENCY
from daemon.broadcasts.resume import Outcome, Policy, Resumer, refusal
from daemon.broadcasts.store import BroadcastRecord, ExecState, ExecutionRecord, Kind, Status
from daemon.broadcasts.store import Targets as BroadcastTargets
from daemon.schedule.recurrence import LOCAL
from daemon.schedule.rules import QuietHours, Rules
from daemon.speakers.outbox import CommandRecord, DeliveryState
from daemon.state import AppState
from drivers.sim.broker import PrivateBroker
from drivers.sim.speaker import SpeakerFleet
from tests.speaker_rig import (
    bearer,
    declared,
    make_audio,
    native,
    running_daemon,
    speaker_config,
    until,
)

RADIO = bearer(Role.RADIO, "radio")
LEADER = bearer(Role.LEADER, "leader")
SPEED = 2.0  # the 30 s programme plays in 15 s: time enough for the emergency to cut it
STORM = "Khẩn cấp: bão số 3 sắp đổ bộ, bà con không ra khơi."
# About half a minute of speech (espeak-ng, 140 words a minute): 15 s at SPEED.
LONG_STORM = (
    "Khẩn cấp. Ban chỉ huy phòng chống thiên tai xã thông báo: bão số 3 đang tiến vào "
    "đất liền với sức gió mạnh cấp mười, giật cấp mười hai. Bà con tuyệt đối không ra "
    "khơi, đưa tàu thuyền vào nơi neo đậu an toàn, chằng chống nhà cửa, di dời người già "
    "và trẻ em khỏi vùng trũng thấp ven sông ngay trong chiều nay, và theo dõi thông báo "
    "tiếp theo của xã."
)


def config(
    tmp_path: Path, port: int, site: str, policy: Policy
) -> tuple[dict[str, Any], list[Any]]:
    specs = native(4, zones=2, prefix="loa")  # loa-1, loa-3 in thon-1; loa-2, loa-4 in thon-2
    data = speaker_config(tmp_path, port, site=site, speakers=declared(specs))
    data["audio"] = {"tts": {"engines": ["espeak-ng"]}, "chime": {"before": False}}
    # Tests run at any hour: quiet hours would hold a normal item back at night.
    data["broadcasts"] = {
        "quiet_morning": None,
        "quiet_evening": None,
        "after_preemption": policy,
    }
    return data, specs


@contextlib.asynccontextmanager
async def resumer_on(state: AppState) -> AsyncIterator[Resumer]:
    """The daemon's own Resumer (its policy from the config)."""
    yield state.resumer


async def online(api: httpx.AsyncClient, count: int) -> bool:
    listed = (await api.get("/api/v1/speakers", params={"status": "online"})).json()
    return len(listed) == count


async def broadcast(api: httpx.AsyncClient, **body: Any) -> str:
    created = await api.post("/api/v1/broadcasts", json=body, headers=RADIO)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def programme(api: httpx.AsyncClient, tmp_path: Path, **extra: Any) -> str:
    """A 30 s recording to both zones, as a normal broadcast."""
    upload = await api.post(
        "/api/v1/media",
        params={"filename": "ca-nhac.mp3"},
        content=make_audio(tmp_path / "ca-nhac.mp3", 30.0),
        headers=RADIO,
    )
    assert upload.status_code == 201, upload.text
    return await broadcast(
        api,
        title="Chương trình ca nhạc",
        media_id=upload.json()["id"],
        targets={"zones": ["thon-1", "thon-2"]},
        **extra,
    )


async def commands(state: AppState, broadcast_id: str) -> list[CommandRecord]:
    """The broadcast's speaker commands, oldest first, progress not yet saved included."""
    found = await state.speakers.dispatcher.recent(source=source_of(broadcast_id), limit=1000)
    return sorted(found, key=lambda c: c.issued_at)


async def all_in(
    state: AppState, broadcast_id: str, wanted: set[DeliveryState], count: int
) -> list[CommandRecord] | None:
    found = await commands(state, broadcast_id)
    return found if len(found) == count and all(c.state in wanted for c in found) else None


def outcomes(fleet: SpeakerFleet, speaker_id: str) -> list[tuple[str, str | None]]:
    """What a simulated speaker played: (item_id, outcome) in order."""
    return [(play.item_id, play.outcome) for play in fleet[speaker_id].plays]


async def latest_deliveries(api: httpx.AsyncClient, broadcast_id: str) -> dict[str, Any]:
    """Per speaker, the latest delivery of the broadcast's one execution, as the API shows it."""
    body = (await api.get(f"/api/v1/broadcasts/{broadcast_id}", headers=RADIO)).json()
    (run,) = body["executions"]
    latest: dict[str, Any] = {}
    for delivery in sorted(run["speakers"], key=lambda d: d["issued_at"]):
        latest[delivery["speaker_id"]] = delivery
    return latest


async def report_row(api: httpx.AsyncClient, title: str) -> list[str]:
    day = datetime.now(UTC).astimezone(LOCAL).date().isoformat()
    params = {"day": day, "format": "csv"}
    text = (await api.get("/api/v1/reports/broadcasts", params=params, headers=LEADER)).text
    rows = [row for row in csv.reader(io.StringIO(text.removeprefix("\ufeff"))) if row[1] == title]
    assert len(rows) == 1, rows
    return rows[0]


async def test_an_item_an_emergency_cut_off_is_played_again_once_after_it(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    data, specs = config(tmp_path, broker.port, site, "resume")
    ids = [spec.id for spec in specs]
    async with (
        running_daemon(data) as (state, api),
        resumer_on(state) as resumer,
        SpeakerFleet(host="127.0.0.1", port=broker.port, site=site, speakers=specs, speed=SPEED)
        as fleet,
    ):  # fmt: skip
        await until(lambda: online(api, len(ids)))
        programme_id = await programme(api, tmp_path)
        started = {DeliveryState.STARTED}
        first = await until(lambda: all_in(state, programme_id, started, len(ids)), within_s=30)
        item = str(first[0].item_id)

        storm_id = await broadcast(
            api, text=STORM, targets={"all": True}, priority="emergency", title="Bão số 3"
        )

        # Every speaker: the programme cut, the storm warning, then the programme again.
        async def resumed_playing() -> bool:
            return all(
                len(fleet[s].plays) == 3
                and fleet[s].plays[2].duration_s is not None
                and resumer.decisions.get((s, item)) is Outcome.RESUMED
                for s in ids
            )

        await until(resumed_playing, within_s=40)
        for speaker_id in ids:
            (programme_cut, storm, resumed) = outcomes(fleet, speaker_id)
            assert (programme_cut, resumed[0]) == ((item, "preempted"), item)
            assert storm[1] == "completed"
            assert storm[0] != item  # the storm's own execution
        again = await commands(state, programme_id)
        assert len(again) == 2 * len(ids)
        for cut, resent in zip(again[: len(ids)], again[len(ids) :], strict=True):
            assert (cut.state, cut.error) == (DeliveryState.FAILED, "preempted")
            assert (resent.source, resent.item_id, resent.media) == (
                cut.source,
                cut.item_id,
                cut.media,
            )
            assert (resent.priority, resent.volume) == (cut.priority, cut.volume)

        # A second emergency, on thon-2 only, cuts the resumed play: it is not resumed twice.
        second_id = await broadcast(
            api, text=STORM, targets={"zones": ["thon-2"]}, priority="emergency", title="Bão (2)"
        )
        done = {DeliveryState.FINISHED}
        await until(lambda: all_in(state, second_id, done, 2), within_s=40)
        await resumer.resume_ready()  # what the end of the emergency would trigger, now
        await until(lambda: all_in(state, programme_id, done | {DeliveryState.FAILED}, 8), 40)
        for speaker_id in ("loa-1", "loa-3"):
            assert [o for _, o in outcomes(fleet, speaker_id)] == [
                "preempted",
                "completed",
                "completed",
            ]
        for speaker_id in ("loa-2", "loa-4"):
            assert [o for _, o in outcomes(fleet, speaker_id)] == [
                "preempted",
                "completed",
                "preempted",
                "completed",
            ]
            assert resumer.decisions[(speaker_id, item)] is Outcome.ONCE
        assert len(await commands(state, programme_id)) == 2 * len(ids)
        assert resumer.waiting == 0

        latest = await latest_deliveries(api, programme_id)
        assert {s: (d["state"], d["error"]) for s, d in latest.items()} == {
            "loa-1": ("finished", None),
            "loa-3": ("finished", None),
            "loa-2": ("failed", "preempted"),
            "loa-4": ("failed", "preempted"),
        }
        row = await report_row(api, "Chương trình ca nhạc")
        assert row[5:] == ["4", "2", "2", f"{CUT_BY_EMERGENCY}: 2"]
        assert (await report_row(api, "Bão số 3"))[5:8] == ["4", "4", "0"]
        assert storm_id != second_id


@pytest.mark.parametrize(
    ("policy", "late", "outcome"),
    [("interrupted", False, Outcome.INTERRUPTED), ("resume", True, Outcome.LATE)],
)
async def test_an_item_an_emergency_cut_off_stays_interrupted(
    broker: PrivateBroker,
    tmp_path: Path,
    site: str,
    policy: Policy,
    late: bool,
    outcome: Outcome,
) -> None:
    """Per policy, or because the emergency ended after the item's lateness: not resent."""
    data, specs = config(tmp_path, broker.port, site, policy)
    ids = [spec.id for spec in specs]
    # Late: its slot was 50 s ago and it may air 1 min late, so from 10 s after now it
    # is not played again; the emergency below lasts longer than that.
    timing: dict[str, Any] = (
        {"start_at": (datetime.now(UTC) - timedelta(seconds=50)).isoformat(), "lateness_min": 1}
        if late
        else {}
    )
    async with (
        running_daemon(data) as (state, api),
        resumer_on(state) as resumer,
        SpeakerFleet(host="127.0.0.1", port=broker.port, site=site, speakers=specs, speed=SPEED)
        as fleet,
    ):  # fmt: skip
        await until(lambda: online(api, len(ids)))
        created = datetime.now(UTC)
        programme_id = await programme(api, tmp_path, **timing)
        started = {DeliveryState.STARTED}
        first = await until(lambda: all_in(state, programme_id, started, len(ids)), within_s=30)
        item = str(first[0].item_id)

        storm_id = await broadcast(
            api, text=LONG_STORM, targets={"all": True}, priority="emergency"
        )
        done = {DeliveryState.FINISHED}
        storm = await until(lambda: all_in(state, storm_id, done, len(ids)), within_s=60)
        if late:  # the premise: the emergency ended past the programme's lateness
            assert min(c.finished_at or created for c in storm) > created + timedelta(seconds=10)
        await resumer.resume_ready()  # what the end of the emergency triggers, now

        for speaker_id in ids:
            assert [o for _, o in outcomes(fleet, speaker_id)] == ["preempted", "completed"]
            assert resumer.decisions[(speaker_id, item)] is outcome
        cut = await commands(state, programme_id)
        assert [(c.state, c.error) for c in cut] == [(DeliveryState.FAILED, "preempted")] * 4
        assert resumer.waiting == 0

        latest = await latest_deliveries(api, programme_id)
        assert {(d["state"], d["error"]) for d in latest.values()} == {("failed", "preempted")}
        row = await report_row(api, "Chương trình ca nhạc")
        assert row[5:] == ["4", "0", "4", f"{CUT_BY_EMERGENCY}: 4"]
        day = created.astimezone(LOCAL).date().isoformat()
        page = await api.get(
            "/api/v1/reports/broadcasts", params={"day": day, "format": "html"}, headers=LEADER
        )
        assert "bị ngắt bởi tin khẩn cấp (interrupted): 4" in page.text


SLOT = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 08:00 in Vietnam


def _programme(**changes: Any) -> tuple[BroadcastRecord, ExecutionRecord]:
    record = BroadcastRecord(
        "b1", "Ca nhạc", Kind.MEDIA, BroadcastTargets(all=True), "normal", SLOT, "radio",
        SLOT, SLOT, media_id="m1", lateness_s=600,
    )  # fmt: skip
    record = BroadcastRecord(**(record.__dict__ | changes))
    return record, ExecutionRecord(7, "b1", SLOT, ExecState.DISPATCHED, SLOT, fired_at=SLOT)


@pytest.mark.parametrize(
    ("changes", "at", "rules", "expected"),
    [
        ({}, SLOT + timedelta(minutes=9), Rules(), None),
        ({}, SLOT + timedelta(minutes=11), Rules(), Outcome.LATE),
        ({"lateness_s": 3600}, SLOT + timedelta(minutes=11), Rules(), None),
        ({"status": Status.CANCELLED}, SLOT, Rules(), Outcome.GONE),
        ({"status": Status.DONE}, SLOT, Rules(), None),  # a one-off is DONE once it aired
        # 08:05 in Vietnam inside quiet hours that run until 09:00: held back...
        ({}, SLOT + timedelta(minutes=5), Rules(quiet=(QuietHours(morning=time(9)),)),
         Outcome.HELD_BACK),
        # ...unless it is itself an emergency item.
        ({"priority": "emergency"}, SLOT + timedelta(minutes=5),
         Rules(quiet=(QuietHours(morning=time(9)),)), None),
    ],
)  # fmt: skip
def test_when_a_cut_off_item_may_be_played_again(
    changes: dict[str, Any], at: datetime, rules: Rules, expected: Outcome | None
) -> None:
    record, execution = _programme(**changes)
    assert refusal(rules, record, execution, at) is expected
    assert refusal(rules, None, execution, at) is Outcome.GONE
