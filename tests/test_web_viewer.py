"""The web viewer in a real browser: log in, live tiles, full screen on the main stream, phone.

`loacam demo` runs as a process with its two simulated cameras; Debian's Chromium runs headless
through Playwright. Screenshots go to `<pytest basetemp>/artefacts/`.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright

from tests.support import poll_until
from tests.test_demo import LOGIN, OPEN, demo

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CAMERAS = {"motcua-1", "tiepdan-1"}
SNAPSHOT_NAME = re.compile(r"^(motcua-1|tiepdan-1)-\d{8}-\d{6}\.jpg$")
FRESH = re.compile(r"^Hình mới \d+,\d giây trước$")


@pytest.fixture
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.getbasetemp() / "artefacts"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def log_in(page: Page, url: str, user: str, password: str) -> None:
    page.goto(url)
    page.get_by_label("Tên đăng nhập").fill(user)
    page.get_by_label("Mật khẩu").fill(password)
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_function("() => document.querySelectorAll('#camera-grid .tile').length >= 2")


def wait_for_picture(image: Locator, width: int, timeout_s: float = 20) -> None:
    image.page.wait_for_function(
        "([image, width]) => image.naturalWidth === width",
        arg=[image.element_handle(), width],
        timeout=timeout_s * 1000,
    )


def assert_changes(image: Locator, timeout_s: float = 15) -> None:
    """Two pictures of the element ~1.5 s apart differ: the stream is live, not frozen."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = image.screenshot()
        # Playwright's own wait keeps the browser's events flowing while the test waits.
        image.page.wait_for_timeout(1500)
        if image.screenshot() != before:
            return
    raise AssertionError(f"{image} did not change within {timeout_s} s")


def columns(page: Page) -> int:
    return len({round(box["x"]) for box in tile_boxes(page)})


def tile_boxes(page: Page) -> list[dict[str, float]]:
    boxes = page.eval_on_selector_all(
        "#camera-grid .tile",
        "tiles => tiles.map(t => { const r = t.getBoundingClientRect();"
        " return {x: r.x, width: r.width}; })",
    )
    assert isinstance(boxes, list)
    return boxes


def wait_until_online(client: httpx.Client, user: str, password: str) -> None:
    """Both demo cameras connected: the browser then has pictures to show at once."""
    answer = client.post("api/v1/auth/login", json={"username": user, "password": password})
    headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def statuses() -> set[str]:
        return {c["status"] for c in client.get("api/v1/cameras", headers=headers).json()}

    poll_until(lambda: statuses() == {"online"}, timeout=30)


def check_tile(tile: Locator) -> None:
    """A live sub-stream picture with its name, status badge and last-frame age."""
    image = tile.locator("img.tile-image")
    wait_for_picture(image, 640)  # the sub stream
    assert "stream=sub" in (image.get_attribute("src") or "")
    assert (image.get_attribute("alt") or "").startswith("Hình trực tiếp camera ")
    assert tile.locator(".badge").inner_text() == "hoạt động"
    assert_changes(image)
    # The last-frame age comes from the camera detail every few seconds.
    tile.page.wait_for_function(
        "([age, pattern]) => new RegExp(pattern).test(age.textContent)",
        arg=[tile.locator(".age").element_handle(), FRESH.pattern],
        timeout=10_000,
    )


def check_snapshot(tile: Locator, artefacts: Path) -> None:
    with tile.page.expect_download() as download_info:
        tile.get_by_role("link", name=re.compile("^Chụp ảnh")).click()
    download = download_info.value
    assert SNAPSHOT_NAME.match(download.suggested_filename), download.suggested_filename
    saved = artefacts / download.suggested_filename
    download.save_as(saved)
    assert saved.read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG


def check_full_screen(tile: Locator, artefacts: Path) -> None:
    """A click on the picture shows the main stream over the whole page; Esc closes it."""
    page = tile.page
    tile.locator(".picture").click()
    viewer = page.locator("#viewer")
    assert viewer.is_visible()
    full = viewer.locator("#viewer-image")
    wait_for_picture(full, 1280)  # the main stream
    assert "stream=main" in (full.get_attribute("src") or "")
    assert_changes(full)
    box, screen = full.bounding_box(), page.viewport_size
    assert box is not None
    assert screen is not None
    assert box["width"] == screen["width"]  # the whole width of the screen
    # The grid rests meanwhile: its streams are dropped.
    assert page.eval_on_selector_all(
        ".tile-image", "images => images.every(i => i.getAttribute('src') === '')"
    )
    page.screenshot(path=artefacts / "web-viewer-full-screen-1366x768.png")

    page.keyboard.press("Escape")
    viewer.wait_for(state="hidden", timeout=5000)
    # The main stream's connection is dropped (the dialog's close event clears the src).
    page.wait_for_function(
        "(image) => image.getAttribute('src') === ''", arg=full.element_handle(), timeout=2000
    )
    for image in page.locator("img.tile-image").all():
        wait_for_picture(image, 640)  # and the grid plays again
    page.screenshot(path=artefacts / "web-viewer-grid-1366x768.png")


def check_phone(page: Page, artefacts: Path) -> None:
    page.set_viewport_size({"width": 390, "height": 800})
    page.wait_for_function(
        "() => getComputedStyle(document.getElementById('camera-grid'))"
        ".gridTemplateColumns.split(' ').length === 1"
    )
    assert columns(page) == 1
    assert all(box["width"] > 300 for box in tile_boxes(page))
    page.screenshot(path=artefacts / "web-viewer-phone-390x800.png", full_page=True)


def test_viewer_shows_live_tiles_full_screen_and_fits_a_phone(
    browser: Browser, artefacts: Path
) -> None:
    with demo() as (process, output, _port):
        url = output.wait_for(OPEN, timeout=30).group(1)
        user, password = output.wait_for(LOGIN, timeout=5).groups()
        with httpx.Client(base_url=url, timeout=10) as client:
            wait_until_online(client, user, password)

        context = browser.new_context(viewport={"width": 1366, "height": 768})
        page = context.new_page()
        log_in(page, url, user, password)
        tiles = page.locator("#camera-grid .tile")
        assert {tile.get_attribute("data-camera") for tile in tiles.all()} == CAMERAS
        assert columns(page) == 2  # side by side on an office PC screen
        for tile in tiles.all():
            check_tile(tile)
        check_snapshot(tiles.first, artefacts)
        check_full_screen(tiles.first, artefacts)
        check_phone(page, artefacts)
        context.close()
        print(f"screenshots and snapshot in {artefacts}")  # noqa: T201 -- for whoever runs -s

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
