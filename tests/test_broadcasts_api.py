"""Broadcasts through the API to simulated speakers on a real mosquitto, end to end.

The daemon runs in this process (MQTT, speakers, the broadcast engine, HTTP); the
speakers are the project's simulator, downloading and decoding what they are told to
play; speech comes from espeak-ng through the real audio pipeline.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from daemon.auth import Role
from daemon.broadcasts.dispatch import BroadcastDispatch
from daemon.broadcasts.engine import DispatchError
from daemon.broadcasts.report import ReportRow, to_csv, to_html
from daemon.broadcasts.store import BroadcastRecord, ExecState, ExecutionRecord, Kind, Targets
from daemon.schedule.recurrence import LOCAL
from daemon.schedule.rules import Rules
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
SPEED = 10.0


def config(tmp_path: Path, port: int, site: str, count: int) -> tuple[dict[str, Any], list[Any]]:
    specs = native(count, zones=2, prefix="loa")
    data = speaker_config(tmp_path, port, site=site, speakers=declared(specs))
    data["audio"] = {"tts": {"engines": ["espeak-ng"]}, "chime": {"before": False}}
    # Tests run at any hour: quiet hours would hold a normal item back at night.
    data["broadcasts"] = {"quiet_morning": None, "quiet_evening": None}
    return data, specs


async def online(api: httpx.AsyncClient, count: int) -> bool:
    listed = (await api.get("/api/v1/speakers", params={"status": "online"})).json()
    return len(listed) == count


async def execution(api: httpx.AsyncClient, broadcast_id: str, done: str) -> dict[str, Any] | None:
    body = (await api.get(f"/api/v1/broadcasts/{broadcast_id}", headers=RADIO)).json()
    runs = body["executions"]
    if runs and runs[0]["speakers"] and all(s["state"] == done for s in runs[0]["speakers"]):
        return dict(runs[0])
    return None


async def check_report(api: httpx.AsyncClient, slot: str, title: str, heard: int) -> None:
    """The day's report lists the execution, in CSV, JSON and the printable page."""
    day = datetime.fromisoformat(slot).astimezone(LOCAL).date().isoformat()
    leader = bearer(Role.LEADER, "leader")
    params = {"day": day, "format": "csv"}
    csv_text = (await api.get("/api/v1/reports/broadcasts", params=params, headers=leader)).text
    header, row = list(csv.reader(io.StringIO(csv_text.removeprefix("\ufeff"))))
    assert header[:2] == ["Thời gian", "Nội dung"]
    assert row[1] == title
    assert (row[5], row[6], row[7]) == (str(heard), str(heard), "0")
    assert row[3] == "vùng thon-1, vùng thon-2"
    as_json = await api.get("/api/v1/reports/broadcasts", params={"day": day}, headers=leader)
    assert [r["title"] for r in as_json.json()["rows"]] == [title]
    page = await api.get(
        "/api/v1/reports/broadcasts", params={"day": day, "format": "html"}, headers=leader
    )
    assert page.headers["content-type"].startswith("text/html")
    assert f"<td>{title}</td>" in page.text
    month = {"day": day, "span": "month", "format": "json"}
    assert (
        len(
            (await api.get("/api/v1/reports/broadcasts", params=month, headers=leader)).json()[
                "rows"
            ]
        )
        == 1
    )
    district = bearer(Role.DISTRICT, "district")
    assert (await api.get("/api/v1/reports/broadcasts", headers=district)).status_code == 403


async def test_a_spoken_broadcast_to_two_zones_is_played_by_every_speaker(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    data, specs = config(tmp_path, broker.port, site, 4)
    async with (
        running_daemon(data) as (_state, api),
        SpeakerFleet(host="127.0.0.1", port=broker.port, site=site, speakers=specs, speed=SPEED)
        as fleet,
    ):  # fmt: skip
        await until(lambda: online(api, len(specs)))
        created = await api.post(
            "/api/v1/broadcasts",
            json={
                "title": "Họp thôn",
                "text": "UBND xã mời bà con họp lúc 19h ngày 2/12.",
                "targets": {"zones": ["thon-1", "thon-2"]},
            },
            headers=RADIO,
        )
        assert created.status_code == 201, created.text
        broadcast = created.json()
        run = await until(lambda: execution(api, broadcast["id"], "finished"), within_s=60)
        assert run["state"] == "dispatched"
        assert run["summary"] == {"finished": len(specs)}
        assert sorted(s["speaker_id"] for s in run["speakers"]) == sorted(s.id for s in specs)
        for spec in specs:
            assert [play.outcome for play in fleet[spec.id].plays] == ["completed"]
        await check_report(api, run["slot"], "Họp thôn", heard=len(specs))
        listed = await api.get("/api/v1/broadcasts", headers=bearer(Role.LEADER, "leader"))
        assert [b["id"] for b in listed.json()] == [broadcast["id"]]
        assert (
            await api.get(f"/api/v1/broadcasts/{broadcast['id']}/next", headers=RADIO)
        ).json() == []


async def test_an_emergency_pre_empts_a_normal_item_on_every_speaker(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    data, specs = config(tmp_path, broker.port, site, 3)
    async with (
        running_daemon(data) as (_state, api),
        SpeakerFleet(host="127.0.0.1", port=broker.port, site=site, speakers=specs, speed=1.0)
        as fleet,
    ):  # fmt: skip
        await until(lambda: online(api, len(specs)))
        upload = await api.post(
            "/api/v1/media",
            params={"filename": "chuong-trinh.mp3"},
            content=make_audio(tmp_path / "long.mp3", 60.0),
            headers=RADIO,
        )
        programme = await api.post(
            "/api/v1/broadcasts",
            json={"media_id": upload.json()["id"], "targets": {"all": True}},
            headers=RADIO,
        )
        await until(lambda: execution(api, programme.json()["id"], "started"), within_s=30)

        storm = await api.post(
            "/api/v1/broadcasts",
            json={"text": "Khẩn cấp: bão số 3 sắp đổ bộ.", "targets": {"all": True},
                  "priority": "emergency"},
            headers=RADIO,
        )  # fmt: skip
        assert storm.status_code == 201
        urgent = await until(lambda: execution(api, storm.json()["id"], "started"), within_s=30)
        assert urgent["summary"] == {"started": len(specs)}
        for spec in specs:
            outcomes = [play.outcome for play in fleet[spec.id].plays]
            assert outcomes[0] == "preempted", outcomes


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"text": "x", "targets": {"all": True}, "start_at": "2020-01-01T05:30:00+07:00"},
         "đã qua"),
        ({"text": "x", "targets": {"zones": ["khong-co"]}}, "vùng không tồn tại"),
        ({"text": "x", "targets": {"all": True},
          "recurrence": {"rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"},
          "start_at": "2030-01-01T05:30:00+07:00"}, "không phát lần nào"),
        ({"text": "x", "targets": {"all": True}, "recurrence": {"lunar": {"day": 30}},
          "start_at": "2030-01-01T05:30:00+07:00"}, "ngày 30"),
        ({"media_id": "0" * 32, "targets": {"all": True}}, "thư viện"),
        ({"text": "x", "targets": {"all": True}, "start_at": "2030-01-01T06:00:00"}, None),
        ({"text": "x", "targets": {"all": True}, "start_at": "9999-12-31T23:59:00-05:00"},
         "ngoài phạm vi"),
    ],
)  # fmt: skip
async def test_impossible_broadcasts_get_422_in_plain_words(
    broker: PrivateBroker, tmp_path: Path, site: str, body: dict[str, Any], says: str | None
) -> None:
    data, _ = config(tmp_path, broker.port, site, 1)
    async with running_daemon(data) as (_state, api):
        answer = await api.post("/api/v1/broadcasts", json=body, headers=RADIO)
        assert answer.status_code == 422
        if says is not None:  # None: pydantic's own message (a time without its offset)
            assert says in answer.json()["detail"]
        assert (await api.get("/api/v1/broadcasts", headers=RADIO)).json() == []


async def test_next_occurrences_and_cancel(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    data, _ = config(tmp_path, broker.port, site, 1)
    start = (datetime.now(UTC) + timedelta(days=1)).replace(
        hour=22, minute=30, second=0, microsecond=0
    )
    async with running_daemon(data) as (_state, api):
        created = await api.post(
            "/api/v1/broadcasts",
            json={"text": "Bản tin sáng", "targets": {"all": True}, "start_at": start.isoformat(),
                  "recurrence": {"rrule": "FREQ=DAILY"}},
            headers=RADIO,
        )  # fmt: skip
        assert created.status_code == 201, created.text
        broadcast_id = created.json()["id"]
        upcoming = (
            await api.get(f"/api/v1/broadcasts/{broadcast_id}/next?count=3", headers=RADIO)
        ).json()
        assert [t[-15:] for t in upcoming] == ["T05:30:00+07:00"] * 3
        leader = bearer(Role.LEADER, "leader")
        refused = await api.post(f"/api/v1/broadcasts/{broadcast_id}/cancel", headers=leader)
        assert refused.status_code == 403
        cancelled = await api.post(f"/api/v1/broadcasts/{broadcast_id}/cancel", headers=RADIO)
        assert cancelled.json()["status"] == "cancelled"
        assert (
            await api.get(f"/api/v1/broadcasts/{broadcast_id}/next", headers=RADIO)
        ).json() == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"text": "   ", "targets": {"all": True}}, None),
        ({"text": "a" * 6000, "targets": {"all": True}}, "dài quá"),
        ({"url": "http://127.0.0.1:1/radio", "duration_s": 60, "targets": {"all": True}},
         "tiếp sóng"),
        ({"url": "http://127.0.0.1:1/radio", "targets": {"all": True}}, None),
        ({"text": "x", "targets": {"all": True}, "lateness_min": 0}, None),
        ({"text": "x", "targets": {"all": True}, "recurrence": {"rrule": "FREQ=MINUTELY"},
          "start_at": "2030-01-01T05:30:00+07:00"}, "mỗi giờ"),
        ({"text": "x", "targets": {"all": True},
          "recurrence": {"rrule": "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"},
          "start_at": "2030-01-01T05:30:00+07:00"}, "không phát lần nào"),
    ],
)  # fmt: skip
async def test_unusable_content_is_refused_before_it_is_scheduled(
    broker: PrivateBroker, tmp_path: Path, site: str, body: dict[str, Any], says: str | None
) -> None:
    data, _ = config(tmp_path, broker.port, site, 1)
    async with running_daemon(data) as (_state, api):
        answer = await api.post("/api/v1/broadcasts", json=body, headers=RADIO)
        assert answer.status_code == 422
        if says is not None:
            assert says in answer.json()["detail"]
        assert (await api.get("/api/v1/broadcasts", headers=RADIO)).json() == []
        for role, name in ((Role.LEADER, "leader"), (Role.TECHNICIAN, "tech")):
            refused = await api.post("/api/v1/broadcasts", json=body, headers=bearer(role, name))
            assert refused.status_code == 403
        district = bearer(Role.DISTRICT, "district")
        assert (await api.get("/api/v1/broadcasts", headers=district)).status_code == 403


async def test_quiet_hours_hold_back_a_normal_item_at_its_real_air_time(
    broker: PrivateBroker, tmp_path: Path, site: str
) -> None:
    data, _ = config(tmp_path, broker.port, site, 1)
    async with running_daemon(data) as (state, _api):
        dispatch = BroadcastDispatch(state.speakers, state.audio, state.library, Rules())
        slot = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)  # 20:00 in Vietnam: not quiet
        broadcast = BroadcastRecord(
            "b1", "Tin tối", Kind.TEXT, Targets(all=True), "normal", slot, "radio", slot, slot,
            text="Thông báo",
        )  # fmt: skip
        # Aired late, after the power came back at 02:00 the next night: held back.
        late = ExecutionRecord(
            1, "b1", slot, ExecState.PENDING, slot, fired_at=slot + timedelta(hours=6)
        )
        with pytest.raises(DispatchError, match="Giờ yên tĩnh"):
            await dispatch(broadcast, late)


def test_report_cells_are_never_spreadsheet_formulas_and_html_is_escaped() -> None:
    row = ReportRow(
        "05:30 01/12/2026", "=HYPERLINK(\"http://x\")", "Thông thường", "Tất cả",
        "Đã phát", 2, 1, 1, "offline: 1",
    )  # fmt: skip
    (_, cells) = list(csv.reader(io.StringIO(to_csv([row]).removeprefix("\ufeff"))))
    assert cells[1] == '\'=HYPERLINK("http://x")'
    page = to_html([replace(row, title="<script>alert(1)</script>")], "Báo cáo", "xa")
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
