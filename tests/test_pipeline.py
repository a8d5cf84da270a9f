"""The audio pipeline on real files: every common format in, R128 loudness out, chimes, errors.

Inputs are Vietnamese speech from espeak-ng, re-encoded and re-levelled with ffmpeg. Output
loudness is checked with an independent meter: ffmpeg's ebur128 filter, not the loudnorm
filter the pipeline uses.
"""

from __future__ import annotations

import random
import socket
import subprocess
import tempfile
import threading
import time
import wave
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest

from audio import pipeline
from audio.chime import CHIME_PEAK, CHIME_SECONDS, chime_samples, chime_wav
from audio.pipeline import (
    AudioCancelledError,
    AudioDecodeError,
    AudioError,
    AudioTimeoutError,
    AudioTooLongError,
    Chime,
    LoudnessTarget,
    OutputFormat,
    Rendered,
    probe_blocking,
    render_blocking,
)
from tests.audio_meter import meter
from tests.support import ffmpeg_children

TEXT = (
    "Ủy ban nhân dân xã thông báo: từ ngày mai, bộ phận một cửa làm việc từ bảy giờ ba mươi "
    "sáng. Đề nghị bà con mang theo căn cước công dân khi đến làm thủ tục."
)
DEFAULT = LoudnessTarget()
MP3 = OutputFormat()
HERMES_WAV = OutputFormat(codec="wav", sample_rate=22_050)
# How each test input is encoded from the speech (ffmpeg output options).
FORMATS = {
    "speech.mp3": ["-c:a", "libmp3lame", "-b:a", "64k"],
    "speech.wav": ["-c:a", "pcm_s16le"],
    "speech.m4a": ["-c:a", "aac", "-b:a", "64k"],
    "speech.ogg": ["-c:a", "libvorbis", "-q:a", "3"],
    "speech.opus": ["-c:a", "libopus", "-b:a", "32k"],
    "speech.flac": ["-c:a", "flac"],
    # the right channel at half level, so the downmix has two different channels to mix
    "stereo.mp3": ["-af", "pan=stereo|c0=c0|c1=0.5*c0", "-c:a", "libmp3lame", "-b:a", "96k"],
    "narrow.wav": ["-ar", "8000", "-c:a", "pcm_s16le"],
}


# -- helpers ------------------------------------------------------------------------


def ffmpeg(*args: str) -> str:
    done = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-y", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stderr


def written(rendered: Rendered, path: Path) -> Path:
    path = path.with_suffix(f".{rendered.suffix}")
    path.write_bytes(rendered.data)
    return path


def samples(path: Path, rate: int = 44_100) -> npt.NDArray[np.float32]:
    """The decoded file as mono float samples, by PyAV rather than by the code under test."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks += [out.to_ndarray().ravel() for out in resampler.resample(frame)]
    chunks += [out.to_ndarray().ravel() for out in resampler.resample(None)]
    return np.concatenate(chunks)


def dominant_hz(signal: npt.NDArray[np.float32], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1 / rate)[int(np.argmax(spectrum))])


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as reader:
        return reader.getnframes() / reader.getframerate()


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point tempfile at an empty directory, to see what the pipeline leaves behind."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


# -- inputs, made once per module ---------------------------------------------------


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def speech(media: Path) -> Path:
    path = media / "espeak.wav"
    subprocess.run(
        ["espeak-ng", "-v", "vi", "--stdin", "-w", str(path)],
        input=TEXT.encode(),
        capture_output=True,
        timeout=60,
        check=True,
    )
    return path


@pytest.fixture(scope="module")
def speech_s(speech: Path) -> float:
    seconds = wav_seconds(speech)
    assert 6 < seconds < 15, "espeak-ng should read the text in about 9 s"
    return seconds


@pytest.fixture(scope="module")
def quiet(speech: Path, media: Path) -> Path:
    """The speech at about -35 LUFS (a recording made far from the microphone)."""
    path = media / "quiet.wav"
    ffmpeg("-i", str(speech), "-af", f"volume={-35 - meter(speech)['I']:.2f}dB", str(path))
    return path


@pytest.fixture(scope="module")
def loud(speech: Path, media: Path) -> Path:
    """The speech at about -8 LUFS: compressed, boosted and soft-clipped to full scale."""
    path = media / "loud.wav"
    squash = (
        "acompressor=threshold=-30dB:ratio=20:attack=2:release=40:makeup=20dB,"
        "volume=12dB,asoftclip=type=tanh,volume=-0.3dB"
    )
    ffmpeg("-i", str(speech), "-af", squash, str(path))
    return path


@pytest.fixture(scope="module")
def quiet_mp3(quiet: Path) -> Rendered:
    return render_blocking(quiet, MP3, DEFAULT, Chime())


# -- decoding every common format ---------------------------------------------------


@pytest.mark.parametrize("name", FORMATS)
def test_every_common_format_decodes_to_its_length_and_renders(
    name: str, speech: Path, speech_s: float, media: Path, tmp_path: Path
) -> None:
    source = media / name
    ffmpeg("-i", str(speech), *FORMATS[name], str(source))

    info = probe_blocking(source)
    assert info.duration_s == pytest.approx(speech_s, abs=0.1)
    assert info.channels == (2 if name.startswith("stereo") else 1)
    assert info.sample_rate == {"narrow.wav": 8000, "speech.opus": 48_000}.get(name, 22_050)
    assert info.codec == {"m4a": "aac", "ogg": "vorbis", "wav": "pcm_s16le"}.get(
        source.suffix[1:], source.suffix[1:]
    )

    rendered = render_blocking(source, MP3, DEFAULT, Chime())
    assert rendered.suffix == "mp3"
    assert rendered.duration_s == pytest.approx(speech_s, abs=0.1)
    assert meter(written(rendered, tmp_path / "out"))["I"] == pytest.approx(-16, abs=1)


# -- loudness -----------------------------------------------------------------------


def test_the_test_inputs_are_as_quiet_and_as_loud_as_intended(quiet: Path, loud: Path) -> None:
    assert meter(quiet)["I"] == pytest.approx(-35, abs=1)
    assert meter(loud)["I"] == pytest.approx(-8, abs=1)
    assert meter(loud)["TP"] > -0.5  # peaks at full scale and over


def test_a_quiet_recording_is_raised_to_the_target_under_the_peak_ceiling(
    quiet: Path, quiet_mp3: Rendered, tmp_path: Path
) -> None:
    measured = meter(written(quiet_mp3, tmp_path / "out"))
    assert measured["I"] == pytest.approx(-16, abs=1)
    assert measured["TP"] <= -1.0
    assert quiet_mp3.measured_lufs == pytest.approx(meter(quiet)["I"], abs=0.5)


@pytest.mark.parametrize("fmt", [MP3, HERMES_WAV], ids=["mp3", "wav"])
def test_a_loud_recording_is_lowered_to_the_target(
    fmt: OutputFormat, loud: Path, tmp_path: Path
) -> None:
    rendered = render_blocking(loud, fmt, DEFAULT, Chime())
    measured = meter(written(rendered, tmp_path / "out"))
    assert measured["I"] == pytest.approx(-16, abs=1)
    assert measured["TP"] <= -1.0
    assert rendered.measured_lufs == pytest.approx(meter(loud)["I"], abs=0.5)


@pytest.mark.parametrize("source", ["quiet", "loud"])
def test_a_quick_render_for_an_emergency_is_near_the_target_under_the_ceiling(
    source: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[list[str]] = []
    real = pipeline._ffmpeg

    def counted(args: list[str], deadline: Any) -> str:
        runs.append(args)
        return real(args, deadline)

    monkeypatch.setattr(pipeline, "_ffmpeg", counted)
    # One encoding, never measured again: the level is a little less exact, the peak not.
    rendered = render_blocking(
        request.getfixturevalue(source), MP3, DEFAULT, Chime(before=True), quick=True
    )
    encodings = [args for args in runs if args[-2:] != ["null", "-"]]
    assert len(encodings) == 1
    assert len(runs) <= 3  # the speech measured, the chime (once per process), the encoding
    measured = meter(written(rendered, tmp_path / "out"))
    assert measured["I"] == pytest.approx(-16, abs=1.5)
    assert measured["TP"] <= -1.0


@pytest.mark.parametrize("source", ["quiet", "loud"])
def test_a_non_default_target_is_met(
    source: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    target = LoudnessTarget(integrated_lufs=-20.0, true_peak_dbtp=-3.0)
    rendered = render_blocking(request.getfixturevalue(source), MP3, target, Chime())
    measured = meter(written(rendered, tmp_path / "out"))
    assert measured["I"] == pytest.approx(-20, abs=1)
    assert measured["TP"] <= -3.0


def test_a_wide_loudness_range_is_narrowed(speech: Path, media: Path, tmp_path: Path) -> None:
    # a sentence far from the microphone, then one close to it
    wide = media / "wide.wav"
    ffmpeg(
        "-i", str(speech), "-filter_complex",
        "[0:a]asplit[a][b];[a]volume=-14dB[far];[far][b]concat=n=2:v=0:a=1", str(wide),
    )  # fmt: skip
    assert meter(wide)["LRA"] > DEFAULT.lra

    out = meter(written(render_blocking(wide, MP3, DEFAULT, Chime()), tmp_path / "out"))
    assert out["I"] == pytest.approx(-16, abs=1)
    assert out["TP"] <= -1.0
    assert out["LRA"] < meter(wide)["LRA"] - 2


def test_silence_is_refused(tmp_path: Path) -> None:
    silent = tmp_path / "silent.wav"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=22050:cl=mono", "-t", "5", str(silent))
    assert probe_blocking(silent).duration_s == pytest.approx(5, abs=0.01)
    with pytest.raises(AudioDecodeError, match="no audible sound"):
        render_blocking(silent, MP3, DEFAULT, Chime())


def test_a_blip_too_short_to_measure_is_refused(tmp_path: Path) -> None:
    blip = tmp_path / "blip.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=0.3", str(blip))
    with pytest.raises(AudioDecodeError, match=r"shorter than 0\.5 s"):
        render_blocking(blip, MP3, DEFAULT, Chime(before=True))


# -- chimes -------------------------------------------------------------------------


def test_chimes_before_and_after_at_the_speech_level(
    quiet: Path, speech_s: float, tmp_path: Path
) -> None:
    rendered = render_blocking(quiet, MP3, DEFAULT, Chime(before=True, after=True))
    out = written(rendered, tmp_path / "out")
    assert rendered.duration_s == pytest.approx(speech_s + 2 * CHIME_SECONDS, abs=0.1)
    whole = meter(out)
    assert whole["I"] == pytest.approx(-16, abs=1)
    assert whole["TP"] <= -1.0
    # the chime plays about as loud as the speech
    assert meter(out, trim=(0, CHIME_SECONDS))["I"] == pytest.approx(-16, abs=2)

    pcm, end = samples(out), rendered.duration_s
    first_note = pcm[int(0.05 * 44_100) : int(0.5 * 44_100)]
    assert dominant_hz(first_note, 44_100) == pytest.approx(659, abs=10)  # "ding" first
    last_note = pcm[int((end - 1.3) * 44_100) : int((end - 0.3) * 44_100)]
    assert dominant_hz(last_note, 44_100) == pytest.approx(523, abs=10)  # "dong" last


def test_a_chime_only_before(loud: Path, speech_s: float) -> None:
    rendered = render_blocking(loud, MP3, DEFAULT, Chime(before=True))
    assert rendered.duration_s == pytest.approx(speech_s + CHIME_SECONDS, abs=0.1)


def test_a_chime_from_a_file(quiet: Path, speech_s: float, tmp_path: Path) -> None:
    bell = tmp_path / "bell.ogg"
    ffmpeg("-f", "lavfi", "-i", "sine=f=880:d=1.2", "-c:a", "libvorbis", str(bell))

    rendered = render_blocking(quiet, MP3, DEFAULT, Chime(before=True, file=bell))
    out = written(rendered, tmp_path / "out")
    assert rendered.duration_s == pytest.approx(speech_s + 1.2, abs=0.1)
    assert meter(out)["I"] == pytest.approx(-16, abs=1)
    assert dominant_hz(samples(out)[4410:44_100], 44_100) == pytest.approx(880, abs=10)


def test_a_chime_file_that_is_long_or_silent_is_refused(quiet: Path, tmp_path: Path) -> None:
    song = tmp_path / "song.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=20", str(song))
    with pytest.raises(AudioDecodeError, match="chime is longer"):
        render_blocking(quiet, MP3, DEFAULT, Chime(after=True, file=song))
    hush = tmp_path / "hush.wav"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=22050:cl=mono", "-t", "1", str(hush))
    with pytest.raises(AudioDecodeError, match="chime has no audible sound"):
        render_blocking(quiet, MP3, DEFAULT, Chime(after=True, file=hush))


def test_the_generated_chime_is_short_smooth_and_the_same_every_time() -> None:
    rate = 22_050
    chime = chime_samples(rate)
    assert np.array_equal(chime, chime_samples(rate))
    assert len(chime) == round(CHIME_SECONDS * rate)
    assert 1.5 <= CHIME_SECONDS <= 2.5
    assert float(np.max(np.abs(chime))) == pytest.approx(CHIME_PEAK, rel=1e-3)
    # no click: it starts and ends at silence and never jumps
    assert abs(float(chime[0])) < 1e-3
    assert float(chime[-1]) == 0.0
    assert float(np.max(np.abs(np.diff(chime)))) < 0.2
    assert dominant_hz(chime[: int(0.5 * rate)], rate) == pytest.approx(659, abs=5)
    assert dominant_hz(chime[int(0.6 * rate) : int(1.5 * rate)], rate) == pytest.approx(523, abs=5)


def test_the_chime_as_wav(tmp_path: Path) -> None:
    path = tmp_path / "chime.wav"
    path.write_bytes(chime_wav(16_000))
    with wave.open(str(path)) as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (
            1,
            2,
            16_000,
        )
        assert reader.getnframes() == round(CHIME_SECONDS * 16_000)
    assert probe_blocking(path).duration_s == pytest.approx(CHIME_SECONDS, abs=0.001)


# -- output formats -----------------------------------------------------------------


def test_mp3_out_is_mono_at_44_1_khz(quiet_mp3: Rendered, tmp_path: Path) -> None:
    with av.open(str(written(quiet_mp3, tmp_path / "out"))) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.codec.canonical_name == "mp3"
        assert (stream.codec_context.channels, stream.codec_context.sample_rate) == (1, 44_100)
        assert stream.codec_context.bit_rate == 64_000


def test_wav_out_is_16_bit_mono_at_the_chosen_rate(loud: Path, tmp_path: Path) -> None:
    rendered = render_blocking(loud, HERMES_WAV, DEFAULT, Chime())
    assert rendered.suffix == "wav"
    with av.open(str(written(rendered, tmp_path / "out"))) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.codec.name == "pcm_s16le"
        assert (stream.codec_context.channels, stream.codec_context.sample_rate) == (1, 22_050)


def test_impossible_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="MP3 cannot be encoded at 44000 Hz"):
        OutputFormat(sample_rate=44_000)
    with pytest.raises(ValueError, match="no 65 kbit/s"):
        OutputFormat(bitrate_kbps=65)
    assert OutputFormat(codec="wav", sample_rate=44_000).suffix == "wav"
    with pytest.raises(ValueError, match="integrated loudness"):
        LoudnessTarget(integrated_lufs=-3)
    with pytest.raises(ValueError, match="true peak"):
        LoudnessTarget(true_peak_dbtp=0.5)
    with pytest.raises(ValueError, match="loudness range"):
        LoudnessTarget(lra=0)


# -- what is not audio ----------------------------------------------------------------


def _cut_mp3(tmp: Path, speech: Path) -> Path:
    whole = tmp / "whole.mp3"
    ffmpeg("-i", str(speech), "-c:a", "libmp3lame", "-b:a", "64k", str(whole))
    cut = tmp / "cut.mp3"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    return cut


def _video_only(tmp: Path) -> Path:
    path = tmp / "camera.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=d=2:s=64x64", "-c:v", "mpeg4", str(path))
    return path


BAD_FILES = {
    "random bytes": (lambda tmp, _: _write(tmp / "noise.mp3", random.Random(7).randbytes(40_000)),
                     "not an audio file"),
    "cut in half": (_cut_mp3, "cut short"),
    "text": (lambda tmp, _: _write(tmp / "notes.mp3", "Danh sách thôn\n".encode() * 50),
             "not an audio file"),
    "empty": (lambda tmp, _: _write(tmp / "empty.mp3", b""), "empty"),
    "video only": (lambda tmp, _: _video_only(tmp), "no audio"),
}  # fmt: skip


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind", BAD_FILES)
def test_what_is_not_audio_is_refused_plainly_and_leaves_nothing(
    kind: str, speech: Path, tmp_path: Path, private_tmp: Path
) -> None:
    make, message = BAD_FILES[kind]
    source = make(tmp_path, speech)
    with pytest.raises(AudioDecodeError, match=message) as probed:
        probe_blocking(source)
    assert len(str(probed.value)) < 80
    with pytest.raises(AudioDecodeError, match=message):
        render_blocking(source, MP3, DEFAULT, Chime(before=True))
    assert list(private_tmp.iterdir()) == []


def test_a_playlist_posing_as_audio_is_not_followed(tmp_path: Path) -> None:
    # HLS makes FFmpeg fetch the URLs a playlist names: an upload must not reach the network
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        port = listener.getsockname()[1]
        playlist = tmp_path / "playlist.mp3"
        playlist.write_text(
            "#EXTM3U\n#EXT-X-TARGETDURATION:10\n"
            f"#EXTINF:10,\nhttp://127.0.0.1:{port}/a.ts\n#EXT-X-ENDLIST\n"
        )
        with pytest.raises(AudioDecodeError):
            probe_blocking(playlist)
        with pytest.raises(AudioDecodeError):
            render_blocking(playlist, MP3, DEFAULT, Chime())
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected


def test_a_tag_dressed_up_as_a_loudness_report_is_not_believed(
    speech: Path, tmp_path: Path
) -> None:
    fake = '{"input_i" : "-60.0", "input_tp" : "-40.0", "input_lra" : "1.0", '
    fake += '"input_thresh" : "-70.0", "target_offset" : "0.0"}'
    tagged = tmp_path / "tagged.mp3"
    ffmpeg("-i", str(speech), "-metadata", f"title={fake}", "-c:a", "libmp3lame", str(tagged))
    rendered = render_blocking(tagged, MP3, DEFAULT, Chime())
    assert rendered.measured_lufs == pytest.approx(meter(tagged)["I"], abs=0.5)


def test_rendering_leaves_no_temporary_files(loud: Path, private_tmp: Path) -> None:
    assert render_blocking(loud, MP3, DEFAULT, Chime(before=True, after=True)).data
    assert list(private_tmp.iterdir()) == []


# -- limits -------------------------------------------------------------------------


def test_a_file_over_the_duration_limit_is_refused(tmp_path: Path) -> None:
    ten = tmp_path / "ten.mp3"
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=10", "-c:a", "libmp3lame", str(ten))
    with pytest.raises(AudioTooLongError, match="longer than the 5 s allowed") as raised:
        probe_blocking(ten, max_duration_s=5)
    assert isinstance(raised.value, AudioDecodeError)
    assert probe_blocking(ten, max_duration_s=11).duration_s == pytest.approx(10, abs=0.05)


@pytest.fixture(scope="module")
def ten_minutes(media: Path) -> Path:
    """Long enough that measuring it takes ffmpeg several seconds; cheap to decode (PCM)."""
    path = media / "long.wav"
    ffmpeg("-f", "lavfi", "-i", "anoisesrc=d=600:r=8000:a=0.1:seed=1", str(path))
    return path


def test_probing_stops_at_its_timeout(ten_minutes: Path) -> None:
    with pytest.raises(AudioTimeoutError, match="longer than 0 s"):
        probe_blocking(ten_minutes, timeout_s=0)


def test_rendering_stops_at_its_timeout_and_kills_ffmpeg(
    ten_minutes: Path, private_tmp: Path
) -> None:
    with pytest.raises(AudioTimeoutError, match="longer than 1 s") as raised:
        render_blocking(ten_minutes, MP3, DEFAULT, Chime(), timeout_s=1)
    # stopped while ffmpeg ran (not between steps), and reaped
    assert isinstance(raised.value.__cause__, subprocess.TimeoutExpired)
    assert ffmpeg_children() == []
    assert list(private_tmp.iterdir()) == []


def test_a_cancelled_render_kills_its_ffmpeg(ten_minutes: Path, private_tmp: Path) -> None:
    cancel = threading.Event()
    outcome: list[BaseException] = []

    def render() -> None:
        try:
            render_blocking(ten_minutes, MP3, DEFAULT, Chime(), timeout_s=300, cancel=cancel)
        except AudioError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=render)
    worker.start()
    deadline = time.monotonic() + 30
    while not ffmpeg_children() and time.monotonic() < deadline:  # ffmpeg has started
        time.sleep(0.01)
    assert ffmpeg_children() != []
    cancel.set()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], AudioCancelledError)
    assert isinstance(outcome[0].__cause__, subprocess.TimeoutExpired)  # stopped mid-ffmpeg
    assert ffmpeg_children() == []
    assert list(private_tmp.iterdir()) == []
