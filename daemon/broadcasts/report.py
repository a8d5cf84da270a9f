"""The broadcast report the commune sends upward: what aired, when, where, who heard it.

One row per execution (a broadcast's air time) in a day or a month of Vietnam's
calendar, with how many speakers confirmed it (started or finished playing) and why
the others did not. Written as CSV, JSON or a printable Vietnamese HTML page.
"""

from __future__ import annotations

import csv
import html
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta

from daemon.broadcasts.dispatch import source_of
from daemon.broadcasts.store import Targets, executions_between
from daemon.schedule.recurrence import LOCAL
from daemon.speakers.outbox import CommandRecord, DeliveryState, recent_commands
from daemon.store import Store

HEARD = {DeliveryState.STARTED, DeliveryState.FINISHED}
PRIORITY_WORDS = {"normal": "Thông thường", "priority": "Ưu tiên", "emergency": "Khẩn cấp"}
STATE_WORDS = {
    "dispatched": "Đã phát",
    "missed": "Bị lỡ",
    "failed": "Lỗi",
    "pending": "Đang gửi",
    "cancelled": "Đã hủy",
}
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


async def build_report(store: Store, start: datetime, end: datetime) -> list[ReportRow]:
    rows = []
    commands_of: dict[str, list[CommandRecord]] = {}
    for execution, broadcast in await executions_between(store, start, end):
        if broadcast.id not in commands_of:
            commands_of[broadcast.id] = await recent_commands(
                store, source=source_of(broadcast.id), limit=100_000
            )
        mine = [c for c in commands_of[broadcast.id] if c.item_id == str(execution.id)]
        heard = sum(1 for c in mine if c.state in HEARD)
        problems = Counter(c.error or c.state.value for c in mine if c.state not in HEARD)
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
