"""The console's broadcasts section (Lịch phát) in a real browser: programmes, clashes, live
progress, cancel, reports, roles and a phone.

`loacam demo` runs as a process with its twelve simulated speakers in three villages, which
really download and play what they are sent, and its seeded demo day of programmes; Debian's
Chromium runs headless through Playwright with the fixtures of test_web_viewer and the
accounts of test_web_speakers. The tests look only at the programmes they create (by title):
the seed may change. Screenshots go to `<pytest basetemp>/artefacts/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from playwright.sync_api import (
    Browser,
    Dialog,
    Locator,
    Page,
    Response,
    Route,
    ViewportSize,
    expect,
)

from daemon.auth import Role
from tests.stream_server import StreamServer, make_stream_mp3
from tests.test_demo import LOGIN, OPEN, TEMP_DIR, demo
from tests.test_web_audio import make_tone, minutes, wait_until_playable
from tests.test_web_speakers import (
    PC_ZONE,
    VIETNAM,
    add_users,
    check_section_hidden,
    log_in_as,
    watch_for_trouble,
)
from tests.test_web_viewer import artefacts, browser  # noqa: F401 -- pytest fixtures

DAILY = "Bản tin sáng của đài xã (kiểm thử)"
NOW = "Họp khẩn thôn Đông (kiểm thử)"
FIRST = "Họp dân thôn Trung (kiểm thử)"
SECOND = "Tiêm phòng thôn Trung (kiểm thử)"
RELAY = "Tiếp sóng đài tỉnh (kiểm thử)"
RECORDING = "Bài hát chào mừng ngày hội (kiểm thử)"
WEEKLY = "Tuyên truyền an toàn giao thông thôn Đoài (kiểm thử)"
DRAFT = "Thông báo đang viết dở: lịch cắt điện ngày mai"
# Long enough to be heard for some seconds: the detail must see the speakers get there.
SPEECH = (
    "Kính mời bà con thôn Đông đến nhà văn hóa thôn lúc 19h hôm nay để bàn việc "
    "phòng chống bão. Đề nghị các hộ cử người đến đúng giờ."
)
EN_DASH = "\u2013"  # between two times, as the page writes 14:10-14:12
# The lunar months as people name them, Giêng (1) to Chạp (12).
LUNAR_MONTHS = ["Giêng", "Hai", "Ba", "Tư", "Năm", "Sáu", "Bảy", "Tám", "Chín", "Mười"]
LUNAR_MONTHS += ["Mười Một", "Chạp"]
WEEKDAYS = ["thứ Hai", "thứ Ba", "thứ Tư", "thứ Năm", "thứ Sáu", "thứ Bảy", "Chủ nhật"]
DONG = [f"Cụm loa Thôn Đông {n}" for n in range(1, 5)]
PHONE: ViewportSize = {"width": 360, "height": 800}
PLAYED_MS = 120_000  # espeak-ng, ffmpeg's loudness passes and the play, on a two-core machine
SHOWN_AT_ONCE = 50  # broadcasts.js: the list's first page


def air_time(iso: str) -> str:
    """What the page shows for an air time: "06:00, Chủ nhật 29/11/2026" (seconds if any)."""
    moment = datetime.fromisoformat(iso).astimezone(VIETNAM)
    clock = moment.strftime("%H:%M" if moment.second == 0 else "%H:%M:%S")
    return f"{clock}, {WEEKDAYS[moment.weekday()]} {moment:%d/%m/%Y}"


@contextlib.contextmanager
def radio_station(folder: Path) -> Iterator[StreamServer]:
    """tests/stream_server.py's station, on an event loop of its own thread (the browser's
    sync API keeps one running in this one)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    station = StreamServer(make_stream_mp3(folder))
    try:
        asyncio.run_coroutine_threadsafe(station.__aenter__(), loop).result(timeout=10)
        yield station
    finally:
        asyncio.run_coroutine_threadsafe(station.__aexit__(None, None, None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


class Api:
    """The daemon's own account, to compare the page with."""

    def __init__(self, url: str, password: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=10)
        login = self.client.post(
            "api/v1/auth/login", json={"username": Role.RADIO.value, "password": password}
        )
        self.client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_: object) -> None:
        self.client.close()

    def get(self, path: str) -> Any:
        answer = self.client.get(path)
        answer.raise_for_status()
        return answer.json()

    def upload(self, file: Path, title: str) -> dict[str, Any]:
        answer = self.client.post(
            "api/v1/media",
            params={"filename": file.name, "title": title},
            content=file.read_bytes(),
            headers={"Content-Type": "audio/mpeg"},
            timeout=60,
        )
        answer.raise_for_status()
        item: dict[str, Any] = answer.json()
        return item

    def titled(self, title: str) -> dict[str, Any]:
        (found,) = [b for b in self.get("api/v1/broadcasts") if b["title"] == title]
        return dict(found)


def card(page: Page, title: str) -> Locator:
    return page.locator("#bc-list .broadcast").filter(
        has=page.get_by_role("button", name=title, exact=True)
    )


def fill_speech(page: Page, title: str, text: str) -> None:
    form = page.locator("#bc-form")
    form.get_by_label("Tên chương trình (không bắt buộc)").fill(title)
    form.get_by_label("Đọc văn bản").check()
    form.get_by_label("Văn bản máy sẽ đọc").fill(text)


def choose_village(page: Page, village: str) -> None:
    form = page.locator("#bc-form")
    form.get_by_label("Chọn thôn").check()
    form.get_by_role("checkbox", name=re.compile(rf"^{village} \(\d+ cụm loa\)$")).check()


def send(page: Page, button: str) -> Response:
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/broadcasts") and r.request.method == "POST"
    ) as answered:
        page.get_by_role("button", name=button, exact=True).click()
    return answered.value


def choose(page: Page, choice: str, word: str) -> Response:
    """One of the clash panel's buttons: the same programme is sent again with the choice."""
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/broadcasts") and r.request.method == "POST"
    ) as answered:
        page.locator("#bc-conflict").get_by_role("button", name=choice, exact=True).click()
    sent = answered.value.request.post_data_json
    assert sent is not None
    assert sent["on_conflict"] == word
    return answered.value


def posts(requests: list[tuple[str, str]]) -> int:
    """How many programmes the page has asked the daemon to create."""
    return sum(
        1
        for method, url in requests
        if method == "POST" and urlsplit(url).path == "/api/v1/broadcasts"
    )


def save_past_any_seed(page: Page, button: str) -> dict[str, Any]:
    """Sends the form; a clash with one of the demo's own programmes is aired anyway."""
    answer = send(page, button)
    if answer.status == 409:  # e.g. the demo's morning news at 06:00 on every speaker
        expect(page.locator("#bc-conflict")).to_be_visible()
        answer = choose(page, "Vẫn phát", "allow")
    assert answer.status == 201, answer.text()
    created: dict[str, Any] = answer.json()
    return created


def check_daily(page: Page, api: Api) -> dict[str, Any]:
    """A daily 06:00 programme: "hằng ngày lúc 06:00" in the list, 06:00 on the next five days."""
    fill_speech(page, DAILY, "Đài truyền thanh xã xin kính chào bà con. Sau đây là bản tin sáng.")
    # Heard first, as in the announcements section.
    page.locator("#bc-form").get_by_role("button", name="Nghe trước").click()
    heard = page.locator("#bc-heard")
    expect(heard).to_be_visible(timeout=PLAYED_MS)
    expect(heard.locator("#bc-heard-text")).to_contain_text("bản tin sáng")
    expect(heard.locator("#bc-heard-engine")).to_contain_text("(ngoại tuyến)")
    wait_until_playable(heard.locator("audio"))
    page.locator("#bc-form").get_by_label("Hằng ngày").check()
    expect(page.get_by_role("button", name="Lưu lịch phát")).to_be_visible()
    page.locator("#bc-form").get_by_label("Giờ phát", exact=True).fill("06:00")
    created = save_past_any_seed(page, "Lưu lịch phát")
    assert created["rrule"] == "FREQ=DAILY"
    assert created["start_at"].endswith("T06:00:00+07:00"), created
    expect(page.locator("#bc-form-status")).to_have_text(
        f"Đã lưu “{DAILY}” — phát lần đầu lúc {air_time(created['next_at'])}."
    )
    assert page.locator("#bc-conflict").is_hidden()
    # The form is ready for the next programme.
    expect(page.locator("#bc-form").get_by_label("Văn bản máy sẽ đọc")).to_have_value("")

    shown = card(page, DAILY)
    expect(shown.locator(".schedule")).to_have_text("hằng ngày lúc 06:00")
    expect(shown.locator(".kind")).to_have_text("đọc văn bản")
    expect(shown.locator(".badge.priority")).to_have_text("Thông thường")
    expect(shown.locator(".badge.state")).to_have_text("đang hoạt động")
    expect(shown.locator(".next")).to_have_text(air_time(created["next_at"]))

    shown.get_by_role("button", name=DAILY).click()
    detail = page.locator("#bc-detail")
    expect(detail).to_be_visible()
    expect(detail.locator("#bc-detail-title")).to_have_text(DAILY)
    expect(detail.locator("#bc-d-schedule")).to_have_text("hằng ngày lúc 06:00")
    expect(detail.locator("#bc-d-targets")).to_have_text("Tất cả các cụm loa")
    upcoming = api.get(f"api/v1/broadcasts/{created['id']}/next?count=5")
    days = [datetime.fromisoformat(moment) for moment in upcoming]
    assert [moment.strftime("%H:%M") for moment in days] == ["06:00"] * 5
    assert [(b.date() - a.date()).days for a, b in itertools.pairwise(days)] == [1] * 4
    expect(detail.locator("#bc-next li")).to_have_text([air_time(m) for m in upcoming])
    expect(detail.locator("#bc-runs-none")).to_have_text("Chưa phát lần nào.")
    detail.get_by_role("button", name="Đóng").click()
    expect(detail).to_be_hidden()
    # Back where the user was: the programme's own button.
    expect(shown.get_by_role("button", name=DAILY)).to_be_focused()
    return created


def check_refused(page: Page) -> None:
    """A time already past: the daemon's 422 next to the form, in plain Vietnamese."""
    fill_speech(page, FIRST, "Mời đại diện các hộ thôn Trung dự họp.")
    choose_village(page, "Thôn Trung")
    page.locator("#bc-form").get_by_label("Vào lúc").check()
    page.locator("#bc-form").get_by_label("Ngày và giờ phát").fill("2020-01-01T05:30")
    assert send(page, "Lưu lịch phát").status == 422
    expect(page.locator("#bc-form-error")).to_have_text(
        "Thời điểm bắt đầu đã qua: 05:30 01/01/2020"
    )
    # Nothing is lost: the user corrects the time and sends again.
    expect(page.locator("#bc-form").get_by_label("Văn bản máy sẽ đọc")).to_have_value(
        "Mời đại diện các hộ thôn Trung dự họp."
    )
    # A volume the box cannot read is refused, not sent as "the speaker's own volume".
    volume = page.locator("#bc-form").get_by_label(re.compile(f"^Âm lượng 0{EN_DASH}100"))
    volume.press_sequentially("1e")
    page.locator("#bc-form").get_by_role("button", name="Lưu lịch phát").click()
    expect(page.locator("#bc-form-error")).to_contain_text(
        "Âm lượng phải là số nguyên từ 0 đến 100."
    )
    expect(volume).to_be_focused()
    volume.fill("")


def check_clash(page: Page, api: Api) -> None:
    """Two programmes at the same time in the same village: the clash, then "Xếp sau"."""
    day = (datetime.now(VIETNAM) + timedelta(days=2)).date()
    at = f"{day.isoformat()}T14:10"
    # At night a normal item may be held back (quiet hours): the form says so before sending.
    form = page.locator("#bc-form")
    quiet = page.locator("#bc-quiet")
    form.get_by_label("Ngày và giờ phát").fill(f"{day.isoformat()}T22:30")
    expect(quiet).to_be_visible()
    expect(quiet).to_contain_text("có thể bị giữ lại")
    form.get_by_label("Mức độ").select_option(label="Khẩn cấp")
    expect(quiet).to_be_hidden()
    form.get_by_label("Mức độ").select_option(label="Thông thường")
    expect(quiet).to_be_visible()
    form.get_by_label("Ngày và giờ phát").fill(at)
    expect(quiet).to_be_hidden()
    first = save_past_any_seed(page, "Lưu lịch phát")
    assert first["start_at"] == f"{at}:00+07:00"
    expect(card(page, FIRST).locator(".schedule")).to_have_text(
        f"một lần, lúc 14:10, {WEEKDAYS[day.weekday()]} {day:%d/%m/%Y}"
    )

    fill_speech(page, SECOND, "Bà con thôn Trung đưa gia súc đi tiêm phòng tại nhà văn hóa.")
    choose_village(page, "Thôn Trung")
    page.locator("#bc-form").get_by_label("Vào lúc").check()
    page.locator("#bc-form").get_by_label("Ngày và giờ phát").fill(at)
    refused = send(page, "Lưu lịch phát")
    assert refused.status == 409
    said = refused.json()["detail"]
    (clash,) = [c for c in said["conflicts"] if c["id"] == first["id"]]
    panel = page.locator("#bc-conflict")
    expect(panel).to_be_visible()
    expect(panel.locator("#bc-conflict-message")).to_contain_text("Trùng giờ với")
    assert "overlaps" not in panel.locator("#bc-conflict-message").inner_text()  # no English
    ends = datetime.fromisoformat(clash["end"]).astimezone(VIETNAM)
    expect(panel.locator(f'#bc-conflict-list li[data-broadcast="{first["id"]}"]')).to_have_text(
        f"“{FIRST}”: 14:10{EN_DASH}{ends:%H:%M}, "
        f"{WEEKDAYS[day.weekday()]} {day:%d/%m/%Y} — cùng phát trên 4 cụm loa"
    )
    visible = [b.inner_text() for b in panel.get_by_role("button").all() if b.is_visible()]
    assert visible == ["Xếp sau", "Đưa lên trước", "Thay thế", "Vẫn phát", "Hủy"]
    expect(panel.get_by_role("button", name="Xếp sau")).to_be_focused()
    assert api.get("api/v1/broadcasts?status=active")[0]["title"] != SECOND  # nothing made

    queued = choose(page, "Xếp sau", "queue")
    assert queued.status == 201, queued.text()
    second = queued.json()
    # It starts once the first has ended (the daemon's estimate of its length).
    assert datetime.fromisoformat(second["start_at"]) >= datetime.fromisoformat(clash["end"])
    expect(panel).to_be_hidden()
    expect(page.locator("#bc-form-status")).to_have_text(
        f"Đã xếp “{SECOND}” sau chương trình bị trùng — phát lúc {air_time(second['next_at'])}."
    )
    # The panel's buttons are gone: the focus is on what happened, not lost to the page.
    expect(page.locator("#bc-form-status")).to_be_focused()
    expect(card(page, SECOND).locator(".next")).to_have_text(air_time(second["next_at"]))
    assert api.titled(SECOND)["start_at"] == second["start_at"]


def check_relay(page: Page, station: StreamServer) -> None:
    """A relayed stream for five minutes: a dead address is refused in plain words first."""
    form = page.locator("#bc-form")
    form.get_by_label("Tên chương trình (không bắt buộc)").fill(RELAY)
    form.get_by_label("Tiếp sóng", exact=True).check()
    form.get_by_label("Địa chỉ luồng phát").fill(station.url("/khong-co.mp3"))
    form.get_by_label("Tiếp sóng trong bao nhiêu phút").fill("5")
    form.get_by_label("Chọn cụm loa").check()
    form.get_by_role("checkbox", name="Cụm loa Thôn Đoài 1", exact=True).check()
    form.get_by_label("Vào lúc").check()
    day = (datetime.now(VIETNAM) + timedelta(days=3)).date()
    form.get_by_label("Ngày và giờ phát").fill(f"{day.isoformat()}T09:00")
    assert send(page, "Lưu lịch phát").status == 422
    expect(page.locator("#bc-form-error")).to_have_text(
        "Không mở được luồng tiếp sóng: máy chủ báo lỗi 404"
    )
    form.get_by_label("Địa chỉ luồng phát").fill(station.url("/live.mp3"))
    created = save_past_any_seed(page, "Lưu lịch phát")
    assert (created["kind"], created["duration_s"]) == ("url", 300)
    assert created["targets"]["speakers"] == ["loa-thon-doai-1"]
    shown = card(page, RELAY)
    expect(shown.locator(".kind")).to_have_text("tiếp sóng")
    shown.get_by_role("button", name=RELAY).click()
    detail = page.locator("#bc-detail")
    expect(detail.locator("#bc-d-content")).to_have_text(
        f"Tiếp sóng {station.url('/live.mp3')} trong 5 phút"
    )
    expect(detail.locator("#bc-d-targets")).to_have_text("Cụm loa Thôn Đoài 1")
    detail.get_by_role("button", name="Đóng").click()
    expect(detail).to_be_hidden()


def check_recording(page: Page, api: Api, scratch: Path) -> None:
    """A recording uploaded since the login is offered; the programme takes its title."""
    item = api.upload(make_tone(scratch / "chao-mung.mp3"), RECORDING)
    form = page.locator("#bc-form")
    form.get_by_label("Bản ghi có sẵn").check()
    form.get_by_label("Bản ghi trong thư viện").select_option(
        label=f"{RECORDING} ({minutes(item['duration_s'])})"
    )
    form.get_by_label("Tất cả các cụm loa").check()
    form.get_by_label("Vào lúc").check()
    day = (datetime.now(VIETNAM) + timedelta(days=4)).date()
    form.get_by_label("Ngày và giờ phát").fill(f"{day.isoformat()}T08:15")
    created = save_past_any_seed(page, "Lưu lịch phát")
    assert (created["kind"], created["media_id"], created["title"]) == (
        "media",
        item["id"],
        RECORDING,
    )
    shown = card(page, RECORDING)
    expect(shown.locator(".kind")).to_have_text("bản ghi")
    shown.get_by_role("button", name=RECORDING).click()
    detail = page.locator("#bc-detail")
    expect(detail.locator("#bc-d-content")).to_have_text(f"Bản ghi: {RECORDING}")
    detail.get_by_role("button", name="Đóng").click()
    expect(detail).to_be_hidden()


def check_report_enter(page: Page) -> None:
    """Enter in the report's date field downloads the report and keeps the page (and a draft)."""
    form = page.locator("#bc-form")
    form.get_by_label("Văn bản máy sẽ đọc").fill(DRAFT)
    page.evaluate("() => { window.stillTheSamePage = true; }")
    today = datetime.now(VIETNAM).date()
    # Chromium keeps Enter in a date field to itself; Firefox, and a browser that shows a
    # plain text field instead, submit the form: requestSubmit() is that implicit submission.
    page.get_by_label("Ngày", exact=True).press("Enter")
    with page.expect_download() as downloaded:
        page.locator("#bc-report-form").evaluate("(form) => form.requestSubmit()")
    assert downloaded.value.suggested_filename == f"bao-cao-phat-thanh-{today:%Y-%m-%d}.csv"
    assert page.evaluate("() => window.stillTheSamePage") is True  # no reload
    expect(form.get_by_label("Văn bản máy sẽ đọc")).to_have_value(DRAFT)
    form.get_by_label("Văn bản máy sẽ đọc").fill("")


def weekly_times(start: datetime, days: set[int], count: int) -> list[datetime]:
    """The first `count` air times from `start` on the weekdays `days` (Monday 0), at its time."""
    local = start.astimezone(VIETNAM)
    found: list[datetime] = []
    day = local
    while len(found) < count:
        if day.weekday() in days and day >= local:
            found.append(day)
        day += timedelta(days=1)
    return found


def check_weekly(page: Page, api: Api) -> None:
    """Mondays and Thursdays at 07:15, made in the form: its next times fall on those days."""
    form = page.locator("#bc-form")
    fill_speech(page, WEEKLY, "Bà con đội mũ bảo hiểm khi đi xe máy, không uống rượu khi lái xe.")
    choose_village(page, "Thôn Đoài")
    form.get_by_label("Hằng tuần").check()
    form.get_by_role("checkbox", name="Thứ Hai", exact=True).check()
    form.get_by_role("checkbox", name="Thứ Năm", exact=True).check()
    form.get_by_label("Giờ phát", exact=True).fill("07:15")
    created = save_past_any_seed(page, "Lưu lịch phát")
    assert created["rrule"] == "FREQ=WEEKLY;BYDAY=MO,TH"
    expected = weekly_times(datetime.fromisoformat(created["start_at"]), {0, 3}, 5)
    upcoming = api.get(f"api/v1/broadcasts/{created['id']}/next?count=5")
    assert [datetime.fromisoformat(moment) for moment in upcoming] == expected
    assert air_time(created["next_at"]) == air_time(expected[0].isoformat())

    shown = card(page, WEEKLY)
    expect(shown.locator(".schedule")).to_have_text("thứ Hai và thứ Năm hằng tuần lúc 07:15")
    expect(shown.locator(".next")).to_have_text(air_time(expected[0].isoformat()))
    shown.get_by_role("button", name=WEEKLY).click()
    detail = page.locator("#bc-detail")
    expect(detail.locator("#bc-next li")).to_have_text([air_time(m.isoformat()) for m in expected])
    for item in detail.locator("#bc-next li").all_inner_texts():
        assert re.match(r"^07:15, (thứ Hai|thứ Năm) \d\d/\d\d/\d{4}$", item), item
    detail.get_by_role("button", name="Đóng").click()
    expect(detail).to_be_hidden()


def check_order(page: Page) -> None:
    """The list opens on the programmes still to air, the next to air first, so a standing
    daily programme is not pushed off the first page by one-off ones made after it."""
    expect(page.locator("#bc-filter")).to_have_value("active")
    page.locator("#bc-filter").select_option(label="Tất cả")
    with page.expect_response(
        lambda r: (
            urlsplit(r.url).path == "/api/v1/broadcasts"
            and parse_qs(urlsplit(r.url).query) == {"status": ["active"]}
        )
    ) as listed:
        page.locator("#bc-filter").select_option(label="Đang hoạt động")
    body: list[dict[str, Any]] = listed.value.json()
    assert {item["status"] for item in body} == {"active"}
    # Soonest first; none left last; equal times as the daemon lists them (newest first).
    ordered = sorted(
        body,
        key=lambda b: (b["next_at"] is None, datetime.fromisoformat(b["next_at"] or "2000-01-01")),
    )
    ids = [item["id"] for item in ordered[:SHOWN_AT_ONCE]]
    assert DAILY in [item["title"] for item in ordered[:SHOWN_AT_ONCE]]
    page.wait_for_function(
        """(ids) => JSON.stringify([...document.querySelectorAll('#bc-list .broadcast')]
             .map((card) => card.dataset.broadcast)) === JSON.stringify(ids)""",
        arg=ids,
    )
    expect(page.locator("#bc-list .broadcast .badge.state")).to_have_text(
        ["đang hoạt động"] * len(ids)
    )
    # A card moved by a refresh keeps the focus it had (placeInOrder gives it back).
    kept = page.evaluate(
        """() => {
          const list = document.getElementById("bc-list");
          const cards = [...list.children];
          const button = cards[0].querySelector("button");
          button.focus();
          placeInOrder(list, [...cards].reverse());
          const focused = document.activeElement === button && list.lastElementChild === cards[0];
          placeInOrder(list, cards);
          return focused;
        }"""
    )
    assert kept is True


@contextlib.contextmanager
def answering(page: Page, *, accept: bool) -> Iterator[list[str]]:
    """Answers the confirm() the block's action raises (yes or no); the list gets its text."""
    asked: list[str] = []

    def handle(dialog: Dialog) -> None:
        asked.append(dialog.message)
        if accept:
            dialog.accept()
        else:
            dialog.dismiss()

    page.once("dialog", handle)
    with page.expect_event("dialog"):
        yield asked


def check_asked_first(page: Page, requests: list[tuple[str, str]]) -> None:
    """Sending now to every speaker is asked first (the form's defaults: one Enter away)."""
    form = page.locator("#bc-form")
    fill_speech(page, NOW, SPEECH)
    form.get_by_label("Tất cả các cụm loa").check()
    form.get_by_label("Mức độ").select_option(label="Thông thường")
    form.get_by_label("Phát ngay").check()
    before = posts(requests)
    with answering(page, accept=False) as asked:
        form.get_by_label(re.compile("^Được phát muộn tối đa")).press("Enter")
    expect(page.locator("#bc-form-status")).to_have_text("Chưa gửi gì đến loa.")
    assert asked == [
        f"Phát “{NOW}” ngay bây giờ trên tất cả 12 cụm loa (3 thôn)?\nMức độ: thông thường."
    ]
    assert posts(requests) == before  # dismissed: nothing sent
    expect(form.get_by_label("Văn bản máy sẽ đọc")).to_have_value(SPEECH)


def check_now(page: Page, api: Api, requests: list[tuple[str, str]]) -> str:
    """Sent now to one village: the detail follows every speaker, live, to the end."""
    check_asked_first(page, requests)
    choose_village(page, "Thôn Đông")
    # An emergency airs at any hour: quiet hours (21:00-05:30) would hold a normal one back.
    page.locator("#bc-form").get_by_label("Mức độ").select_option(label="Khẩn cấp")
    expect(page.locator("#bc-urgent")).to_be_visible()
    expect(page.locator("#bc-quiet")).to_be_hidden()
    page.locator("#bc-form").get_by_label("Phát ngay").check()
    # An emergency is asked first too, naming where and how urgent; "no" sends nothing.
    before = posts(requests)
    with answering(page, accept=False) as asked:
        page.get_by_role("button", name="Phát ngay", exact=True).click()
    expect(page.locator("#bc-form-status")).to_have_text("Chưa gửi gì đến loa.")
    assert posts(requests) == before
    with answering(page, accept=True) as accepted:
        answer = send(page, "Phát ngay")
    assert answer.status == 201, answer.text()
    asked += accepted
    question = (
        f"Phát TIN KHẨN CẤP “{NOW}” ngay bây giờ trên 4 cụm loa của Thôn Đông?\n"
        "Mức độ: khẩn cấp.\n"
        "Tin khẩn cấp ngắt mọi chương trình đang phát và phát cả trong giờ yên tĩnh."
    )
    assert asked == [question, question]
    assert posts(requests) == before + 1
    # Said neutrally: whether it airs is what the detail shows, speaker by speaker.
    expect(page.locator("#bc-form-status")).to_have_text(f"Đã lên lịch “{NOW}” để phát ngay.")
    broadcast_id = str(answer.json()["id"])

    detail = page.locator("#bc-detail")
    expect(detail).to_be_visible()
    expect(detail.locator("#bc-detail-title")).to_have_text(NOW)
    expect(detail.locator("#bc-detail-priority")).to_have_text("Khẩn cấp")
    assert "emergency" in (detail.get_attribute("data-level") or "")
    expect(detail.locator("#bc-d-targets")).to_have_text("Thôn Đông")
    run = detail.locator("#bc-runs .run")
    expect(run.locator(".run-summary")).to_have_text("4/4 cụm loa đã phát xong.", timeout=PLAYED_MS)
    expect(run).to_have_count(1)
    run.get_by_text("Từng cụm loa").click()
    rows = run.locator("tbody tr")
    expect(rows.locator("td:nth-child(1)")).to_have_text(DONG)
    expect(rows.locator("td:nth-child(2)")).to_have_text(["đã phát xong"] * 4)
    expect(detail.locator("#bc-next-none")).to_be_visible()
    expect(detail.locator("#bc-detail-state")).to_have_text("đã xong")

    # Opened once; every change after that came through the event stream.
    path = f"/api/v1/broadcasts/{broadcast_id}"
    gets = [url for method, url in requests if method == "GET" and urlsplit(url).path == path]
    assert len(gets) == 1, gets
    assert [url for _, url in requests if urlsplit(url).path == f"{path}/events"]
    events = int(detail.locator("#bc-live").get_attribute("data-events") or 0)
    assert events >= 2, events  # the state at opening, then at least the speakers' progress
    expect(detail.locator("#bc-live")).to_contain_text("Đang theo dõi trực tiếp")
    final = api.get(f"api/v1/broadcasts/{broadcast_id}")["executions"][0]
    assert final["summary"] == {"finished": 4}

    # Closing the detail ends its stream.
    with page.expect_event(
        "requestfailed", predicate=lambda r: urlsplit(r.url).path == f"{path}/events"
    ):
        detail.get_by_role("button", name="Đóng").click()
    expect(detail).to_be_hidden()
    return broadcast_id


def check_cancel(page: Page) -> None:
    """Hủy asks first: "no" keeps the programme, "yes" cancels it."""
    asked: list[str] = []

    def answer(choice: bool) -> Any:
        def handle(dialog: Dialog) -> None:
            asked.append(dialog.message)
            if choice:
                dialog.accept()
            else:
                dialog.dismiss()

        return handle

    card(page, DAILY).get_by_role("button", name=DAILY).click()
    detail = page.locator("#bc-detail")
    button = detail.get_by_role("button", name="Hủy chương trình này")
    page.once("dialog", answer(False))
    button.click()
    expect(detail.locator("#bc-detail-state")).to_have_text("đang hoạt động")
    page.once("dialog", answer(True))
    with page.expect_response(lambda r: r.url.endswith("/cancel")) as cancelled:
        button.click()
    assert cancelled.value.status == 200
    expect(detail.locator("#bc-detail-state")).to_have_text("đã hủy")
    expect(detail.locator("#bc-detail-status")).to_have_text(f"Đã hủy “{DAILY}”.")
    expect(button).to_be_hidden()
    expect(detail.locator("#bc-detail-status")).to_be_focused()  # not lost with the button
    expect(detail.locator("#bc-next-none")).to_be_visible()
    question = f"Hủy chương trình “{DAILY}”?\nCác lần phát sau sẽ không phát nữa."
    assert asked == [question, question]
    page.keyboard.press("Escape")
    expect(detail).to_be_hidden()
    # The list shows what is still to air: a cancelled programme leaves it.
    expect(card(page, DAILY)).to_have_count(0)
    expect(card(page, FIRST)).to_have_count(1)
    page.locator("#bc-filter").select_option(label="Tất cả")
    expect(card(page, DAILY).locator(".badge.state")).to_have_text("đã hủy")
    expect(card(page, DAILY).locator(".next")).to_have_text("không còn lần nào")


def check_words(page: Page) -> None:
    """The page's own event-stream parser and schedule wording, on what the demo does not send."""
    events = page.evaluate(
        r"""() => {
          const parser = new EventParser();
          const chunks = [": keepalive\r\n\r", "\nevent: progress\r\ndata: {\"a\":", "1}\r",
                          "\n\r\ndata: one\ndata:two\n\nevent: other\ndata\n\n"];
          return chunks.flatMap((chunk) => parser.push(chunk));
        }"""
    )
    assert events == [
        {"type": "progress", "data": '{"a":1}'},
        {"type": "message", "data": "one\ntwo"},
        {"type": "other", "data": ""},
    ]
    start = "2026-11-30T05:30:00+07:00"  # a Monday
    words = page.evaluate(
        """(start) => [
          "FREQ=WEEKLY;BYDAY=MO,WE,FR", "FREQ=WEEKLY", "FREQ=DAILY;INTERVAL=2",
          "FREQ=DAILY;BYHOUR=5,17;BYMINUTE=30", "FREQ=MONTHLY;BYMONTHDAY=1,15",
          "FREQ=YEARLY;BYMONTH=9;BYMONTHDAY=2", "FREQ=DAILY;COUNT=3",
          "FREQ=WEEKLY;BYDAY=SA;UNTIL=20261231T000000Z", "FREQ=HOURLY", "FREQ=DAILY;BYMONTH=1",
          "FREQ=DAILY;UNTIL=20261230T170000Z", "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO",
        ].map((rule) => ruleText(rule, start))""",
        start,
    )
    assert words == [
        "thứ Hai, thứ Tư và thứ Sáu hằng tuần lúc 05:30",
        "thứ Hai hằng tuần lúc 05:30",
        "2 ngày một lần, lúc 05:30",
        "hằng ngày lúc 05:30 và 17:30",
        "ngày 1 và 15 hằng tháng lúc 05:30",
        "ngày 2/9 hằng năm lúc 05:30",
        "hằng ngày lúc 05:30 (3 lần)",
        "thứ Bảy hằng tuần lúc 05:30 (đến ngày 31/12/2026)",
        "lặp lại theo lịch riêng",  # never the raw rule: leaders read this
        "lặp lại theo lịch riêng",
        "hằng ngày lúc 05:30 (đến ngày 31/12/2026)",  # 17:00 UTC is midnight in Vietnam
        "thứ Hai, 2 tuần một lần, lúc 05:30",
    ]
    lunar = page.evaluate(
        """(start) => [null, 1, 12].map((month) =>
             scheduleText({start_at: start, rrule: null, lunar: {day: 1, month}}))""",
        start,
    )
    assert lunar == [
        "ngày 1 âm lịch hằng tháng, lúc 05:30",
        "ngày 1 tháng Giêng âm lịch, lúc 05:30",
        "ngày 1 tháng Chạp âm lịch, lúc 05:30",
    ]
    months = page.locator("#bc-lunar-month option").all_inner_texts()
    assert months[1:] == [f"Tháng {name}" for name in LUNAR_MONTHS], months
    # The daemon's English goes; its Vietnamese in brackets (a time, a count) stays.
    plain = page.evaluate(
        """() => [
          "Thời điểm bắt đầu đã qua (start_at is in the past): 05:30 01/01/2020",
          "Giờ yên tĩnh: không phát tin thường trước 05:30 và sau 21:00 (22:10 28/11/2026)",
          "Không xử lý được âm thanh (ffmpeg: Invalid data (code 1))",
          "Chưa gửi được lệnh tới loa (Hệ thống loa chưa sẵn sàng (not ready))",
        ].map(vietnameseOnly)"""
    )
    assert plain == [
        "Thời điểm bắt đầu đã qua: 05:30 01/01/2020",
        "Giờ yên tĩnh: không phát tin thường trước 05:30 và sau 21:00 (22:10 28/11/2026)",
        "Không xử lý được âm thanh",
        "Chưa gửi được lệnh tới loa (Hệ thống loa chưa sẵn sàng)",
    ]
    # A stream the daemon ends after a while (its 10-minute LIFETIME) is opened again at
    # once, with nothing said; a refusal (403) is not asked again. Every look at the page's
    # clock is made to seem a long while after the one before.
    feeds = page.evaluate(
        """async () => {
          const [realFetch, realNow] = [window.fetch, Date.now];
          let now = realNow();
          const seen = {steady: [], refused: [], opened: 0};
          try {
            Date.now = () => (now += LIVE_STEADY_MS);
            window.fetch = async () => new Response("event: progress\\ndata: {}\\n\\n");
            await new Promise((resolve) => {
              const feed = new LiveFeed("/steady", {event() {}, state(state) {
                seen.steady.push(state);
                if (seen.steady.length === 3) {
                  feed.stop();
                  resolve();
                }
              }});
              feed.start();
            });
            window.fetch = async () => {
              seen.opened += 1;
              return new Response("", {status: 403});
            };
            const refused = new LiveFeed("/refused", {event() {}, state(state) {
              seen.refused.push(state);
            }});
            await refused.run(new AbortController().signal);
          } finally {
            [window.fetch, Date.now] = [realFetch, realNow];
          }
          return seen;
        }"""
    )
    assert feeds == {"steady": ["live"] * 3, "refused": ["forbidden"], "opened": 1}
    # A relay's speakers answer its end with finished/"stopped": the end, not a cut.
    relay = page.evaluate(
        """() => {
          const run = {stopped_at: "2026-11-30T06:30:00+07:00"};
          const at = (time) => ({state: "finished", error: "stopped",
                                 finished_at: `2026-11-30T${time}+07:00`});
          return [
            speakerWords(at("06:30:02"), run, {kind: "url"}),
            speakerWords(at("06:10:00"), run, {kind: "url"}),
            speakerWords(at("06:30:02"), run, {kind: "text"}),
          ];
        }"""
    )
    assert relay == [
        "đã phát xong (dừng đúng giờ)",
        "đã dừng giữa chừng",
        "đã dừng giữa chừng",
    ]


def check_reconnect(page: Page) -> None:
    """A stream that keeps dropping is opened again, less and less often, until closed.

    The daemon's stream is replaced by one that sends the current state and ends at once,
    as a proxy cutting idle connections would.
    """
    opened: list[float] = []

    def cut(route: Route) -> None:
        opened.append(time.monotonic())
        answer = route.fetch(url=route.request.url.removesuffix("/events"))
        route.fulfill(
            headers={"Content-Type": "text/event-stream"},
            body=f"event: progress\ndata: {answer.text()}\n\n",
        )

    page.route(re.compile(r"/api/v1/broadcasts/\w+/events$"), cut)
    card(page, FIRST).get_by_role("button", name=FIRST).click()
    detail = page.locator("#bc-detail")
    expect(detail.locator("#bc-live")).to_have_text(
        "Mất kết nối theo dõi trực tiếp — đang thử lại…"
    )
    page.wait_for_function("() => Number(document.querySelector('#bc-live').dataset.events) >= 4")
    assert len(opened) >= 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(opened)]
    # Backoff 1 s, 2 s, 4 s, each ±25 %: never hammering the daemon.
    assert gaps[0] >= 0.75, gaps
    assert gaps[2] >= 3.0, gaps
    detail.get_by_role("button", name="Đóng").click()
    expect(detail).to_be_hidden()
    page.unroute_all()


def overflow(page: Page, selector: str) -> dict[str, float]:
    measured: dict[str, float] = page.eval_on_selector(
        selector,
        "s => ({page: document.documentElement.scrollWidth, own: s.scrollWidth - s.clientWidth,"
        " right: Math.max(...[...s.querySelectorAll('*')].filter(e => e.offsetParent !== null)"
        ".map(e => e.getBoundingClientRect().right))})",
    )
    return measured


def check_phone(page: Page, folder: Path) -> None:
    """At 360 px the form, its widest parts shown, the list and a detail fit the screen."""
    page.set_viewport_size(PHONE)
    form = page.locator("#bc-form")
    form.get_by_label("Chọn cụm loa").check()
    form.get_by_label("Hằng tuần").check()
    form.get_by_label("Tiếp sóng", exact=True).check()
    page.locator("#broadcasts").scroll_into_view_if_needed()
    widths = overflow(page, "#broadcasts")
    assert widths["page"] <= PHONE["width"], widths
    assert widths["own"] <= 0, widths
    assert widths["right"] <= PHONE["width"], widths
    page.locator("#broadcasts").screenshot(path=folder / "web-broadcasts-phone-360.png")

    card(page, NOW).get_by_role("button", name=NOW).click()
    detail = page.locator("#bc-detail")
    expect(detail.locator(".run-summary")).to_have_text("4/4 cụm loa đã phát xong.")
    detail.get_by_text("Từng cụm loa").click()
    widths = overflow(page, "#bc-detail")
    assert widths["own"] <= 0, widths
    assert widths["right"] <= PHONE["width"], widths
    page.screenshot(path=folder / "web-broadcast-detail-phone-360x800.png")
    page.keyboard.press("Escape")
    expect(detail).to_be_hidden()
    page.set_viewport_size({"width": 1366, "height": 768})


def check_leader(chromium: Browser, url: str, password: str, folder: Path) -> None:
    """Leaders read the programmes and take the report; they create and cancel nothing."""
    context = chromium.new_context(viewport={"width": 1366, "height": 900}, timezone_id=PC_ZONE)
    page = context.new_page()
    trouble = watch_for_trouble(page)
    log_in_as(page, url, Role.LEADER, password)
    section = page.locator("#broadcasts")
    expect(card(page, FIRST).locator(".badge.state")).to_have_text("đang hoạt động")
    page.locator("#bc-filter").select_option(label="Tất cả")
    expect(card(page, NOW).locator(".badge.priority")).to_have_text("Khẩn cấp")
    expect(card(page, DAILY).locator(".schedule")).to_have_text("hằng ngày lúc 06:00")
    assert section.locator("#bc-create").is_hidden()
    assert section.locator("#bc-form").is_hidden()

    card(page, FIRST).get_by_role("button", name=FIRST).click()
    detail = page.locator("#bc-detail")
    expect(detail.locator("#bc-detail-state")).to_have_text("đang hoạt động")
    expect(detail.locator("#bc-next li")).to_have_count(1)
    assert detail.get_by_role("button", name="Hủy chương trình này").is_hidden()
    detail.get_by_role("button", name="Đóng").click()

    today = datetime.now(VIETNAM).date()
    expect(page.get_by_label("Ngày", exact=True)).to_have_value(today.isoformat())
    with page.expect_download() as downloaded:
        page.get_by_role("button", name="Tải CSV (Excel)").click()
    name = f"bao-cao-phat-thanh-{today:%Y-%m-%d}.csv"
    assert downloaded.value.suggested_filename == name
    saved = downloaded.value.path()
    report = Path(saved).read_text(encoding="utf-8-sig")
    assert report.startswith("Thời gian,Nội dung"), report[:200]
    assert NOW in report, report
    expect(page.locator("#bc-report-status")).to_have_text(f"Đã tải xuống tệp {name}.")

    page.get_by_label("Khoảng thời gian").select_option("month")
    with page.expect_download() as downloaded:
        page.get_by_role("button", name="Tải JSON").click()
    assert downloaded.value.suggested_filename == f"bao-cao-phat-thanh-{today:%Y-%m}.json"
    assert NOW in Path(downloaded.value.path()).read_text(encoding="utf-8")

    # The printable page: a tab of its own; the login rides in the cookie, not in the address.
    with context.expect_page() as opened:
        page.get_by_role("link", name="Mở bản in").click()
    printable = opened.value
    expect(printable.locator("h1")).to_have_text(f"Báo cáo phát thanh tháng {today:%m/%Y}")
    expect(printable.locator("table")).to_contain_text(NOW)
    query = parse_qs(urlsplit(printable.url).query)
    assert query == {"day": [today.isoformat()], "span": ["month"], "format": ["html"]}
    printable.close()
    section.screenshot(path=folder / "web-broadcasts-leader-1366.png")
    assert trouble == []
    context.close()


def radio_console(
    chromium: Browser, url: str, password: str, api: Api, folder: Path, scratch: Path
) -> None:
    """The radio station's whole round: programmes, a clash, a live broadcast, cancel, phone."""
    context = chromium.new_context(viewport={"width": 1366, "height": 900}, timezone_id=PC_ZONE)
    page = context.new_page()
    trouble = watch_for_trouble(page)
    requests: list[tuple[str, str]] = []
    page.on("request", lambda r: requests.append((r.method, r.url)))
    log_in_as(page, url, Role.RADIO, password)
    expect(page.locator("#broadcasts")).to_be_visible()
    expect(page.locator('#jump a[href="#broadcasts"]')).to_be_visible()
    expect(page.locator("#bc-create")).to_be_visible()

    check_words(page)
    check_daily(page, api)
    check_report_enter(page)
    check_refused(page)
    check_clash(page, api)
    with radio_station(scratch) as station:
        check_relay(page, station)
    check_recording(page, api, scratch)
    check_weekly(page, api)
    check_order(page)
    page.locator("#broadcasts").screenshot(path=folder / "web-broadcasts-1366.png")
    check_now(page, api, requests)
    check_cancel(page)
    check_reconnect(page)
    check_phone(page, folder)
    assert trouble == []
    context.close()


def test_broadcasts_schedule_clash_live_progress_report_roles_and_a_phone(
    browser: Browser,  # noqa: F811 -- pytest hands in the fixture imported above
    artefacts: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    with demo() as (process, output, _port):
        url = output.wait_for(OPEN, timeout=30).group(1)
        _admin, password = output.wait_for(LOGIN, timeout=5).groups()
        (temp_dir,) = set(TEMP_DIR.findall(output.seen))
        add_users(
            Path(temp_dir, "data"),
            password,
            [Role.RADIO, Role.LEADER, Role.TECHNICIAN, Role.DISTRICT],
        )
        with Api(url, password) as api:
            radio_console(browser, url, password, api, artefacts, tmp_path)
        check_leader(browser, url, password, artefacts)
        for role in (Role.TECHNICIAN, Role.DISTRICT):
            hidden = ("#broadcasts", '#jump a[href="#broadcasts"]')
            check_section_hidden(browser, url, password, role, hidden, "broadcasts|reports")
        print(f"screenshots in {artefacts}")  # noqa: T201 -- for whoever runs -s

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
