"""Broadcast reports: a day or a month of Vietnam's calendar, as CSV, JSON or printable HTML."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import HTMLResponse, JSONResponse

from daemon.api.deps import State, require_role
from daemon.auth import Claims, Role
from daemon.broadcasts.report import build_report, period, to_csv, to_html
from daemon.schedule.recurrence import LOCAL

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
Reader = Annotated[Claims, Depends(require_role(Role.RADIO, Role.LEADER))]


@router.get("/broadcasts", response_class=Response)
async def broadcast_report(
    state: State,
    _: Reader,
    day: Annotated[date | None, Query(description="YYYY-MM-DD; default: today")] = None,
    span: Annotated[Literal["day", "month"], Query(description="The day, or its month")] = "day",
    format_: Annotated[Literal["csv", "json", "html"], Query(alias="format")] = "json",
) -> Response:
    """What aired, when, where and how many speakers confirmed it (default: today)."""
    when = day or datetime.now(UTC).astimezone(LOCAL).date()
    start, end = period(when, month=span == "month")
    rows = await build_report(state.store, start, end)
    label = f"{when:%m/%Y}" if span == "month" else f"{when:%d/%m/%Y}"
    name = f"bao-cao-phat-thanh-{when:%Y-%m}" + ("" if span == "month" else f"-{when:%d}")
    if format_ == "csv":
        return Response(
            to_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    if format_ == "html":
        heading = f"Báo cáo phát thanh {'tháng' if span == 'month' else 'ngày'} {label}"
        return HTMLResponse(to_html(rows, heading, state.config.site))
    return JSONResponse({"period": label, "rows": [asdict(row) for row in rows]})
