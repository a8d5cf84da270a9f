"""The console's announcements section (Thông báo) in a real browser: preview, uploads, roles.

`loacam demo` runs as a process and Debian's Chromium runs headless through Playwright, with the
fixtures of test_web_viewer and the accounts and trouble watch of test_web_speakers. The tests
have no internet (tests/conftest.py), so gTTS fails and the daemon falls back to espeak-ng: the
page must say so. Screenshots go to `<pytest basetemp>/artefacts/`.
"""

from __future__ import annotations

import math
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Dialog, Locator, Page, Request, ViewportSize, expect

from daemon.auth import Role
from tests.test_demo import LOGIN, OPEN, TEMP_DIR, demo
from tests.test_web_speakers import (
    PC_ZONE,
    add_users,
    check_section_hidden,
    log_in_as,
    vietnam_time,
    watch_for_trouble,
)
from tests.test_web_viewer import artefacts, browser  # noqa: F401 -- pytest fixtures

ANNOUNCEMENT = (
    "Kính gửi bà con: UBND xã mời đại diện các hộ dự họp lúc 7h30 ngày 15/3/2025 "
    "tại nhà văn hóa thôn Đông."
)
TITLE = "Lịch tiêm phòng cho gia súc"
PREVIEW_S = 90_000  # espeak-ng, then ffmpeg's two loudness passes, on a two-core machine
PHONE: ViewportSize = {"width": 360, "height": 800}


def minutes(seconds: float) -> str:
    """What the page shows for a duration: m:ss in whole seconds, as the audio players count."""
    total = math.floor(seconds)
    return f"{total // 60}:{total % 60:02d}"


def make_tone(path: Path) -> Path:
    """Three seconds of 440 Hz as a real MP3."""
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=f=440:d=3", str(path)],
        check=True,
        timeout=60,
    )
    return path


def library(url: str, role: Role, password: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=url, timeout=10) as client:
        login = client.post(
            "api/v1/auth/login", json={"username": role.value, "password": password}
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        listed: list[dict[str, Any]] = client.get("api/v1/media", headers=headers).json()
    return listed


def wait_until_playable(audio: Locator, timeout_ms: float = 20_000) -> None:
    """The browser has loaded the audio far enough to know how long it is."""
    audio.page.wait_for_function(
        "audio => Number.isFinite(audio.duration) && audio.duration > 1",
        arg=audio.element_handle(),
        timeout=timeout_ms,
    )


def check_compose(page: Page) -> None:
    """Voices by their Vietnamese names, the character count, and a text that is too long."""
    voices = page.get_by_label("Giọng đọc").locator("option")
    expect(voices).to_have_text(
        ["Giọng mặc định của hệ thống", "Giọng Bắc", "Giọng Trung", "Giọng Nam"]
    )
    text = page.get_by_label("Nội dung thông báo")
    count = page.locator("#compose-count")
    expect(count).to_have_text("0/5000 ký tự")
    text.fill("a" * 5003)
    expect(count).to_have_text("5003/5000 ký tự — dài quá, hãy bớt 3 ký tự")
    asked: list[str] = []

    def note(request: Request) -> None:
        asked.append(request.url)

    page.on("request", note)
    page.get_by_role("button", name="Nghe thử").click()
    expect(page.locator("#compose-error")).to_have_text(
        "Văn bản dài quá 5000 ký tự: hãy bớt 3 ký tự."
    )
    page.remove_listener("request", note)
    # Refused in the page itself: the daemon is not asked.
    assert not [asked_url for asked_url in asked if "/tts/preview" in asked_url], asked
    text.fill(ANNOUNCEMENT)
    expect(count).to_have_text(f"{len(ANNOUNCEMENT)}/5000 ký tự")


def check_preview(page: Page) -> dict[str, Any]:
    """Nghe thử: a wait the user can see, how the text will be read, by whom, and the audio."""
    button = page.get_by_role("button", name="Nghe thử")
    with page.expect_response("**/api/v1/tts/preview", timeout=PREVIEW_S) as answered:
        button.click()
        expect(button).to_be_disabled()
        expect(page.locator("#compose-status")).to_have_text("Đang tạo giọng đọc…")
    assert answered.value.status == 200, answered.value.text()
    spoken: dict[str, Any] = answered.value.json()

    preview = page.locator("#preview")
    expect(preview).to_be_visible()
    expect(button).to_be_enabled()
    assert page.locator("#compose-status").is_hidden()
    assert page.locator("#compose-error").is_hidden()
    expect(preview.locator(".preview-label")).to_have_text("Máy sẽ đọc:")
    said = preview.locator("#preview-text").inner_text()
    assert said == spoken["normalized_text"]
    assert "ủy ban nhân dân" in said.lower(), said
    assert "bảy giờ ba mươi" in said.lower(), said
    assert "UBND" not in said
    assert "15/3/2025" not in said
    # No internet here: Google failed, espeak-ng spoke, and the page says so in plain words.
    assert [fallback["engine"] for fallback in spoken["fallbacks"]] == ["gtts"]
    expect(preview.locator("#preview-engine")).to_have_text("espeak-ng (ngoại tuyến)")
    expect(preview.locator("#preview-fallback-text")).to_contain_text(
        "Không dùng được Google, đã chuyển sang giọng đọc ngoại tuyến (espeak-ng)."
    )
    expect(preview.locator("#preview-duration")).to_have_text(minutes(spoken["duration_s"]))
    assert spoken["duration_s"] > 1

    audio = preview.locator("audio")
    assert audio.get_attribute("controls") is not None
    wait_until_playable(audio)
    return spoken


def upload(page: Page, file: Path, title: str) -> Any:
    page.get_by_label("Tệp âm thanh").set_input_files(file)
    page.get_by_label("Tiêu đề").fill(title)
    with page.expect_response(
        lambda r: "/api/v1/media?" in r.url and r.request.method == "POST", timeout=60_000
    ) as answered:
        page.get_by_role("button", name="Tải lên").click()
    return answered.value


def check_upload(page: Page, folder: Path, url: str, password: str) -> dict[str, Any]:
    """A real MP3 goes in and is listed with its title, length, uploader and time."""
    answer = upload(page, make_tone(folder / "tiem-phong.mp3"), TITLE)
    assert answer.status == 201
    # The daemon's own account of it (DevTools keeps no body of an upload's answer to read).
    (item,) = library(url, Role.RADIO, password)
    assert item["title"] == TITLE
    assert item["duration_s"] >= 3
    expect(page.locator("#upload-status")).to_have_text(
        f"Đã thêm “{TITLE}” ({minutes(item['duration_s'])}) vào thư viện."
    )
    assert page.locator("#upload-error").is_hidden()
    # The form is ready for the next file.
    assert page.get_by_label("Tiêu đề").input_value() == ""

    record = page.locator(f'#library-list .record[data-media="{item["id"]}"]')
    expect(record.locator(".record-title")).to_have_text(TITLE)
    expect(record.locator(".record-duration")).to_have_text(minutes(item["duration_s"]))
    # Vietnam's time, although the PC is set to Berlin's.
    expect(record.locator(".record-meta")).to_have_text(
        f"Người tải lên: radio — lúc {vietnam_time(item['created_at'])}"
    )
    audio = record.locator("audio")
    assert audio.get_attribute("preload") == "none"
    assert audio.get_attribute("controls") is not None
    # The player's link is signed: it plays without a login.
    src = audio.get_attribute("src") or ""
    assert src.startswith("/media/"), src
    heard = httpx.get(url.rstrip("/") + src, timeout=10)
    assert heard.status_code == 200
    assert heard.headers["content-type"] == "audio/mpeg"
    expect(record.get_by_role("button", name="Xóa")).to_be_visible()
    return item


def check_refused_upload(page: Page, folder: Path) -> None:
    """A text file named .mp3 is refused with the daemon's reason, in Vietnamese only."""
    fake = folder / "khong-phai-am-thanh.mp3"
    fake.write_text("Đây là văn bản, không phải âm thanh.\n" * 40, encoding="utf-8")
    answer = upload(page, fake, "Tệp hỏng")
    assert answer.status == 422
    error = page.locator("#upload-error")
    expect(error).to_have_text("Tệp không phải âm thanh đọc được hoặc đã hỏng")
    assert page.locator("#upload-status").is_hidden()
    expect(page.locator("#library-list .record")).to_have_count(1)  # nothing was kept


def check_phone(page: Page, folder: Path) -> None:
    """At 360 px everything fits: no sideways scrolling, the players as wide as the screen."""
    page.set_viewport_size(PHONE)
    page.locator("#announce").scroll_into_view_if_needed()
    widths = page.evaluate(
        "() => ({page: document.documentElement.scrollWidth,"
        " right: Math.max(...[...document.querySelectorAll('#announce *')]"
        ".map(e => e.getBoundingClientRect().right))})"
    )
    assert widths["page"] <= PHONE["width"], widths
    assert widths["right"] <= PHONE["width"], widths
    page.screenshot(path=folder / "web-announce-phone-360x800.png", full_page=True)
    page.set_viewport_size({"width": 1366, "height": 768})


def check_delete(page: Page, item: dict[str, Any]) -> None:
    """Xóa asks first: "no" keeps the recording, "yes" removes it."""
    asked: list[str] = []

    def answer(choice: bool) -> Any:
        def handle(dialog: Dialog) -> None:
            asked.append(f"{dialog.type}: {dialog.message}")
            if choice:
                dialog.accept()
            else:
                dialog.dismiss()

        return handle

    record = page.locator(f'#library-list .record[data-media="{item["id"]}"]')
    page.once("dialog", answer(False))
    record.get_by_role("button", name="Xóa").click()
    expect(record).to_be_visible()
    assert page.locator("#library-status").is_hidden()

    page.once("dialog", answer(True))
    with page.expect_response(lambda r: r.request.method == "DELETE") as deleted:
        record.get_by_role("button", name="Xóa").click()
    assert deleted.value.status == 204
    expect(record).to_have_count(0)
    expect(page.locator("#library-status")).to_have_text(f"Đã xóa “{TITLE}”.")
    expect(page.locator("#library-empty")).to_be_visible()
    question = f"confirm: Xóa bản ghi “{TITLE}” khỏi thư viện?\nKhông thể hoàn tác."
    assert asked == [question, question]


def check_leader(chromium: Browser, url: str, password: str) -> None:
    """Leaders listen to the library: no writing, no preview, no upload, no delete."""
    context = chromium.new_context(timezone_id=PC_ZONE)
    page = context.new_page()
    trouble = watch_for_trouble(page)
    with page.expect_response("**/api/v1/media") as listed:
        log_in_as(page, url, Role.LEADER, password)
    assert listed.value.ok
    section = page.locator("#announce")
    expect(section.locator("#library-list .record-title")).to_have_text([TITLE])
    expect(section.locator("#library-list audio")).to_have_count(1)
    assert section.locator("#compose").is_hidden()
    assert section.locator("#upload").is_hidden()
    visible = [
        button.inner_text() for button in section.locator("button").all() if button.is_visible()
    ]
    assert visible == [], visible
    assert section.locator("textarea, input, select").evaluate_all(
        "fields => fields.every(f => f.offsetParent === null)"
    )
    assert trouble == []
    context.close()


def test_announcements_preview_upload_library_roles_and_a_phone(
    browser: Browser,  # noqa: F811 -- pytest hands in the fixture imported above
    artefacts: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    with demo() as (process, output, _port):
        url = output.wait_for(OPEN, timeout=30).group(1)
        _admin, password = output.wait_for(LOGIN, timeout=5).groups()
        (temp_dir,) = set(TEMP_DIR.findall(output.seen))
        roles = [Role.RADIO, Role.LEADER, Role.TECHNICIAN, Role.DISTRICT]
        add_users(Path(temp_dir, "data"), password, roles)

        context = browser.new_context(viewport={"width": 1366, "height": 768}, timezone_id=PC_ZONE)
        page = context.new_page()
        trouble = watch_for_trouble(page)
        log_in_as(page, url, Role.RADIO, password)
        expect(page.locator("#announce")).to_be_visible()
        expect(page.locator("#library-empty")).to_be_visible()
        check_compose(page)
        check_preview(page)
        item = check_upload(page, tmp_path, url, password)
        check_refused_upload(page, tmp_path)
        page.locator("#announce").screenshot(path=artefacts / "web-announce-1366x768.png")
        check_phone(page, artefacts)

        check_leader(browser, url, password)
        for role in (Role.TECHNICIAN, Role.DISTRICT):
            check_section_hidden(browser, url, password, role, ("#announce",), "media|tts")

        check_delete(page, item)
        assert trouble == []
        context.close()
        print(f"screenshots in {artefacts}")  # noqa: T201 -- for whoever runs -s

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
