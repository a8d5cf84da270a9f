"""TTS engines and the fallback chain: real espeak-ng, gTTS against a fake Google over real
sockets (a loopback HTTPS proxy), and Piper as a fake executable (no Piper model can be
downloaded here, so real Piper is not exercised).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from audio.tts import (
    ENGINES,
    Attempt,
    EspeakEngine,
    EspeakSettings,
    GttsEngine,
    GttsSettings,
    PiperEngine,
    PiperSettings,
    TtsChain,
    TtsError,
    TtsUnavailableError,
    make_engine,
)
from audio.tts.gtts_engine import MAX_CHARS, split_for_google
from tests.audio_meter import seconds_of
from tests.fake_google_tts import (
    AUDIO,
    HANG,
    TONE_S,
    FakeGoogleTts,
)

ANNOUNCEMENT = (
    "Ủy ban nhân dân xã Phúc Hòa thông báo: sáng mai, lúc bảy giờ ba mươi phút, tổ chức "
    "tiêm chủng cho trẻ em dưới năm tuổi tại trạm y tế xã. Đề nghị các gia đình đưa trẻ đến "
    "đúng giờ! Có câu hỏi gì không? Xin liên hệ cán bộ y tế thôn. Trân trọng cảm ơn bà con."
)
SHORT = "Xin chào bà con."
FAST = GttsSettings(timeout_s=5, retries=2, backoff_s=0.01, deadline_s=20)


def fake_tool(directory: Path, name: str, body: str) -> Path:
    """An executable Python script standing in for a speech binary."""
    path = directory / name
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body), encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# A speech binary that records its argv and stdin, then writes 60 ms of silence per word to
# the file after -w (espeak-ng) or --output_file (Piper).
RECORDING_TOOL = """\
    import json, pathlib, sys, wave
    args = sys.argv[1:]
    text = sys.stdin.buffer.read().decode("utf-8")
    assert text.strip(), "no text on stdin"
    output = args[args.index("-w" if "-w" in args else "--output_file") + 1]
    pathlib.Path(sys.argv[0] + ".seen").write_text(json.dumps({"argv": args, "stdin": text}))
    with wave.open(output, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16000)
        writer.writeframes(bytes(2 * 960 * len(text.split())))
"""
# A speech binary that never finishes: it notes its pid and waits for a signal.
HANGING_TOOL = """\
    import os, pathlib, signal, sys
    pathlib.Path(sys.argv[0] + ".pid").write_text(str(os.getpid()))
    signal.pause()
"""


def seen_by(tool: Path) -> dict[str, object]:
    seen: dict[str, object] = json.loads(Path(f"{tool}.seen").read_text())
    return seen


def assert_gone(tool: Path) -> None:
    """The hanging tool was started, and killed and reaped: its pid no longer exists."""
    pid = int(Path(f"{tool}.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# ---- splitting for Google ----


def test_split_keeps_every_word_in_pieces_google_takes() -> None:
    long_clause = " ".join(["thôn"] * 60)  # 299 characters without punctuation
    text = f"{ANNOUNCEMENT} {long_clause}. Hết?Vâng!"

    pieces = split_for_google(text)

    assert all(0 < len(piece) <= MAX_CHARS for piece in pieces)
    assert " ".join(pieces).split() == text.replace("?", "? ").split()
    assert pieces[0].endswith("phút,")  # cut after punctuation, packed up to the limit
    assert split_for_google("... !") == []


# ---- espeak-ng (the real Debian binary) ----


@pytest.mark.parametrize("voice", ["vi", "vi-vn-x-central", "vi-vn-x-south"])
async def test_espeak_speaks_each_voice(voice: str) -> None:
    speech = await EspeakEngine(EspeakSettings(speed_wpm=140)).synthesize(ANNOUNCEMENT, voice)

    assert (speech.suffix, speech.engine, speech.voice) == ("wav", "espeak-ng", voice)
    expected = len(ANNOUNCEMENT.split()) / 140 * 60  # one Vietnamese syllable is one word
    assert 0.5 * expected < seconds_of(speech.data) < 1.5 * expected


async def test_espeak_speaks_text_that_looks_like_an_option() -> None:
    text = "--version -w /tmp/x --help xin chào bà con thôn một"

    speech = await EspeakEngine().synthesize(text, "vi")

    # As options, espeak-ng would have printed its version and written no audio.
    assert seconds_of(speech.data) > 2.0


async def test_espeak_gets_text_on_stdin_only(tmp_path: Path) -> None:
    tool = fake_tool(tmp_path, "espeak-ng", RECORDING_TOOL)
    text = "-v en xin chào"

    speech = await EspeakEngine(EspeakSettings(executable=str(tool), speed_wpm=120)).synthesize(
        text, "vi-vn-x-south"
    )

    seen = seen_by(tool)
    assert seen["stdin"] == text
    argv = seen["argv"]
    assert isinstance(argv, list)
    assert argv[:5] == ["-v", "vi-vn-x-south", "-s", "120", "--stdin"]
    assert text not in argv
    assert seconds_of(speech.data) == pytest.approx(4 * 0.06)


async def test_espeak_that_hangs_is_killed_at_its_timeout(tmp_path: Path) -> None:
    tool = fake_tool(tmp_path, "espeak-ng", HANGING_TOOL)
    engine = EspeakEngine(EspeakSettings(executable=str(tool), timeout_s=2))

    # The outer timeout turns "never killed, so never reaped" into a failure, not a hang.
    with pytest.raises(TtsUnavailableError, match="no result within 2 s"):
        async with asyncio.timeout(30):
            await engine.synthesize(SHORT, "vi")

    assert_gone(tool)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("import sys; sys.stdin.read()\n", "wrote no valid WAV"),
        ("import sys; sys.stderr.write('voice vi broken'); sys.exit(3)\n", "status 3: voice vi"),
    ],
    ids=["no-output", "failed"],
)
async def test_espeak_without_audio_is_an_error(tmp_path: Path, body: str, error: str) -> None:
    engine = EspeakEngine(EspeakSettings(executable=str(fake_tool(tmp_path, "espeak-ng", body))))

    with pytest.raises(TtsError, match=error) as caught:
        await engine.synthesize(SHORT, "vi")
    assert not isinstance(caught.value, TtsUnavailableError)


async def test_missing_executables_are_unavailable(tmp_path: Path) -> None:
    model = tmp_path / "vi_VN-test.onnx"
    model.write_bytes(b"model")
    engines = [
        EspeakEngine(EspeakSettings(executable="loacam-no-such-espeak")),
        PiperEngine(PiperSettings(model=model, executable=str(tmp_path / "no-piper"))),
    ]
    for engine in engines:
        with pytest.raises(TtsUnavailableError, match="not found"):
            await engine.synthesize(SHORT, "vi")


async def test_engines_refuse_a_voice_they_lack_and_empty_text() -> None:
    with pytest.raises(TtsError, match="no voice 'vi-vn-x-south'"):
        await GttsEngine().synthesize(SHORT, "vi-vn-x-south")
    with pytest.raises(TtsError, match="nothing to say"):
        await EspeakEngine().synthesize("  \n", "vi")


# ---- Piper (a fake executable: real Piper is not exercised) ----


async def test_piper_gets_model_and_one_line_on_stdin(tmp_path: Path) -> None:
    model = tmp_path / "vi_VN-test-medium.onnx"
    model.write_bytes(b"not really onnx")
    tool = fake_tool(tmp_path, "piper", RECORDING_TOOL)
    engine = PiperEngine(PiperSettings(model=model, executable=str(tool)))

    speech = await engine.synthesize("-h Xin chào\nbà con", "vi")

    seen = seen_by(tool)
    argv = seen["argv"]
    assert isinstance(argv, list)
    assert argv[:3] == ["--model", str(model), "--output_file"]
    assert seen["stdin"] == "-h Xin chào bà con"  # one line: Piper overwrites per line
    assert (speech.suffix, speech.engine) == ("wav", "piper")
    assert seconds_of(speech.data) == pytest.approx(5 * 0.06)  # the fake's 60 ms per word


async def test_piper_without_its_model_is_unavailable(tmp_path: Path) -> None:
    tool = fake_tool(tmp_path, "piper", RECORDING_TOOL)
    engine = PiperEngine(PiperSettings(model=tmp_path / "gone.onnx", executable=str(tool)))

    with pytest.raises(TtsUnavailableError, match=r"model .*gone\.onnx not found"):
        await engine.synthesize(SHORT, "vi")
    assert not await asyncio.to_thread(Path(f"{tool}.seen").exists)  # never started


def test_piper_params_change_with_the_model(tmp_path: Path) -> None:
    model = tmp_path / "vi.onnx"
    model.write_bytes(b"1234")
    engine = PiperEngine(PiperSettings(model=model))
    before = engine.params()
    model.write_bytes(b"123456")

    assert before == "piper vi.onnx:4 vi.onnx.json:missing"
    assert engine.params() != before


def test_engine_table_names_each_engine(tmp_path: Path) -> None:
    assert {name: cls.name for name, cls in ENGINES.items()} == {
        "gtts": "gtts",
        "espeak-ng": "espeak-ng",
        "piper": "piper",
    }
    assert isinstance(make_engine(PiperSettings(model=tmp_path / "m.onnx")), PiperEngine)
    assert make_engine(EspeakSettings(speed_wpm=120)).params() == "espeak-ng speed=120wpm"
    assert GttsEngine().network
    assert not EspeakEngine().network


# ---- gTTS against the fake Google ----


async def test_gtts_sends_pieces_of_at_most_100_characters(google: FakeGoogleTts) -> None:
    speech = await GttsEngine(FAST).synthesize(ANNOUNCEMENT, "vi")

    seen = google.requests
    assert len(seen) >= 2
    assert all(len(request.text) <= 100 and request.lang == "vi" for request in seen)
    assert " ".join(request.text for request in seen).split() == ANNOUNCEMENT.split()
    assert google.tunnels == ["translate.google.com:443"] * len(seen)
    assert google.errors == []
    assert (speech.suffix, speech.engine, speech.voice) == ("mp3", "gtts", "vi")
    # every answer's MP3 is in the result, joined into one decodable file
    assert seconds_of(speech.data) == pytest.approx(len(seen) * TONE_S, abs=0.1 * len(seen))


async def test_gtts_retries_after_429(google: FakeGoogleTts) -> None:
    google.script(429, 429, then=AUDIO)

    speech = await GttsEngine(FAST).synthesize(SHORT, "vi")

    assert [request.text for request in google.requests] == [SHORT] * 3
    assert seconds_of(speech.data) == pytest.approx(TONE_S, abs=0.1)


async def test_gtts_gives_up_after_its_retries(google: FakeGoogleTts) -> None:
    google.script(then=429)

    with pytest.raises(TtsUnavailableError, match="HTTP 429 from Google 3 times"):
        await GttsEngine(FAST).synthesize(SHORT, "vi")
    assert len(google.requests) == 3


async def test_gtts_never_waits_past_its_deadline_on_429(google: FakeGoogleTts) -> None:
    google.script(then=429)
    settings = GttsSettings(retries=5, backoff_s=600, deadline_s=5)

    with pytest.raises(TtsUnavailableError, match="would pass the deadline"):
        await GttsEngine(settings).synthesize(SHORT, "vi")
    assert len(google.requests) == 1


async def test_gtts_does_not_retry_other_errors(google: FakeGoogleTts) -> None:
    google.script(then=503)

    with pytest.raises(TtsUnavailableError, match="HTTP 503"):
        await GttsEngine(FAST).synthesize(SHORT, "vi")
    assert len(google.requests) == 1


async def test_gtts_deadline_ends_a_hanging_google(google: FakeGoogleTts) -> None:
    google.script(then=HANG)
    settings = GttsSettings(timeout_s=600, deadline_s=1)

    with pytest.raises(TtsUnavailableError, match="no answer within 1 s"):
        await GttsEngine(settings).synthesize(SHORT, "vi")
    assert len(google.requests) == 1


async def test_gtts_request_timeout_ends_a_hanging_google(google: FakeGoogleTts) -> None:
    google.script(then=HANG)
    settings = GttsSettings(timeout_s=0.5, deadline_s=600)

    with pytest.raises(TtsUnavailableError, match=r"cannot reach Google \(ReadTimeout\)"):
        await GttsEngine(settings).synthesize(SHORT, "vi")
    assert len(google.requests) == 1


async def test_gtts_without_internet_is_unavailable_at_once() -> None:
    # conftest's no_internet: the proxy refuses connections. A long deadline and timeout
    # show the failure came from the refusal, not from waiting.
    settings = GttsSettings(timeout_s=600, deadline_s=600)

    with pytest.raises(TtsUnavailableError, match=r"cannot reach Google \(ProxyError\)"):
        await GttsEngine(settings).synthesize(SHORT, "vi")


# ---- the chain ----


def chain(*, gtts: GttsSettings = FAST, deadline_s: float = 60) -> TtsChain:
    return TtsChain([GttsEngine(gtts), EspeakEngine()], deadline_s=deadline_s)


async def test_chain_falls_back_to_espeak_when_google_refuses(
    google: FakeGoogleTts, caplog: pytest.LogCaptureFixture
) -> None:
    google.script(then=429)

    with caplog.at_level(logging.WARNING, logger="audio.tts.chain"):
        result = await chain().synthesize(ANNOUNCEMENT, "vi")

    assert result.attempts == (Attempt("gtts", "gtts: HTTP 429 from Google 3 times"),)
    assert (result.speech.engine, result.speech.suffix) == ("espeak-ng", "wav")
    assert seconds_of(result.speech.data) > 5
    assert len(google.requests) == 3
    [record] = caplog.records
    assert "gtts" in record.getMessage()
    assert "xã" not in record.getMessage()  # the text never reaches the log


async def test_chain_uses_google_when_it_answers(google: FakeGoogleTts) -> None:
    result = await chain().synthesize(SHORT, "vi")

    assert (result.speech.engine, result.attempts) == ("gtts", ())
    assert len(google.requests) == 1


async def test_chain_local_only_never_calls_google(google: FakeGoogleTts) -> None:
    result = await chain().synthesize(SHORT, "vi", local_only=True)

    assert (result.speech.engine, result.attempts) == ("espeak-ng", ())
    assert (google.requests, google.tunnels) == ([], [])


async def test_chain_southern_voice_skips_google(google: FakeGoogleTts) -> None:
    tts = chain()

    result = await tts.synthesize(SHORT, "vi-vn-x-south")

    assert [engine.name for engine in tts.engines_for("vi-vn-x-south")] == ["espeak-ng"]
    assert (result.speech.engine, result.speech.voice) == ("espeak-ng", "vi-vn-x-south")
    assert google.requests == []


async def test_chain_refuses_an_unknown_voice(google: FakeGoogleTts) -> None:
    with pytest.raises(TtsError, match="unknown voice 'en'"):
        await chain().synthesize(SHORT, "en")
    assert google.requests == []


async def test_chain_local_only_without_a_local_engine() -> None:
    with pytest.raises(TtsError, match="no offline engine speaks voice vi"):
        await TtsChain([GttsEngine()]).synthesize(SHORT, "vi", local_only=True)


async def test_chain_names_every_failed_attempt(google: FakeGoogleTts) -> None:
    google.script(then=429)
    tts = TtsChain([GttsEngine(FAST), EspeakEngine(EspeakSettings(executable="loacam-none"))])

    with pytest.raises(TtsError) as caught:
        await tts.synthesize(SHORT, "vi")

    message = str(caught.value)
    assert "gtts: HTTP 429" in message
    assert "espeak-ng: executable 'loacam-none' not found" in message


async def test_chain_deadline_stops_and_kills_a_slow_engine(tmp_path: Path) -> None:
    tool = fake_tool(tmp_path, "espeak-ng", HANGING_TOOL)
    slow = EspeakEngine(EspeakSettings(executable=str(tool), timeout_s=600))
    tts = TtsChain([slow, PiperEngine(PiperSettings(model=tmp_path / "m.onnx"))], deadline_s=2)

    with pytest.raises(TtsError, match=r"2 s deadline passed \(not tried: piper\)"):
        async with asyncio.timeout(30):  # never killed would be never reaped: fail, not hang
            await tts.synthesize(SHORT, "vi")

    assert_gone(tool)
