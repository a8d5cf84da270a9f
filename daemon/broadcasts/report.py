"""The broadcast report the commune sends upward: what aired, when, where, who heard it.

One row per execution (a broadcast's air time) in a day or a month of Vietnam's
calendar, with how many speakers confirmed it (started or finished playing) and why
the others did not. A speaker counts once, by its latest command for the execution:
an item an emergency cut off and that was then played again (broadcasts.resume) is
one speaker that heard it. Written as CSV, JSON or a printable Vietnamese HTML page.
"""

from __future__ import annotations

import csv
import html
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa

from daemon.broadcasts.dispatch import source_of
from daemon.broadcasts.store import Targets, executions_between
from daemon.schedule.recurrence import LOCAL
from daemon.speakers.outbox import CommandRecord, DeliveryState, latest_per_speaker, recent_commands
from daemon.store import Store
from daemon.store.schema import speaker_commands
from drivers.speaker.model import Op, Priority

HEARD = {DeliveryState.STARTED, DeliveryState.FINISHED}
PRIORITY_WORDS = {"normal": "Thông thường", "priority": "Ưu tiên", "emergency": "Khẩn cấp"}
STATE_WORDS = {
    "dispatched": "Đã phát",
    "missed": "Bị lỡ",
    "failed": "Lỗi",
    "pending": "Đang gửi",
    "cancelled": "Đã hủy",
}
# A delivery cut off by another play (the speaker's `preempted`), by what cut it off.
CUT_BY_EMERGENCY = "bị ngắt bởi tin khẩn cấp (interrupted)"
CUT_BY_PRIORITY = "bị ngắt bởi tin ưu tiên hơn (interrupted)"
REPLACED = "bị thay bằng tin mới hơn (replaced)"
COLUMNS = (
    ("time", "Thời gian"),
    ("title", "Nội dung"),
    ("priority", "Mức độ"),
    ("targets", "Nơi phát"),
    ("state", "Kết quả"),
    ("speakers", "Số cụm loa"),
    ("heard", "Đã phát xác nhận"),
    ("not_heard", "Chưa phát"),
    ("problems", "Lý do"),
)


@dataclass(frozen=True)
class ReportRow:
    time: str  # local, HH:MM dd/mm/YYYY
    title: str
    priority: str
    targets: str
    state: str
    speakers: int
    heard: int
    not_heard: int
    problems: str  # e.g. "offline: 2; busy: 1"


def period(day: date, *, month: bool) -> tuple[datetime, datetime]:
    """The day (or its month) as [start, end) instants of Vietnam's calendar."""
    first = day.replace(day=1) if month else day
    after = (first + timedelta(days=32)).replace(day=1) if month else first + timedelta(days=1)
    return datetime.combine(first, time(), LOCAL), datetime.combine(after, time(), LOCAL)


def _targets_text(targets: Targets) -> str:
    if targets.all:
        return "Tất cả"
    parts = [*(f"vùng {z}" for z in targets.zones), *(f"loa {s}" for s in targets.speakers)]
    return ", ".join(parts)


async def _cutters(store: Store, cut: Sequence[CommandRecord]) -> dict[str, Priority]:
    """For each cut-off command (by cmd_id), the highest priority of the plays that took
    over its speaker: handed to it before the cut, and not ended before it."""
    ends = [c.finished_at for c in cut if c.finished_at is not None]
    if not ends:
        return {}
    table = speaker_commands
    query = sa.select(
        table.c.cmd_id, table.c.speaker_id, table.c.priority, table.c.issued_at, table.c.finished_at
    ).where(
        table.c.op == Op.PLAY.value,
        table.c.priority >= min(int(c.priority) for c in cut),
        table.c.acked_at.is_not(None) | table.c.started_at.is_not(None),
        table.c.issued_at <= max(ends),
        table.c.finished_at.is_(None) | (table.c.finished_at >= min(ends)),
    )
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    # Per speaker: (cmd_id, priority, issued_at, finished_at) of the plays that may have cut.
    on_speaker: dict[str, list[tuple[str, Priority, datetime, datetime | None]]] = {}
    for cmd_id, speaker_id, priority, issued_at, finished_at in rows:
        on_speaker.setdefault(speaker_id, []).append(
            (cmd_id, Priority(priority), _utc(issued_at), finished_at and _utc(finished_at))
        )
    found: dict[str, Priority] = {}
    for command in cut:
        end = command.finished_at
        priorities = [
            priority
            for cmd_id, priority, issued_at, finished_at in on_speaker.get(command.speaker_id, ())
            if end is not None
            and cmd_id != command.cmd_id
            and issued_at <= end
            and (finished_at is None or finished_at >= end)
        ]
        if priorities:
            found[command.cmd_id] = max(priorities)
    return found


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time in the outbox is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _problem(command: CommandRecord, cutters: dict[str, Priority]) -> str:
    if command.error != "preempted":
        return command.error or command.state.value
    cutter = cutters.get(command.cmd_id)
    if cutter is Priority.EMERGENCY:
        return CUT_BY_EMERGENCY
    if cutter is not None and cutter > command.priority:
        return CUT_BY_PRIORITY
    return REPLACED


async def build_report(store: Store, start: datetime, end: datetime) -> list[ReportRow]:
    rows = []
    commands_of: dict[str, list[CommandRecord]] = {}
    for execution, broadcast in await executions_between(store, start, end):
        if broadcast.id not in commands_of:
            commands_of[broadcast.id] = await recent_commands(
                store, source=source_of(broadcast.id), limit=100_000
            )
        mine = latest_per_speaker(
            [c for c in commands_of[broadcast.id] if c.item_id == str(execution.id)]
        )
        heard = sum(1 for c in mine if c.state in HEARD)
        cut = [c for c in mine if c.error == "preempted"]
        cutters = await _cutters(store, cut) if cut else {}
        problems = Counter(_problem(c, cutters) for c in mine if c.state not in HEARD)
        rows.append(
            ReportRow(
                time=f"{execution.slot.astimezone(LOCAL):%H:%M %d/%m/%Y}",
                title=broadcast.title,
                priority=PRIORITY_WORDS.get(broadcast.priority, broadcast.priority),
                targets=_targets_text(broadcast.targets),
                state=STATE_WORDS.get(execution.state.value, execution.state.value)
                + (f" ({execution.error})" if execution.error else ""),
                speakers=len(mine),
                heard=heard,
                not_heard=len(mine) - heard,
                problems="; ".join(f"{k}: {n}" for k, n in sorted(problems.items())),
            )
        )
    return rows


def to_csv(rows: Sequence[ReportRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([label for _, label in COLUMNS])
    for row in rows:
        values = asdict(row)
        writer.writerow([_cell(values[key]) for key, _ in COLUMNS])
    # A byte-order mark: Excel, which the commune opens it with, then reads UTF-8.
    return "\ufeff" + out.getvalue()


def _cell(value: object) -> object:
    # A cell starting with = + - @ is a formula to a spreadsheet: keep it text.
    if isinstance(value, str) and value[:1] in {"=", "+", "-", "@"}:
        return "'" + value
    return value


def to_html(rows: Sequence[ReportRow], heading: str, site: str) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in COLUMNS)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(str(asdict(row)[key]))}</td>" for key, _ in COLUMNS)
        + "</tr>"
        for row in rows
    )
    total = sum(r.speakers for r in rows)
    heard = sum(r.heard for r in rows)
    return f"""<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><title>{html.escape(heading)}</title>
<link rel="stylesheet" href="/static/report.css"></head>
<body><h1>{html.escape(heading)}</h1>
<p>Đơn vị: {html.escape(site)} · Số lượt phát: {len(rows)} ·
Lượt cụm loa xác nhận đã phát: {heard}/{total}</p>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
</body></html>
"""
