"""The audio API end to end: TTS preview, uploads, the library, signed media links.

The daemon runs in this process on a real port with a real broker; espeak-ng and
ffmpeg are the real programs; loudness is measured by ffmpeg's own ebur128 meter.
"""

from __future__ import annotations

import json
import re
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from daemon.auth import Role
from daemon.state import AppState
from daemon.store.schema import audit_log, media_items
from drivers.sim.broker import PrivateBroker
from tests.audio_meter import meter, seconds_of
from tests.netns_discovery import network_namespace
from tests.netns_tts import ANNOUNCEMENT
from tests.speaker_rig import bearer, make_audio, running_daemon, speaker_config, until
from tests.support import in_private_network

RADIO = bearer(Role.RADIO, "radio")
Daemon = tuple[AppState, httpx.AsyncClient]


def stored_files(state: AppState) -> set[str]:
    """Everything under the media directory, temporary folders included."""
    root = state.media.directory
    if not root.exists():
        return set()
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def audio_settings(**extra: Any) -> dict[str, Any]:
    return {"tts": {"engines": ["espeak-ng"]}, **extra}


@pytest.fixture
async def daemon(tmp_path: Path, broker: PrivateBroker) -> AsyncIterator[Daemon]:
    data = speaker_config(tmp_path, broker.port, site=f"a{uuid.uuid4().hex[:8]}", speakers=[])
    data["audio"] = audio_settings(upload_max_mb=1, upload_max_duration_s=20)
    async with running_daemon(data) as pair:
        state = pair[0]

        async def tone_stored() -> bool:  # the speakers' test tone: in the media folder too
            return state.speakers.tone is not None

        await until(tone_stored)
        yield pair


@pytest.fixture
def sounds(tmp_path: Path) -> Path:
    folder = tmp_path / "sounds"
    folder.mkdir()
    return folder


# -- text to speech --------------------------------------------------------------------


def test_offline_preview_of_a_long_announcement_comes_from_espeak(tmp_path: Path) -> None:
    """No network at all: gTTS fails, espeak-ng speaks, the normalised text is shown."""
    assert len(ANNOUNCEMENT) >= 500
    done = in_private_network(
        sys.executable, "-m", "tests.netns_tts", str(network_namespace()), str(tmp_path)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout)
    assert outcome["status"] == 200, outcome
    body = outcome["body"]
    assert body["engine"] == "espeak-ng"
    assert [f["engine"] for f in body["fallbacks"]] == ["gtts"]
    said = body["normalized_text"]
    assert "ủy ban nhân dân" in said.lower()
    assert "bảy giờ ba mươi" in said
    assert "mười lăm tháng ba năm hai nghìn không trăm hai mươi lăm" in said
    assert "hai mươi lăm nghìn đồng" in said
    assert not re.search(r"\d", said), said
    assert outcome["audio_status"] == 200
    assert outcome["audio_type"] == "audio/mpeg"
    seconds = seconds_of(Path(outcome["audio_path"]).read_bytes())
    assert seconds == pytest.approx(body["duration_s"], abs=0.2)
    # ~110 words read at 140 words a minute, plus the chime: well over 20 s, under 3 min.
    assert 20 < seconds < 180


async def test_preview_is_cached_and_its_link_plays_without_a_login(daemon: Daemon) -> None:
    _, api = daemon
    text = "Thông báo: họp thôn lúc 19h ngày 2/9."
    first = await api.post("/api/v1/tts/preview", json={"text": text}, headers=RADIO)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["cached"] is False
    assert body["engine"] == "espeak-ng"
    assert body["voice"] == "vi"
    assert "mười chín giờ" in body["normalized_text"]

    async with httpx.AsyncClient() as anyone:
        audio = await anyone.get(body["url"])
    assert audio.status_code == 200
    assert audio.headers["content-type"] == "audio/mpeg"
    assert seconds_of(audio.content) == pytest.approx(body["duration_s"], abs=0.2)

    again = await api.post("/api/v1/tts/preview", json={"text": text}, headers=RADIO)
    assert again.json()["cached"] is True
    assert again.json()["url"].split("?")[0] == body["url"].split("?")[0]
    southern = await api.post(
        "/api/v1/tts/preview", json={"text": text, "voice": "vi-vn-x-south"}, headers=RADIO
    )
    assert southern.json()["cached"] is False
    assert southern.json()["url"] != body["url"]


@pytest.mark.parametrize(
    ("text", "voice", "says"),
    [
        ("", None, None),
        ("   \n ", None, "trống"),
        ("a" * 6000, None, "dài quá"),
        ("Xin chào", "en", None),
    ],
)
async def test_preview_refuses_bad_input_in_plain_words(
    daemon: Daemon, text: str, voice: str | None, says: str | None
) -> None:
    _, api = daemon
    body: dict[str, Any] = {"text": text} | ({"voice": voice} if voice else {})
    answer = await api.post("/api/v1/tts/preview", json=body, headers=RADIO)
    assert answer.status_code == 422
    if says is not None:
        assert says in answer.json()["detail"]


async def test_audio_routes_follow_the_roles(daemon: Daemon) -> None:
    _, api = daemon
    text = {"text": "Kiểm tra"}
    for role, name in ((Role.LEADER, "leader"), (Role.TECHNICIAN, "tech")):
        refused = await api.post("/api/v1/tts/preview", json=text, headers=bearer(role, name))
        assert refused.status_code == 403
    district = bearer(Role.DISTRICT, "district")
    assert (await api.get("/api/v1/media", headers=district)).status_code == 403
    assert (
        await api.get("/api/v1/media", headers=bearer(Role.LEADER, "leader"))
    ).status_code == 200
    async with httpx.AsyncClient(base_url=str(api.base_url)) as nobody:
        assert (await nobody.get("/api/v1/media")).status_code == 401
        assert (await nobody.post("/api/v1/tts/preview", json=text)).status_code == 401
    voices = (await api.get("/api/v1/tts/voices", headers=RADIO)).json()
    assert [v["id"] for v in voices] == ["vi", "vi-vn-x-central", "vi-vn-x-south"]
    assert all(v["engines"] == ["espeak-ng"] for v in voices)


# -- uploads ---------------------------------------------------------------------------


def quiet_recording(folder: Path, seconds: float = 3.0) -> bytes:
    """Speech-like audio recorded far too quietly (about -40 LUFS)."""
    path = folder / "quiet.mp3"
    make_audio(path, seconds, frequency=330, volume_db=-40)
    return path.read_bytes()


async def test_upload_is_levelled_listed_playable_and_deletable(
    daemon: Daemon, sounds: Path
) -> None:
    state, api = daemon
    baseline = stored_files(state)  # the speakers' test tone
    answer = await api.post(
        "/api/v1/media",
        params={"filename": "thong-bao-dan-toc.mp3", "title": "Thông báo tiếng H'Mông"},
        content=quiet_recording(sounds),
        headers=RADIO,
    )
    assert answer.status_code == 201, answer.text
    item = answer.json()
    assert item["title"] == "Thông báo tiếng H'Mông"
    assert item["original_name"] == "thong-bao-dan-toc.mp3"
    assert item["source_codec"] == "mp3"
    assert item["created_by"] == "radio"
    # The speech, plus the chime before it.
    assert 4.0 < item["duration_s"] < 8.0

    listed = (await api.get("/api/v1/media", headers=RADIO)).json()
    assert [i["id"] for i in listed] == [item["id"]]
    async with httpx.AsyncClient() as anyone:
        audio = await anyone.get(item["url"])
    assert audio.status_code == 200
    served = sounds / "served.mp3"
    served.write_bytes(audio.content)
    measured = meter(served)
    assert measured["I"] == pytest.approx(-16.0, abs=1.0)
    assert measured["TP"] <= -1.0

    async with state.store.engine.connect() as conn:
        actions = (await conn.scalars(sa.select(audit_log.c.action))).all()
    assert "media.upload" in actions
    assert len(stored_files(state) - baseline) == 2  # the original and what speakers get

    deleted = await api.delete(f"/api/v1/media/{item['id']}", headers=RADIO)
    assert deleted.status_code == 204
    assert stored_files(state) == baseline
    assert (await api.get("/api/v1/media", headers=RADIO)).json() == []
    assert (await api.delete(f"/api/v1/media/{item['id']}", headers=RADIO)).status_code == 404


async def _nothing_kept(state: AppState, files_before: set[str]) -> None:
    assert stored_files(state) == files_before
    async with state.store.engine.connect() as conn:
        assert (await conn.scalar(sa.select(sa.func.count()).select_from(media_items))) == 0


@pytest.mark.parametrize(
    ("filename", "make", "status", "says"),
    [
        ("hong.mp3", "noise", 422, "hỏng"),
        ("cut.mp3", "truncated", 422, "hỏng"),
        ("empty.mp3", "empty", 422, "trống"),
        ("notes.txt", "text", 422, "loại tệp"),
        ("long.mp3", "too_long", 422, "dài quá 20 giây"),
    ],
)
async def test_bad_uploads_are_refused_and_leave_nothing_behind(
    daemon: Daemon, sounds: Path, filename: str, make: str, status: int, says: str
) -> None:
    state, api = daemon
    good = sounds / "good.mp3"
    make_audio(good, 4.0)
    content = {
        "noise": uuid.uuid4().bytes * 2000,
        "truncated": good.read_bytes()[: good.stat().st_size // 3] + b"\xff" * 5000,
        "empty": b"",
        "text": "Không phải âm thanh".encode(),
        "too_long": make_audio(sounds / "long.mp3", 25.0),
    }[make]
    before = stored_files(state)
    answer = await api.post(
        "/api/v1/media", params={"filename": filename}, content=content, headers=RADIO
    )
    assert answer.status_code == status, answer.text
    assert says in answer.json()["detail"]
    await _nothing_kept(state, before)


async def test_oversized_uploads_are_refused_with_or_without_a_length(
    daemon: Daemon,
) -> None:
    state, api = daemon
    big = b"\0" * (1024 * 1024 + 1)  # upload_max_mb is 1 here
    before = stored_files(state)
    declared = await api.post(
        "/api/v1/media", params={"filename": "big.wav"}, content=big, headers=RADIO
    )
    assert declared.status_code == 413
    assert "1 MB" in declared.json()["detail"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    streamed = await api.post(
        "/api/v1/media", params={"filename": "big.wav"}, content=chunks(), headers=RADIO
    )
    assert streamed.status_code == 413
    await _nothing_kept(state, before)


# -- signed media links ----------------------------------------------------------------


async def _uploaded(api: httpx.AsyncClient, sounds: Path) -> tuple[str, bytes]:
    answer = await api.post(
        "/api/v1/media",
        params={"filename": "tin.mp3"},
        content=make_audio(sounds / "tin.mp3", 3.0),
        headers=RADIO,
    )
    url = answer.json()["url"]
    async with httpx.AsyncClient() as anyone:
        whole = await anyone.get(url)
    assert whole.status_code == 200
    assert whole.headers["accept-ranges"] == "bytes"
    return url, whole.content


async def test_media_links_answer_ranges(daemon: Daemon, sounds: Path) -> None:
    _, api = daemon
    url, whole = await _uploaded(api, sounds)
    size = len(whole)
    async with httpx.AsyncClient() as anyone:
        first = await anyone.get(url, headers={"Range": "bytes=0-99"})
        assert first.status_code == 206
        assert first.content == whole[:100]
        assert first.headers["content-range"] == f"bytes 0-99/{size}"
        middle = await anyone.get(url, headers={"Range": f"bytes=1000-{size - 1}"})
        assert middle.status_code == 206
        assert middle.content == whole[1000:]
        tail = await anyone.get(url, headers={"Range": "bytes=-50"})
        assert tail.content == whole[-50:]
        beyond = await anyone.get(url, headers={"Range": f"bytes={size + 10}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{size}"


async def test_tampered_expired_and_unsigned_links_get_403(daemon: Daemon, sounds: Path) -> None:
    state, api = daemon
    url, _ = await _uploaded(api, sounds)
    path, _, query = url.partition("?")
    name = path.rsplit("/", 1)[1]
    params = dict(pair.split("=") for pair in query.split("&"))
    flipped = params["sig"][:-1] + ("0" if params["sig"][-1] != "0" else "1")
    expired = state.media_signer.url(name, datetime.now(UTC) - timedelta(seconds=1))
    other = "0" * 32 + ".mp3"
    attempts = [
        f"{path}?exp={params['exp']}&sig={flipped}",  # tampered signature
        f"{path}?exp={int(params['exp']) + 3600}&sig={params['sig']}",  # stretched expiry
        expired,
        path,  # unsigned
        f"{path}?exp=abc&sig={params['sig']}",
        f"{path}?exp={params['exp']}&sig={params['sig']}0",  # a signature too long
        f"{path}?exp={params['exp']}0000000000&sig={params['sig']}",
        url.replace(name, other),  # the signature of another file
        url.replace(name, name.upper()),
    ]
    async with httpx.AsyncClient() as anyone:
        for attempt in attempts:
            answer = await anyone.get(attempt)
            assert answer.status_code == 403, attempt
            assert "hết hạn" in answer.json()["detail"]
        # Nothing else under /media: no listing, no temporary folders.
        base = path.rsplit("/", 1)[0]
        for other_path in ("/", "/.work/x", "/.incoming/x", "/..%2Floacam.db", "/loacam.db"):
            answer = await anyone.get(f"{base}{other_path}?{query}")
            assert answer.status_code in {403, 404}, other_path
            assert b"SQLite" not in answer.content
