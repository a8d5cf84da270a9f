"""`loacam demo`: starts, answers, prints a login that works, and cleans up after Ctrl-C."""

from __future__ import annotations

import contextlib
import io
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from audio.normalize import normalize
from audio.tts.espeak import EspeakEngine
from daemon.broadcasts.store import list_broadcasts
from daemon.config_audio import AudioConfig
from daemon.demo import DEMO_ZONES, demo_config
from daemon.demo_day import (
    CITIZEN_RECEPTION,
    FIRST_LOOK,
    FIRST_LOOK_DELAY,
    LUNAR_FIRST,
    LUNAR_FULL_MOON,
    MORNING,
    OFFICE_ZONE,
    OWNER,
    PROGRAMMES,
    TET,
    broadcast_id,
    plan_blocking,
    seed_demo_day,
)
from daemon.schedule.lunar import tet, to_lunar
from daemon.schedule.recurrence import LOCAL, validate
from daemon.schedule.rules import Rules
from daemon.service import broadcast_rules
from daemon.store import Store
from drivers.sim.broker import free_port
from tests.support import REPO, poll_until

LOGIN = re.compile(r"Đăng nhập / log in:\s+(\S+) / (\S+)")
TEMP_DIR = re.compile(r"(/tmp/loacam-demo-[A-Za-z0-9_]+)/")
OPEN = re.compile(r"Mở / open:\s+(http://\S+)")
SCHEDULE = re.compile(r'Lịch phát / schedule:\s+(\d+) chương trình mẫu, xem mục "Lịch phát"')
FIRST_LOOK_LINE = re.compile(r"Bản tin thử:\s+(.+)")


class Lines:
    """Reads a process's output on a thread, so a test can wait for a line with a timeout."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.seen = ""
        threading.Thread(target=self._pump, args=(process,), daemon=True).start()

    def _pump(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen += line
            if match := pattern.search(line):
                return match
        raise AssertionError(f"{pattern.pattern!r} not printed within {timeout} s:\n{self.seen}")


def children_named(parent: int, name: str) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            comm = stat.read_text().split("(", 1)[1].rsplit(")", 1)[0]
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent and comm == name:
            found.append(int(stat.parent.name))
    return found


@contextlib.contextmanager
def demo() -> Iterator[tuple[subprocess.Popen[str], Lines, int]]:
    """`loacam demo` on a free port, killed at the end whatever the test did."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "daemon", "demo", "--port", str(port)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = Lines(process)
    try:
        yield process, lines, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        # A demo killed outright cannot remove its temporary directory: the test does.
        for leftover in TEMP_DIR.findall(lines.seen):
            shutil.rmtree(leftover, ignore_errors=True)


def test_demo_prints_a_working_login_and_stops_cleanly() -> None:
    with demo() as (process, output, port):
        url = output.wait_for(OPEN, timeout=30).group(1)
        user, password = output.wait_for(LOGIN, timeout=5).groups()
        assert url == f"http://127.0.0.1:{port}/"
        assert httpx.get(url + "healthz", timeout=5).status_code == 200
        assert httpx.get(url + "readyz", timeout=5).status_code == 200  # its private broker is up
        login = httpx.post(
            url + "api/v1/auth/login", json={"username": user, "password": password}, timeout=10
        )
        assert login.status_code == 200
        assert login.json()["role"] == "admin"
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

        def cameras() -> dict[str, str]:
            listed = httpx.get(url + "api/v1/cameras", headers=headers, timeout=10).json()
            return {camera["id"]: camera["status"] for camera in listed}

        # Two simulated cameras; the one an hour off still comes online.
        poll_until(lambda: cameras() == {"motcua-1": "online", "tiepdan-1": "online"}, timeout=30)
        shot = httpx.get(url + "api/v1/cameras/motcua-1/snapshot.jpg", headers=headers, timeout=10)
        assert shot.headers["content-type"] == "image/jpeg"

        def speakers() -> list[dict[str, str]]:
            listed: list[dict[str, str]] = httpx.get(
                url + "api/v1/speakers", params={"status": "online"}, headers=headers, timeout=10
            ).json()
            return listed

        # Twelve simulated clusters in three villages, all online, each playing a test tone.
        online = poll_until(lambda: len(speakers()) == 12 and speakers(), timeout=30)
        assert len({speaker["zone"] for speaker in online}) == 3
        tone = httpx.post(
            url + "api/v1/speakers/test-tone",
            json={"targets": {"zones": ["thon-dong"]}},
            headers=headers,
            timeout=10,
        )
        assert tone.status_code == 202
        cmd_ids = [command["cmd_id"] for command in tone.json()]
        assert len(cmd_ids) == 4

        def started() -> bool:
            return all(
                httpx.get(
                    url + f"api/v1/speaker-commands/{cmd_id}", headers=headers, timeout=10
                ).json()["state"]
                in {"started", "finished"}
                for cmd_id in cmd_ids
            )

        poll_until(started, timeout=30)
        brokers = children_named(process.pid, "mosquitto")
        assert len(brokers) == 1

        (temp_dir,) = set(TEMP_DIR.findall(output.seen))
        assert Path(temp_dir, "data", "loacam.db").exists()

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
        assert not Path(f"/proc/{brokers[0]}").exists()
        assert not Path(temp_dir).exists()  # database and token key go with the demo


def test_demo_killed_outright_leaves_no_broker_behind() -> None:
    with demo() as (process, output, _port):
        output.wait_for(LOGIN, timeout=30)
        (broker,) = children_named(process.pid, "mosquitto")
        media = children_named(process.pid, "python3")  # the GStreamer RTSP servers
        assert len(media) == 2
        process.kill()
        process.wait(timeout=10)
        # Gone, or a zombie waiting for init to reap it: either way no longer serving.
        poll_until(lambda: all(_state(pid) == "Z" for pid in (broker, *media)))


def _state(pid: int) -> str:
    """The process state letter from /proc; "Z" also when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


# --- the day of broadcasts the demo ships (daemon.demo_day) ----------------------------------

NOON = datetime(2026, 6, 5, 12, 0, tzinfo=LOCAL)  # a Friday; lunar 20/4


def demo_rules(tmp_path: Path) -> Rules:
    """The quiet hours the demo's daemon keeps (its configuration's defaults)."""
    config = demo_config(tmp_path, host="127.0.0.1", port=8080, mqtt_port=1883, cameras=[])
    return broadcast_rules(config)


def recurrence(broadcast: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    return broadcast["rrule"], broadcast["lunar"]


EXPECTED = {
    MORNING.title: ("FREQ=DAILY;BYHOUR=6;BYMINUTE=0", None),
    "Chương trình phát thanh buổi chiều": ("FREQ=DAILY;BYHOUR=17;BYMINUTE=30", None),
    CITIZEN_RECEPTION.title: ("FREQ=WEEKLY;BYDAY=MO;BYHOUR=7;BYMINUTE=0", None),
    LUNAR_FIRST.title: (None, {"day": 1, "month": None}),
    LUNAR_FULL_MOON.title: (None, {"day": 15, "month": None}),
    TET.title: (None, {"day": 1, "month": 1}),
}


def test_the_demo_day_is_a_commune_radio_stations_week(tmp_path: Path) -> None:
    day = plan_blocking(NOON.astimezone(UTC), demo_rules(tmp_path))
    by_title = {broadcast.title: broadcast for broadcast in day.broadcasts}
    assert len(by_title) == len(day.broadcasts) == len(PROGRAMMES) + 1
    assert {
        title: (b.rrule, {"day": b.lunar_day, "month": b.lunar_month} if b.lunar_day else None)
        for title, b in by_title.items()
        if b.schedule.recurring
    } == EXPECTED
    for broadcast in day.broadcasts:
        # Each starts at its own first air time, which the API's own check accepts.
        assert validate(broadcast.schedule, NOON) == broadcast.start_at
        assert broadcast.created_by == OWNER
        assert re.fullmatch(r"[0-9a-f]{32}", broadcast.id)
    local = {title: b.start_at.astimezone(LOCAL) for title, b in by_title.items()}
    assert local[MORNING.title] == datetime(2026, 6, 6, 6, 0, tzinfo=LOCAL)
    assert local["Chương trình phát thanh buổi chiều"] == datetime(2026, 6, 5, 17, 30, tzinfo=LOCAL)
    assert local[CITIZEN_RECEPTION.title] == datetime(2026, 6, 8, 7, 0, tzinfo=LOCAL)  # Monday
    assert to_lunar(local[LUNAR_FIRST.title].date()).day == 1
    assert local[LUNAR_FULL_MOON.title].date() == date(2026, 6, 29)  # Rằm of lunar month 5
    assert local[TET.title] == datetime.combine(tet(2027), clock(7, 0), LOCAL)
    assert by_title[TET.title].priority == "priority"
    # One village for the weekly notice, a village the demo has; everything else to all.
    assert by_title[CITIZEN_RECEPTION.title].targets.zones == (OFFICE_ZONE,)
    assert OFFICE_ZONE in {zone for zone, _name in DEMO_ZONES}
    assert all(b.targets.all for t, b in by_title.items() if t != CITIZEN_RECEPTION.title)
    first = by_title[FIRST_LOOK.title]
    assert not first.schedule.recurring
    assert first.start_at == NOON + FIRST_LOOK_DELAY == day.first_look_at
    assert (first.priority, first.targets.all) == ("normal", True)
    assert "hẹn phát lúc 12h02 ngày 5/6/2026" in (first.text or "")
    # The meeting of the morning bulletin is a week ahead, never a date gone by.
    assert "19h30 ngày 12/6/2026" in (by_title[MORNING.title].text or "")


@pytest.mark.parametrize(
    ("started", "airs"),
    [
        (clock(20, 57), True),  # airs 20:59
        (clock(20, 58), False),  # would air 21:00: quiet hours begin
        (clock(23, 30), False),
        (clock(5, 27), False),  # 05:29
        (clock(5, 28), True),  # 05:30: quiet hours are over
    ],
)
def test_the_first_look_bulletin_is_left_out_in_quiet_hours(
    tmp_path: Path, started: clock, airs: bool
) -> None:
    now = datetime.combine(date(2026, 6, 5), started, LOCAL)
    day = plan_blocking(now, demo_rules(tmp_path))
    titles = {broadcast.title for broadcast in day.broadcasts}
    assert (FIRST_LOOK.title in titles) is airs
    assert (day.first_look_at is not None) is airs
    assert (day.quiet is None) is airs
    if not airs:
        assert day.quiet is not None
        assert day.quiet.startswith("Giờ yên tĩnh")
    assert titles >= {programme.title for programme in PROGRAMMES}


def test_every_demo_text_is_read_out_in_words() -> None:
    day = plan_blocking(NOON, Rules())
    limit = AudioConfig().max_text_chars
    for broadcast in day.broadcasts:
        text = broadcast.text or ""
        assert 0 < len(text) <= limit
        said = normalize(text)
        # Dates, times, amounts and abbreviations (UBND, HTX, BHYT...) all become words.
        assert not re.search(r"[0-9{}]|\b[A-ZĐ]{2,}\b", said), (broadcast.title, said)


async def test_espeak_ng_speaks_the_morning_programme_offline() -> None:
    day = plan_blocking(NOON, Rules())
    (morning,) = (b for b in day.broadcasts if b.id == broadcast_id(MORNING.key))
    speech = await EspeakEngine().synthesize(normalize(morning.text or ""), "vi")
    with wave.open(io.BytesIO(speech.data)) as audio:
        seconds = audio.getnframes() / audio.getframerate()
    assert speech.engine == "espeak-ng"
    assert seconds > 45  # the whole bulletin: about a minute at the speakers' 140 words/min


async def test_seeding_the_same_database_again_adds_nothing(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    try:
        first = await seed_demo_day(store, NOON, Rules())
        again = await seed_demo_day(store, NOON + timedelta(days=1), Rules())
        listed = await list_broadcasts(store)
    finally:
        await store.close()
    assert len(first.broadcasts) == len(PROGRAMMES) + 1
    assert first.first_look_at == NOON + FIRST_LOOK_DELAY
    assert again.broadcasts == ()
    assert again.first_look_at is None
    assert sorted(b.id for b in listed) == sorted(b.id for b in first.broadcasts)


def next_local(
    client: httpx.Client, headers: dict[str, str], key: str, count: int
) -> list[datetime]:
    answer = client.get(
        f"api/v1/broadcasts/{broadcast_id(key)}/next", params={"count": count}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    times = [datetime.fromisoformat(text) for text in answer.json()]
    assert len(times) == count
    assert all(moment.utcoffset() == timedelta(hours=7) for moment in times)  # Vietnam's time
    return times


def check_schedule(url: str, user: str, password: str, first_look: str) -> set[str]:
    """The demo's programmes through the API, as the console lists them; their ids."""
    with httpx.Client(base_url=url, timeout=10) as client:
        token = client.post(
            "api/v1/auth/login", json={"username": user, "password": password}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        listed = client.get("api/v1/broadcasts", headers=headers).json()
        recurring = {b["title"]: recurrence(b) for b in listed if b["rrule"] or b["lunar"]}
        assert recurring == EXPECTED
        assert {(b["created_by"], b["status"], b["kind"]) for b in listed} == {
            (OWNER, "active", "text")
        }

        mornings = next_local(client, headers, MORNING.key, 4)
        assert {moment.time() for moment in mornings} == {clock(6, 0)}
        assert [b.date() - a.date() for a, b in pairwise(mornings)] == [timedelta(days=1)] * 3
        for programme, lunar_day in ((LUNAR_FIRST, 1), (LUNAR_FULL_MOON, 15)):
            greetings = next_local(client, headers, programme.key, 3)
            assert {moment.time() for moment in greetings} == {clock(6, 30)}
            assert [to_lunar(moment.date()).day for moment in greetings] == [lunar_day] * 3
            months = [to_lunar(moment.date()) for moment in greetings]
            assert len({(m.year, m.month, m.leap) for m in months}) == 3  # one a lunar month
        tets = next_local(client, headers, TET.key, 2)
        assert [moment.date() for moment in tets] == [tet(m.year) for m in tets]
        assert {moment.time() for moment in tets} == {clock(7, 0)}
        mondays = next_local(client, headers, CITIZEN_RECEPTION.key, 2)
        assert {(m.weekday(), m.time()) for m in mondays} == {(0, clock(7, 0))}

        once = [b for b in listed if not (b["rrule"] or b["lunar"])]
        if first_look.startswith("phát lúc"):
            (bulletin,) = once
            assert bulletin["title"] == FIRST_LOOK.title
            (airs,) = next_local(client, headers, FIRST_LOOK.key, 1)
            assert first_look.startswith(f"phát lúc {airs:%H:%M}")
        else:  # started in quiet hours: the banner says so, and nothing is held back
            assert first_look.startswith("không xếp lịch — Giờ yên tĩnh"), first_look
            assert once == []
    return {b["id"] for b in listed if b["rrule"] or b["lunar"]}


def test_demo_ships_a_day_of_broadcasts_and_each_start_begins_afresh() -> None:
    runs = []
    for _ in range(2):
        with demo() as (process, output, _port):
            url = output.wait_for(OPEN, timeout=30).group(1)
            user, password = output.wait_for(LOGIN, timeout=5).groups()
            shown = int(output.wait_for(SCHEDULE, timeout=5).group(1))
            first_look = output.wait_for(FIRST_LOOK_LINE, timeout=5).group(1)
            assert shown == len(PROGRAMMES) + first_look.startswith("phát lúc")
            ids = check_schedule(url, user, password, first_look)
            (temp_dir,) = set(TEMP_DIR.findall(output.seen))
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=15) == 0
        runs.append((temp_dir, ids))
    # The demo's database lives in a temporary directory removed at exit: a second start
    # seeds a new one, with the same programmes (the same ids), never a second copy.
    (first_dir, first_ids), (second_dir, second_ids) = runs
    assert first_dir != second_dir
    assert not Path(first_dir).exists()
    assert first_ids == second_ids == {broadcast_id(p.key) for p in PROGRAMMES}
