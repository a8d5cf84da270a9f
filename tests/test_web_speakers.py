"""The console's speakers section in a real browser: villages, test tone, volume, alarms, roles.

`loacam demo` runs as a process with its twelve simulated speakers in three villages; Debian's
Chromium runs headless through Playwright, with the browser fixtures and the log-in of
test_web_viewer. Screenshots go to `<pytest basetemp>/artefacts/`.
"""

from __future__ import annotations

import asyncio
import re
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, Route, expect
from playwright.sync_api import Error as PlaywrightError

from daemon.auth import Role, hash_password_blocking
from daemon.store import Store
from daemon.store.users import add_user
from tests.test_demo import LOGIN, OPEN, TEMP_DIR, demo
from tests.test_web_viewer import artefacts, browser, log_in  # noqa: F401 -- fixtures too

VILLAGES = ["Thôn Đoài", "Thôn Đông", "Thôn Trung"]  # as the API lists them (by id)
SPEAKERS = 12
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")
UNPLUGGED = "loa-thon-doai-3"
# Far from Vietnam on purpose: the console shows Vietnam's time whatever the PC's zone.
PC_ZONE = "Europe/Berlin"


def vietnam_time(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(VIETNAM).strftime("%H:%M %d/%m/%Y")


def watch_for_trouble(page: Page) -> list[str]:
    """Script errors, CSP refusals and refresh errors the console's loops swallowed."""
    trouble: list[str] = []
    page.on("pageerror", lambda error: trouble.append(f"page error: {error}"))

    def console(message: ConsoleMessage) -> None:
        if message.text.startswith("loacam:") or "Content Security Policy" in message.text:
            trouble.append(f"console {message.type}: {message.text}")

    page.on("console", console)
    return trouble


def card(page: Page, speaker_id: str) -> Locator:
    return page.locator(f'#speakers .speaker[data-speaker="{speaker_id}"]')


def speakers_from_api(url: str, user: str, password: str) -> dict[str, dict[str, Any]]:
    with httpx.Client(base_url=url, timeout=10) as client:
        token = client.post(
            "api/v1/auth/login", json={"username": user, "password": password}
        ).json()["access_token"]
        listed = client.get("api/v1/speakers", headers={"Authorization": f"Bearer {token}"})
    return {speaker["id"]: speaker for speaker in listed.json()}


def check_fleet(page: Page) -> None:
    """Three villages of four clusters, every one online, each with what it reports."""
    section = page.locator("#speakers")
    expect(section.locator(".zone-title")).to_have_text(
        [f"{village} — 4/4 trực tuyến" for village in VILLAGES], timeout=15_000
    )
    expect(section.locator(".speaker")).to_have_count(SPEAKERS)
    expect(section.locator(".speaker .badge")).to_have_text(["Trực tuyến"] * SPEAKERS)
    expect(section.locator("#speakers-summary")).to_contain_text("12/12 cụm loa trực tuyến")
    assert section.locator("#speaker-alarms").is_hidden()
    assert page.locator("#alarm-notice").is_hidden()
    for zone in section.locator(".zone").all():
        assert zone.locator(".speaker").count() == 4


def check_card(page: Page, speaker: dict[str, Any]) -> None:
    """What the daemon knows of one cluster, in Vietnamese; times in Vietnam's time."""
    one = card(page, speaker["id"])
    expect(one.locator(".tile-name")).to_have_text(speaker["name"])
    expect(one.locator("dd.since")).to_have_text(vietnam_time(speaker["since"]))
    expect(one.locator("dd.volume")).to_have_text(str(speaker["volume"]))
    expect(one.locator("dd.signal")).to_have_text(f"{round(speaker['signal_dbm'])} dBm (mạnh)")
    expect(one.locator("dd.faults")).to_have_text("Không có")
    assert one.locator(".speaker-alarm").is_hidden()


def check_test_tone(page: Page) -> None:
    speaker = card(page, "loa-thon-dong-1")
    speaker.get_by_role("button", name="Phát thử").click()
    # Sent, taken, then played: the delivery state follows the command to its end.
    expect(speaker.locator(".command")).to_have_text(
        re.compile(r"^Phát thử: (Đang phát|Đã phát xong)$"), timeout=30_000
    )


def check_volume(page: Page) -> None:
    speaker = card(page, "loa-thon-trung-2")
    shown = speaker.locator("dd.volume")
    assert shown.inner_text() != "35"
    speaker.get_by_label("Âm lượng mới").fill("35")
    speaker.get_by_role("button", name="Đặt âm lượng").click()
    expect(speaker.locator(".command")).to_have_text(
        "Đặt âm lượng 35: Loa đã thực hiện", timeout=15_000
    )
    # The value shown is the one the speaker reports back, through the list refresh.
    expect(shown).to_have_text("35", timeout=15_000)

    speaker.get_by_label("Âm lượng mới").fill("135")
    speaker.get_by_role("button", name="Đặt âm lượng").click()
    expect(speaker.locator(".command")).to_have_text("Âm lượng phải là số nguyên từ 0 đến 100.")


def unplug(route: Route, change: Any) -> None:
    """The daemon's own answer, with one speaker gone for five minutes."""
    try:
        answer = route.fetch()
    except PlaywrightError:
        # A kept-alive connection the server closed at that very moment (ECONNRESET):
        # the browser would open a new one, and so does this second try.
        answer = route.fetch()
    route.fulfill(response=answer, json=change(answer.json()))


def check_alarm(page: Page, folder: Path) -> None:
    """A speaker offline long enough raises an alarm: a red banner, a red marker on its card.

    The demo has no way to unplug one of its speakers, so the browser is shown the daemon's
    answers as they would be five minutes after that speaker lost its link.
    """
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    message = f"Cụm loa Thôn Đoài 3 mất kết nối từ {vietnam_time(since)}"

    def speakers(listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for speaker in listed:
            if speaker["id"] == UNPLUGGED:
                speaker.update(status="offline", since=since, alarm=True, alarm_since=since)
        return listed

    def zones(listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for zone in listed:
            if zone["id"] == "thon-doai":
                zone["online"] -= 1
        return listed

    def alarms(listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        alarm = {"id": 1, "kind": "speaker_offline", "subject": UNPLUGGED, "active": True}
        alarm |= {"since": since, "raised_at": since, "cleared_at": None, "message": message}
        return [alarm, *listed]

    page.route(re.compile(r"/api/v1/speakers$"), lambda route: unplug(route, speakers))
    page.route(re.compile(r"/api/v1/zones$"), lambda route: unplug(route, zones))
    page.route(re.compile(r"/api/v1/alarms\?active=true$"), lambda route: unplug(route, alarms))

    banner = page.locator("#speaker-alarms")
    expect(banner).to_be_visible(timeout=15_000)
    expect(banner.locator("li")).to_have_text([message])
    expect(page.locator("#alarm-notice")).to_contain_text("Có 1 cảnh báo loa truyền thanh")
    gone = card(page, UNPLUGGED)
    expect(gone.locator(".badge")).to_have_text("Mất kết nối", timeout=15_000)
    expect(gone.locator(".speaker-alarm")).to_have_text(
        f"Cảnh báo: mất kết nối từ {vietnam_time(since)}"
    )
    expect(page.locator(".zone-title").first).to_have_text("Thôn Đoài — 3/4 trực tuyến")
    assert "alarm" in (gone.get_attribute("class") or "")
    page.locator("#speakers").screenshot(path=folder / "web-speakers-alarm-1366x768.png")

    page.unroute_all()
    expect(banner).to_be_hidden(timeout=15_000)  # back online: the alarm goes
    expect(gone.locator(".speaker-alarm")).to_be_hidden()


def check_phone(page: Page, folder: Path) -> None:
    page.set_viewport_size({"width": 390, "height": 800})
    page.wait_for_function(
        "() => getComputedStyle(document.querySelector('#speakers .speaker-grid'))"
        ".gridTemplateColumns.split(' ').length === 1"
    )
    overflow = page.eval_on_selector(
        "#speakers",
        "s => ({section: s.scrollWidth - s.clientWidth,"
        " page: document.documentElement.scrollWidth - window.innerWidth,"
        " right: Math.max(...[...s.querySelectorAll('.speaker, .controls')]"
        ".map(e => e.getBoundingClientRect().right))})",
    )
    assert overflow["section"] <= 0, overflow
    assert overflow["page"] <= 0, overflow
    assert overflow["right"] <= 390, overflow
    page.screenshot(path=folder / "web-speakers-phone-390x800.png", full_page=True)


def add_users(data_dir: Path, password: str, roles: list[Role]) -> None:
    """Accounts named after their role, in the running demo's database."""
    hashed = hash_password_blocking(password)

    async def add() -> None:
        store = await Store.open(data_dir)
        try:
            for role in roles:
                await add_user(store, role.value, role.value, hashed)
        finally:
            await store.close()

    # Playwright's sync API keeps an event loop running in this thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, add()).result(timeout=30)


def log_in_as(page: Page, url: str, role: Role, password: str) -> None:
    """test_web_viewer's log_in, for accounts that see fewer than its two cameras."""
    page.goto(url)
    page.get_by_label("Tên đăng nhập").fill(role.value)
    page.get_by_label("Mật khẩu").fill(password)
    page.get_by_role("button", name="Đăng nhập").click()
    expect(page.locator("#who")).to_be_visible()


def check_section_hidden(
    chromium: Browser,
    url: str,
    password: str,
    role: Role,
    hidden: tuple[str, ...],
    apis: str,
) -> None:
    """A role that may not use a section logs in: `hidden` selectors stay hidden, and no
    request goes to the section's APIs (`apis`, a regular expression after /api/v1/)."""
    context = chromium.new_context()
    page = context.new_page()
    trouble = watch_for_trouble(page)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    log_in_as(page, url, role, password)
    expect(page.locator("#welcome")).to_contain_text("Xin chào")
    for selector in hidden:
        assert page.locator(selector).is_hidden(), selector
    # The section asked nothing of the daemon for them.
    assert not [u for u in requested if re.search(rf"/api/v1/({apis})", u)], requested
    assert trouble == []
    context.close()


def check_roles(chromium: Browser, url: str, password: str) -> None:
    """Leaders look, the radio operator may also stop, district officials see no speakers."""
    for role, buttons in (
        (Role.LEADER, []),
        (Role.RADIO, ["Dừng"]),
        (Role.TECHNICIAN, ["Đặt âm lượng", "Phát thử", "Dừng"]),
    ):
        context = chromium.new_context()
        page = context.new_page()
        trouble = watch_for_trouble(page)
        log_in_as(page, url, role, password)
        speaker = card(page, "loa-thon-dong-2")
        expect(speaker.locator(".badge")).to_have_text("Trực tuyến", timeout=15_000)
        visible = [b.inner_text() for b in speaker.locator("button").all() if b.is_visible()]
        assert visible == buttons, (role, visible)
        assert speaker.locator(".volume-input").is_visible() == ("Đặt âm lượng" in buttons)
        assert trouble == []
        context.close()

    context = chromium.new_context()
    page = context.new_page()
    with page.expect_response(lambda r: r.url.endswith("/api/v1/speakers")) as listed:
        log_in_as(page, url, Role.DISTRICT, password)
    assert listed.value.status == 403
    # The one camera shared with the district shows; the speakers section never does.
    expect(page.locator("#camera-grid .tile")).to_have_count(1, timeout=15_000)
    assert page.locator("#speakers").is_hidden()
    context.close()


def test_speakers_by_village_with_commands_alarms_roles_and_a_phone(
    browser: Browser,  # noqa: F811 -- pytest hands in the fixture imported above
    artefacts: Path,  # noqa: F811
) -> None:
    with demo() as (process, output, _port):
        url = output.wait_for(OPEN, timeout=30).group(1)
        user, password = output.wait_for(LOGIN, timeout=5).groups()
        (temp_dir,) = set(TEMP_DIR.findall(output.seen))
        others = [Role.LEADER, Role.RADIO, Role.TECHNICIAN, Role.DISTRICT]
        add_users(Path(temp_dir, "data"), password, others)

        context = browser.new_context(viewport={"width": 1366, "height": 768}, timezone_id=PC_ZONE)
        page = context.new_page()
        trouble = watch_for_trouble(page)
        log_in(page, url, user, password)
        check_fleet(page)
        check_card(page, speakers_from_api(url, user, password)["loa-thon-dong-1"])
        check_test_tone(page)
        check_volume(page)
        page.locator("#speakers").screenshot(path=artefacts / "web-speakers-1366x768.png")
        check_alarm(page, artefacts)
        check_phone(page, artefacts)
        assert trouble == []
        context.close()
        check_roles(browser, url, password)
        print(f"screenshots in {artefacts}")  # noqa: T201 -- for whoever runs -s

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
