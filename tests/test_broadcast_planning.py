"""Scheduling ahead, end to end: render-ahead and air on time, conflicts, changes, live progress.

The daemon runs in this process (MQTT, speakers, render-ahead, the engine, HTTP) against
the session's private mosquitto; the speakers are the project's simulator, which
downloads and decodes what it is told to play; speech comes from espeak-ng.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from daemon.auth import Role
from daemon.broadcasts.store import (
    BroadcastRecord,
    ExecState,
    Kind,
    Status,
    Targets,
    claim,
    get_broadcast,
    insert_broadcast,
)
from daemon.broadcasts.upcoming import job_id
from daemon.schedule.recurrence import LOCAL
from daemon.store.schema import audit_log
from drivers.sim.broker import PrivateBroker
from drivers.sim.speaker import SpeakerFleet
from tests.speaker_rig import bearer, holds, running_daemon, until
from tests.test_broadcasts_api import RADIO, SPEED, check_report, config, execution, online

LEADER = bearer(Role.LEADER, "leader")


def at(moment: datetime) -> str:
    return moment.isoformat()


async def create(api: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await api.post("/api/v1/broadcasts", json=body, headers=RADIO)


async def test_speech_scheduled_a_minute_ahead_is_rendered_before_and_airs_on_time(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    data, specs = config(tmp_path, broker.port, site, 4)
    async with (
        running_daemon(data) as (state, api),
        SpeakerFleet(host="127.0.0.1", port=broker.port, site=site, speakers=specs, speed=SPEED)
        as fleet,
    ):  # fmt: skip
        await until(lambda: online(api, len(specs)))
        slot = (datetime.now(UTC) + timedelta(minutes=1)).replace(microsecond=0)
        created = await create(
            api,
            title="Lịch tiêm phòng",
            text="Sáng mai 7h30, trạm y tế xã tiêm phòng cho trẻ em tại nhà văn hóa thôn.",
            targets={"zones": ["thon-1", "thon-2"]},
            start_at=at(slot),
        )
        assert created.status_code == 201, created.text
        broadcast_id = created.json()["id"]
        record = await get_broadcast(state.store, broadcast_id)
        assert record is not None
        job = job_id(record, slot)

        async def rendered() -> bool:
            status = state.render_ahead.status(job)
            return status is not None and status.state == "ready"

        await until(rendered, within_s=50)
        assert datetime.now(UTC) < slot, "the speech must be ready before its air time"
        ready = state.render_ahead.status(job)
        assert ready is not None
        assert ready.spoken is not None
        assert not ready.spoken.cached  # rendered now, ahead, not at air time

        run = await until(lambda: execution(api, broadcast_id, "finished"), within_s=90)
        fired_at = datetime.fromisoformat(run["fired_at"])
        assert abs((fired_at - slot).total_seconds()) <= 2.0, (fired_at, slot)
        assert run["summary"] == {"finished": len(specs)}
        for speaker in run["speakers"]:
            issued = datetime.fromisoformat(speaker["issued_at"])
            assert abs((issued - slot).total_seconds()) <= 2.0, speaker
        for spec in specs:
            plays = fleet[spec.id].plays
            assert [play.outcome for play in plays] == ["completed"]
            # The speakers played the file rendered ahead, not a new render.
            assert ready.spoken.file in plays[0].url
        await check_report(api, run["slot"], "Lịch tiêm phòng", heard=len(specs))


async def progress_events(
    api: httpx.AsyncClient, broadcast_id: str, headers: dict[str, str]
) -> AsyncIterator[dict[str, Any]]:
    """Each `progress` event of the broadcast's live stream, parsed."""
    path = f"/api/v1/broadcasts/{broadcast_id}/events"
    async with api.stream("GET", path, headers=headers, timeout=60) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        event = None
        async for line in answer.aiter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "progress":
                yield json.loads(line.removeprefix("data: "))


async def test_live_progress_is_pushed_until_every_speaker_has_finished(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    data, specs = config(tmp_path, broker.port, site, 3)
    async with (
        running_daemon(data) as (_state, api),
        SpeakerFleet(host="127.0.0.1", port=broker.port, site=site, speakers=specs, speed=1.0),
    ):  # fmt: skip
        await until(lambda: online(api, len(specs)))
        later = datetime.now(UTC) + timedelta(seconds=20)
        created = await create(
            api, text="Thông báo lịch họp thôn.", targets={"all": True}, start_at=at(later)
        )
        broadcast_id = created.json()["id"]
        seen: list[dict[str, Any]] = []
        async for view in progress_events(api, broadcast_id, LEADER):
            seen.append(view)
            if len(seen) == 1:  # nothing aired yet: the stream starts with the plan
                assert view["executions"] == []
                # Only now (subscribed) is it made due: what follows comes pushed.
                await api.patch(
                    f"/api/v1/broadcasts/{broadcast_id}",
                    json={"start_at": at(datetime.now(UTC))},
                    headers=RADIO,
                )
            runs = view["executions"]
            if runs and runs[0]["summary"] == {"finished": len(specs)}:
                break
        states = [frozenset(run["summary"]) for view in seen for run in view["executions"][:1]]
        # The console saw the delivery progress, not just the end: several distinct states.
        assert len(set(states)) >= 2, states
        assert frozenset({"finished"}) == states[-1]

        path = f"/api/v1/broadcasts/{broadcast_id}/events"
        assert (await api.get(path)).status_code == 403  # a technician's token
        async with httpx.AsyncClient(base_url=str(api.base_url)) as stranger:
            assert (await stranger.get(path)).status_code == 401


async def test_an_overlap_is_reported_then_queued_reordered_replaced_or_allowed(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    data, _ = config(tmp_path, broker.port, site, 2)
    base = (datetime.now(UTC) + timedelta(days=1)).replace(
        hour=1, minute=0, second=0, microsecond=0
    )
    text = "Thông báo về việc thu gom rác thải trong thôn. " * 4  # about 35 s of speech
    async with running_daemon(data) as (_state, api):
        first = await create(api, title="Thu gom rác", text=text, targets={"zones": ["thon-1"]},
                             start_at=at(base))  # fmt: skip
        assert first.status_code == 201, first.text

        # Another zone at the same time: no conflict.
        elsewhere = await create(api, title="Thôn hai", text=text,
                                 targets={"zones": ["thon-2"]}, start_at=at(base))  # fmt: skip
        assert elsewhere.status_code == 201, elsewhere.text

        asked = await create(api, title="Họp dân", text=text, targets={"all": True},
                             start_at=at(base + timedelta(seconds=10)))  # fmt: skip
        assert asked.status_code == 409
        detail = asked.json()["detail"]
        assert "Trùng giờ" in detail["message"]
        assert {c["title"] for c in detail["conflicts"]} == {"Thu gom rác", "Thôn hai"}
        assert detail["choices"] == ["queue", "reorder", "replace", "allow"]
        assert len((await api.get("/api/v1/broadcasts", headers=RADIO)).json()) == 2

        queued = await create(api, title="Họp dân", text=text, targets={"all": True},
                              start_at=at(base + timedelta(seconds=10)),
                              on_conflict="queue")  # fmt: skip
        assert queued.status_code == 201, queued.text
        queued_start = datetime.fromisoformat(queued.json()["start_at"])
        assert queued_start > base + timedelta(seconds=30)

        # Reorder: the new item keeps its time, the one-off in the way moves after it.
        early = await create(api, title="Tin gấp", text=text, targets={"zones": ["thon-1"]},
                             start_at=at(base), on_conflict="reorder")  # fmt: skip
        assert early.status_code == 201, early.text
        assert datetime.fromisoformat(early.json()["start_at"]) == base
        listed = {
            b["title"]: b for b in (await api.get("/api/v1/broadcasts", headers=RADIO)).json()
        }
        assert datetime.fromisoformat(listed["Thu gom rác"]["start_at"]) > base

        # Replace a repeating programme: it skips that day only.
        daily = await create(api, title="Chương trình sáng", text=text,
                             targets={"zones": ["thon-2"]},
                             start_at=at(base + timedelta(hours=2)),
                             recurrence={"rrule": "FREQ=DAILY"})  # fmt: skip
        assert daily.status_code == 201, daily.text
        instead = await create(api, title="Tin thay thế", text=text,
                               targets={"zones": ["thon-2"]},
                               start_at=at(base + timedelta(hours=2)),
                               on_conflict="replace")  # fmt: skip
        assert instead.status_code == 201, instead.text
        programme = (await api.get(f"/api/v1/broadcasts/{daily.json()['id']}",
                                   headers=RADIO)).json()  # fmt: skip
        skipped = (base + timedelta(hours=2)).astimezone(LOCAL).date().isoformat()
        assert programme["status"] == "active"
        assert programme["skip_dates"] == [skipped]
        upcoming = (await api.get(f"/api/v1/broadcasts/{daily.json()['id']}/next",
                                  params={"count": 2}, headers=RADIO)).json()  # fmt: skip
        assert all(not moment.startswith(skipped) for moment in upcoming)

        # An emergency is never asked.
        storm = await create(api, text="Bão khẩn cấp.", targets={"all": True},
                             start_at=at(base), priority="emergency")  # fmt: skip
        assert storm.status_code == 201, storm.text

        allowed = await create(api, title="Vẫn phát", text=text, targets={"all": True},
                               start_at=at(base), on_conflict="allow")  # fmt: skip
        assert allowed.status_code == 201, allowed.text


async def test_a_broadcast_is_changed_filtered_and_its_executions_paged(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    data, _ = config(tmp_path, broker.port, site, 1)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)
    async with running_daemon(data) as (state, api):
        created = await create(api, title="Bản tin sáng", text="Bản tin buổi sáng.",
                               targets={"all": True}, start_at=at(tomorrow),
                               recurrence={"rrule": "FREQ=DAILY"})  # fmt: skip
        broadcast_id = created.json()["id"]
        path = f"/api/v1/broadcasts/{broadcast_id}"
        later = tomorrow + timedelta(hours=1)
        changed = await api.patch(
            path, json={"title": "Bản tin sáng (mới)", "start_at": at(later),
                        "text": "Bản tin mới.", "volume": 40}, headers=RADIO,
        )  # fmt: skip
        assert changed.status_code == 200, changed.text
        body = changed.json()
        assert (body["title"], body["text"], body["volume"]) == (
            "Bản tin sáng (mới)",
            "Bản tin mới.",
            40,
        )
        assert body["rrule"] == "FREQ=DAILY"  # not given: unchanged
        assert datetime.fromisoformat(body["next_at"]) == later
        assert body["start_at"].endswith("+07:00")
        once = await api.patch(path, json={"recurrence": None}, headers=RADIO)
        assert once.json()["rrule"] is None
        past = await api.patch(path, json={"start_at": "2020-01-01T06:00:00+07:00"}, headers=RADIO)
        assert past.status_code == 422
        assert "đã qua" in past.json()["detail"]
        assert (await api.patch(path, json={"title": "x"}, headers=LEADER)).status_code == 403
        async with state.store.engine.connect() as conn:
            audited = (await conn.scalars(sa.select(audit_log.c.action))).all()
        assert audited.count("broadcast.update") == 2

        urgent = await create(api, title="Khẩn", text="Tin khẩn.", targets={"all": True},
                              start_at=at(tomorrow + timedelta(days=2)),
                              priority="emergency")  # fmt: skip
        assert urgent.status_code == 201
        listed = await api.get(
            "/api/v1/broadcasts", params={"priority": "emergency"}, headers=LEADER
        )
        assert [b["title"] for b in listed.json()] == ["Khẩn"]
        texts = await api.get("/api/v1/broadcasts", params={"kind": "media"}, headers=LEADER)
        assert texts.json() == []

        await api.post(f"{path}/cancel", headers=RADIO)
        refused = await api.patch(path, json={"title": "y"}, headers=RADIO)
        assert refused.status_code == 409

        record = await get_broadcast(state.store, broadcast_id)
        assert record is not None
        # Last week's programme gets a new rule: its start is in the past, and that is fine.
        old = replace(record, id="0" * 32, start_at=record.start_at - timedelta(days=8),
                      created_at=datetime.now(UTC) - timedelta(days=8),
                      status=Status.ACTIVE)  # fmt: skip
        await insert_broadcast(state.store, old)
        new_rule = {"recurrence": {"rrule": "FREQ=DAILY;BYHOUR=7"}, "on_conflict": "allow"}
        ruled = await api.patch(f"/api/v1/broadcasts/{old.id}", json=new_rule, headers=RADIO)
        assert ruled.status_code == 200, ruled.text
        assert datetime.fromisoformat(ruled.json()["next_at"]).hour == 7

        # Paging: three decided slots, two per page, newest first.
        for day in range(3):
            await claim(state.store, broadcast_id, later + timedelta(days=day),
                        ExecState.MISSED, datetime.now(UTC))  # fmt: skip
        page = (await api.get(f"{path}/executions", params={"limit": 2}, headers=LEADER)).json()
        assert [run["state"] for run in page] == ["missed", "missed"]
        older = await api.get(f"{path}/executions", params={"limit": 2, "before": page[-1]["id"]},
                              headers=LEADER)  # fmt: skip
        slots = [run["slot"] for run in page + older.json()]
        assert slots == sorted(slots, reverse=True)
        assert len(slots) == 3


def _far_from_midnight() -> bool:
    local = datetime.now(LOCAL)
    since_midnight = local - local.replace(hour=0, minute=0, second=0, microsecond=0)
    return timedelta(minutes=6) < since_midnight < timedelta(hours=23, minutes=56)


async def test_a_programme_moved_later_on_a_day_it_already_aired_starts_the_next_day(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    # The test needs "earlier today" and "later today": it waits out the minutes around midnight.
    await until(lambda: holds(_far_from_midnight()), within_s=11 * 60, interval=1)
    data, _ = config(tmp_path, broker.port, site, 1)
    now = datetime.now(UTC).replace(microsecond=0)
    today = now.astimezone(LOCAL).date()
    later = (now + timedelta(minutes=3)).astimezone(LOCAL).replace(second=0)
    moved = {
        "recurrence": {"rrule": f"FREQ=DAILY;BYHOUR={later.hour};BYMINUTE={later.minute}"},
        "on_conflict": "allow",
    }
    async with running_daemon(data) as (state, api):

        async def daily(title: str, *, aired: bool) -> str:
            # A daily programme of last week, airing each day five minutes before now (the
            # engine leaves that slot alone: it is older than the schedule's last change).
            slot = (now - timedelta(minutes=5)).replace(second=0)
            record = BroadcastRecord(
                uuid.uuid4().hex, title, Kind.TEXT, Targets(all=True), "normal",
                slot - timedelta(days=7), "radio", now - timedelta(days=7), now,
                text=f"{title}.", rrule="FREQ=DAILY", planned_at=now,
            )  # fmt: skip
            await insert_broadcast(state.store, record)
            if aired:
                await claim(state.store, record.id, slot, ExecState.DISPATCHED, slot)
            return f"/api/v1/broadcasts/{record.id}"

        aired = await daily("Bản tin sáng", aired=True)
        answer = await api.patch(aired, json=moved, headers=RADIO)
        assert answer.status_code == 200, answer.text
        assert answer.json()["skip_dates"] == [today.isoformat()]
        assert datetime.fromisoformat(answer.json()["next_at"]) == later + timedelta(days=1)
        assert (await api.get(f"{aired}/next", params={"count": 1}, headers=RADIO)).json() == [
            answer.json()["next_at"]
        ]
        # Giving today back is the operator's word: it is not skipped again.
        given_back = {"recurrence": {**moved["recurrence"], "skip_dates": []}}
        answer = await api.patch(aired, json=given_back, headers=RADIO)
        assert answer.status_code == 200, answer.text
        assert answer.json()["skip_dates"] == []
        assert datetime.fromisoformat(answer.json()["next_at"]) == later

        not_yet = await daily("Bản tin trưa", aired=False)
        answer = await api.patch(not_yet, json=moved, headers=RADIO)
        assert answer.json()["skip_dates"] == []
        assert datetime.fromisoformat(answer.json()["next_at"]) == later

        wanted = await daily("Bản tin chiều", aired=True)
        answer = await api.patch(wanted, json={**moved, "air_again_today": True}, headers=RADIO)
        assert answer.json()["skip_dates"] == []
        assert datetime.fromisoformat(answer.json()["next_at"]) == later


async def test_a_technician_forgets_executions_decided_under_a_clock_set_ahead(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    data, _ = config(tmp_path, broker.port, site, 1)
    async with running_daemon(data) as (state, api):
        path = "/api/v1/broadcasts/clock-reset"
        assert (await api.post(path)).status_code == 409  # nothing in the future: nothing to do
        assert (await api.post(path, headers=RADIO)).status_code == 403
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        created = await create(api, text="Bản tin.", targets={"all": True}, start_at=at(tomorrow))
        broadcast_id = created.json()["id"]
        # As if the engine had aired it with the clock a day ahead.
        await claim(state.store, broadcast_id, tomorrow, ExecState.PENDING, tomorrow)
        answer = await api.post(path)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"deleted": 1, "brought_back": 0, "reactivated": []}
        assert (await api.get(f"/api/v1/broadcasts/{broadcast_id}", headers=RADIO)).json()[
            "executions"
        ] == []


async def test_a_live_stream_ends_cleanly_when_loacam_stops(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    data, _ = config(tmp_path, broker.port, site, 1)
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    received: list[dict[str, Any]] = []

    async def watch(base_url: str, broadcast_id: str) -> None:
        # A client of its own: the rig's closes before the daemon stops.
        async with httpx.AsyncClient(base_url=base_url) as console:
            async for view in progress_events(console, broadcast_id, LEADER):
                received.append(view)  # noqa: PERF401 - each view is awaited as it comes

    async with running_daemon(data) as (state, api):
        created = await create(api, text="Bản tin.", targets={"all": True}, start_at=at(tomorrow))
        watcher = asyncio.create_task(watch(str(api.base_url), created.json()["id"]))
        await until(lambda: holds(len(received) == 1))
        assert not state.closing.is_set()
        # The daemon stops with the stream open (the `async with` ends it below)...
    # ...and the stream ended as a stream ends, not cut off by the server's graceful
    # timeout (httpx would raise RemoteProtocolError for a response cut mid-way).
    await watcher
    assert state.closing.is_set()
    assert len(received) == 1
