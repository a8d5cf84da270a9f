"""From any common audio file to what the speakers play: mono, EBU R128 loudness, chime, MP3/WAV.

ffmpeg (the command-line tool) does the work in subprocesses, which, unlike library calls,
can be killed when they overrun. Loudness is measured with ffmpeg's `loudnorm` filter (EBU
R128 integrated loudness, true peak, loudness range):

1. measure the input, downmixed to mono;
2. apply the gain that brings it to the target, through a true-peak limiter at 192 kHz
   (when the input's loudness range is wider than the target's, loudnorm's dynamic mode
   narrows it first), add the chimes at the same gain, encode;
3. measure the encoded file and, while it misses the target, encode again with the miss
   corrected.

Step 2 is loudnorm's linear mode (a plain gain) whenever the peaks allow it. Where they do
not, loudnorm's own fallback (its dynamic mode) was measured landing 1-1.5 LU short on
boosted speech, and asking it for more gained only 0.2 LU per dB; a limiter gains about
0.6 LU per dB, so step 3 converges in one or two more encodings. Step 3 also absorbs what
happens after the filter: libmp3lame's output decodes about 0.45 dB quieter than its input
(LAME 3.100, every bitrate and frequency tried), and resampling plus MP3 quantisation noise
raise true peaks by up to about half a dB on limited speech.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from audio.chime import chime_wav
from audio.decode import (
    SAFE_INPUT,
    AudioDecodeError,
    AudioError,
    AudioInfo,
    AudioTimeoutError,
    AudioTooLongError,
    probe_blocking,
)

__all__ = [
    "AudioCancelledError",
    "AudioDecodeError",
    "AudioError",
    "AudioInfo",
    "AudioTimeoutError",
    "AudioTooLongError",
    "Chime",
    "LoudnessTarget",
    "OutputFormat",
    "Rendered",
    "probe_blocking",
    "render_blocking",
]

MP3_RATES = frozenset({8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000})
MP3_BITRATES = frozenset({8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 256, 320})
CHIME_MAX_S = 15.0  # a chime file longer than this is a mistake (a whole song), not a chime
LOUDNESS_TOLERANCE_LU = 0.3  # an encoding this close to the target is kept
# The limiter's ceiling under the target, before any correction. MP3 encoding lifts true
# peaks by up to ~0.7 dB: with 0.5 dB, espeak speech needed 4 encodings (each followed by a
# measurement) to settle; with 1.0 dB, 2 (bench/tts.py: 1,500 characters in 12 s, not 22 s).
TRUE_PEAK_MARGIN_DB = 1.0
_TRUE_PEAK_SLACK_DB = 0.1  # keep the measured peak this far under: meters differ a little
# libmp3lame's output decodes this much quieter than its input (LAME 3.100): made up on the
# first encoding so that, usually, no second one is needed.
MP3_LEVEL_LOSS_DB = 0.45
_ENCODINGS = 4  # one usually suffices when nothing is limited, two when speech is
_LIMITED_SLOPE = 0.6  # LU gained per dB of gain once the limiter works, measured on speech
_LIMITER_RATE = 192_000  # limiting sample peaks at 4x a 48 kHz rate limits true peaks
_CHIME_RATE = 48_000
_SHORTEST_S = 0.5  # R128 measures loudness over 400 ms blocks: anything shorter has none
_SILENT_LUFS = -70.0  # R128's absolute gate: nothing below it counts as sound
_log = logging.getLogger(__name__)
# loudnorm prints its report at the very end, a "{" starting a line. ffmpeg prints the input's
# tags earlier and indented, so a tag dressed up as a report is never the last such block.
_REPORT = re.compile(r"^\{[^{}]*\}", re.MULTILINE)
_FIELDS = ("input_i", "input_tp", "input_lra", "input_thresh", "target_offset")


@dataclass(frozen=True)
class OutputFormat:
    """What the speakers get; always mono."""

    codec: Literal["mp3", "wav"] = "mp3"
    sample_rate: int = 44_100
    bitrate_kbps: int = 64  # MP3 only

    def __post_init__(self) -> None:
        if self.codec == "mp3" and self.sample_rate not in MP3_RATES:
            raise ValueError(f"MP3 cannot be encoded at {self.sample_rate} Hz")
        if self.codec == "mp3" and self.bitrate_kbps not in MP3_BITRATES:
            raise ValueError(f"MP3 has no {self.bitrate_kbps} kbit/s bitrate")
        if not 8_000 <= self.sample_rate <= 192_000:
            raise ValueError(f"sample rate {self.sample_rate} Hz is out of range")

    @property
    def suffix(self) -> str:
        return self.codec


@dataclass(frozen=True)
class LoudnessTarget:
    """EBU R128 targets, within the ranges ffmpeg's loudnorm accepts."""

    integrated_lufs: float = -16.0
    true_peak_dbtp: float = -1.0
    lra: float = 11.0

    def __post_init__(self) -> None:
        if not -70.0 <= self.integrated_lufs <= -5.0:
            raise ValueError("integrated loudness must be between -70 and -5 LUFS")
        if not -9.0 <= self.true_peak_dbtp <= 0.0:
            raise ValueError("true peak must be between -9 and 0 dBTP")
        if not 1.0 <= self.lra <= 50.0:
            raise ValueError("loudness range must be between 1 and 50 LU")


@dataclass(frozen=True)
class Chime:
    """A chime before and/or after the audio; `file` None means the generated chime."""

    before: bool = False
    after: bool = False
    file: Path | None = None


@dataclass(frozen=True)
class Rendered:
    data: bytes
    suffix: str
    duration_s: float  # of the encoded output, decoded
    measured_lufs: float  # the input's integrated loudness, before normalisation


@dataclass(frozen=True)
class _Measured:
    """One loudnorm report (its JSON block on stderr)."""

    input_i: float
    input_tp: float
    input_lra: float
    input_thresh: float
    target_offset: float


@dataclass(frozen=True)
class _Aim:
    """The correction one encoding applies on top of the gain to the target, and its ceiling."""

    correction_db: float
    ceiling_dbtp: float


@dataclass(frozen=True)
class _Job:
    source: Path
    speech: _Measured
    chime: Chime
    chime_file: Path | None
    chime_level: _Measured | None
    fmt: OutputFormat
    loudness: LoudnessTarget
    out: Path


_POLL_S = 0.2


class AudioCancelledError(AudioError):
    """The caller gave up on this render (the daemon is stopping)."""


class _Deadline:
    def __init__(self, timeout_s: float, cancel: threading.Event | None) -> None:
        self.timeout_s = timeout_s
        self._end = time.monotonic() + timeout_s
        self._cancel = cancel

    def remaining(self) -> float:
        if self._cancel is not None and self._cancel.is_set():
            raise AudioCancelledError("the render was cancelled")
        left = self._end - time.monotonic()
        if left <= 0:
            raise AudioTimeoutError(self.timeout_s)
        return left


def render_blocking(
    source: Path,
    fmt: OutputFormat,
    loudness: LoudnessTarget,
    chime: Chime,
    timeout_s: float = 300,
    *,
    cancel: threading.Event | None = None,
    quick: bool = False,
) -> Rendered:
    """Decode `source`, make it mono at the target loudness, add chimes, encode it as `fmt`.

    Blocking (several ffmpeg runs over the audio): run it in a thread. Raises
    AudioDecodeError for input that is damaged, not audio or silent, AudioTimeoutError past
    `timeout_s` (the running ffmpeg is killed), AudioError if ffmpeg itself fails.
    Setting `cancel` (from another thread) stops it within a fraction of a second, with
    AudioCancelledError: a thread cannot be cancelled, but it can be told to stop.
    `quick` (an emergency) encodes once and does not measure the result: on air half a
    second sooner, at the cost of the level being off by up to about 1.5 LU where the
    limiter works hard.
    """
    deadline = _Deadline(timeout_s, cancel)
    # ffmpeg would play a damaged file as far as it goes; the full decode refuses it.
    if probe_blocking(source, timeout_s=deadline.remaining()).duration_s < _SHORTEST_S:
        raise AudioDecodeError(f"the audio is shorter than {_SHORTEST_S:g} s")
    with tempfile.TemporaryDirectory(prefix="loacam-audio-") as tmp:
        work = Path(tmp)
        speech = _measure(source, loudness, deadline)
        if not speech.input_i > _SILENT_LUFS:
            raise AudioDecodeError("no audible sound")
        chime_file = _chime_file(chime, work, deadline)
        chime_level = None
        if chime_file is not None:
            chime_level = _chime_level(chime, chime_file, loudness, deadline)
            if not chime_level.input_i > _SILENT_LUFS:
                raise AudioDecodeError("the chime has no audible sound")
        out = work / f"out.{fmt.suffix}"
        job = _Job(source, speech, chime, chime_file, chime_level, fmt, loudness, out)
        if quick:
            _ffmpeg([*_inputs(job), "-filter_complex", _graph(job, _first_aim(job)),
                     *_encoder(job)], deadline)  # fmt: skip
        else:
            _encode_until_on_target(job, deadline)
        info = probe_blocking(out, timeout_s=deadline.remaining())
        data = out.read_bytes()
    return Rendered(data, fmt.suffix, info.duration_s, speech.input_i)


def _chime_file(chime: Chime, work: Path, deadline: _Deadline) -> Path | None:
    if not (chime.before or chime.after):
        return None
    if chime.file is None:
        path = work / "chime.wav"
        path.write_bytes(chime_wav(_CHIME_RATE))
        return path
    try:
        probe_blocking(chime.file, max_duration_s=CHIME_MAX_S, timeout_s=deadline.remaining())
    except AudioTooLongError as exc:
        raise AudioDecodeError(f"the chime is longer than {CHIME_MAX_S:g} s") from exc
    return chime.file


# The generated chime is always the same sound: its level is measured once per process.
_GENERATED_CHIME_LEVELS: dict[LoudnessTarget, _Measured] = {}


def _chime_level(
    chime: Chime, path: Path, loudness: LoudnessTarget, deadline: _Deadline
) -> _Measured:
    if chime.file is not None:
        return _measure(path, loudness, deadline)
    known = _GENERATED_CHIME_LEVELS.get(loudness)
    if known is None:
        known = _GENERATED_CHIME_LEVELS[loudness] = _measure(path, loudness, deadline)
    return known


def _first_aim(job: _Job) -> _Aim:
    first = MP3_LEVEL_LOSS_DB if job.fmt.codec == "mp3" else 0.0
    return _Aim(first, job.loudness.true_peak_dbtp - TRUE_PEAK_MARGIN_DB)


def _encode_until_on_target(job: _Job, deadline: _Deadline) -> None:
    """Encode, measure the whole output (chimes included), correct the aim, and repeat."""
    target = job.loudness
    aim = _first_aim(job)
    first = aim.correction_db
    # How much louder the output gets per dB of correction: 1 while nothing is limited, less
    # once the limiter works (about 0.6 on speech); then estimated from the last two
    # encodings (a secant step).
    peak = job.speech.input_tp + target.integrated_lufs - job.speech.input_i + first
    slope = _LIMITED_SLOPE if peak > aim.ceiling_dbtp else 1.0
    previous = None
    for _ in range(_ENCODINGS):
        _ffmpeg([*_inputs(job), "-filter_complex", _graph(job, aim), *_encoder(job)], deadline)
        output = _measure(job.out, target, deadline)
        miss = target.integrated_lufs - output.input_i
        excess = output.input_tp - (target.true_peak_dbtp - _TRUE_PEAK_SLACK_DB)
        if abs(miss) <= LOUDNESS_TOLERANCE_LU and excess <= 0:
            return
        if previous is not None and aim.correction_db != previous[0]:
            observed = (output.input_i - previous[1]) / (aim.correction_db - previous[0])
            slope = min(1.0, max(0.25, observed))
        previous = (aim.correction_db, output.input_i)
        lower = excess + _TRUE_PEAK_SLACK_DB if excess > 0 else 0.0
        aim = _Aim(aim.correction_db + miss / slope, aim.ceiling_dbtp - lower)
    _log.warning(
        "audio: %s stays off target after %d encodings: %.1f LUFS, %.1f dBTP",
        job.source.name,
        _ENCODINGS,
        output.input_i,
        output.input_tp,
    )


def _inputs(job: _Job) -> list[str]:
    chime = [] if job.chime_file is None else _input(job.chime_file)
    return [*_input(job.source), *chime]


def _input(path: Path) -> list[str]:
    """ffmpeg arguments that open `path` as untrusted input (see SAFE_INPUT)."""
    options = [arg for name, value in SAFE_INPUT.items() for arg in (f"-{name}", value)]
    return [*options, "-i", f"file:{path}"]


def _graph(job: _Job, aim: _Aim) -> str:
    """Speech and chimes at the target loudness, joined, through one true-peak limiter."""
    target, speech = job.loudness, job.speech
    if speech.input_lra > target.lra:
        # loudnorm's dynamic mode narrows the range; it lands near the target, and the
        # correction, learnt from the measured output, covers the rest
        gain = (
            f"loudnorm=I={target.integrated_lufs}:TP=0:LRA={target.lra}"
            f":measured_I={speech.input_i}:measured_TP={speech.input_tp}"
            f":measured_LRA={speech.input_lra}:measured_thresh={speech.input_thresh}"
            f":offset={speech.target_offset}:linear=false,"
            f"volume={aim.correction_db:.2f}dB"
        )
    else:
        gain = f"volume={target.integrated_lufs - speech.input_i + aim.correction_db:.2f}dB"
    mono = f"aformat=channel_layouts=mono,aresample={_LIMITER_RATE}"
    limiter = (
        f"alimiter=limit={10 ** (aim.ceiling_dbtp / 20):.4f}"
        # level=false: no automatic make-up gain; latency: no added delay
        ":attack=5:release=50:level=false:latency=true"
    )
    tail = f"{limiter},aresample={job.fmt.sample_rate}[out]"
    if job.chime_level is None:
        return f"[0:a:0]{mono},{gain},{tail}"
    chime_gain = target.integrated_lufs - job.chime_level.input_i + aim.correction_db
    before, after = job.chime.before, job.chime.after
    copies = int(before) + int(after)
    labels = "".join(f"[c{n}]" for n in range(copies))
    order = ("[c0]" if before else "") + "[s]" + (f"[c{copies - 1}]" if after else "")
    return (
        f"[0:a:0]{mono},{gain}[s];"
        f"[1:a:0]{mono},volume={chime_gain:.2f}dB,asplit={copies}{labels};"
        f"{order}concat=n={copies + 1}:v=0:a=1,{tail}"
    )


def _encoder(job: _Job) -> list[str]:
    fmt = job.fmt
    common = ["-map", "[out]", "-map_metadata", "-1", "-ac", "1", "-ar", str(fmt.sample_rate)]
    if fmt.codec == "mp3":
        codec = ["-c:a", "libmp3lame", "-b:a", f"{fmt.bitrate_kbps}k", "-f", "mp3"]
    else:
        codec = ["-c:a", "pcm_s16le", "-f", "wav"]
    return [*common, *codec, str(job.out)]


def _measure(path: Path, loudness: LoudnessTarget, deadline: _Deadline) -> _Measured:
    """loudnorm's first pass: the loudness of the first audio stream, downmixed to mono."""
    graph = (
        "[0:a:0]aformat=channel_layouts=mono,"
        f"loudnorm=I={loudness.integrated_lufs}:TP={loudness.true_peak_dbtp}"
        f":LRA={loudness.lra}:print_format=json"
    )
    stderr = _ffmpeg([*_input(path), "-filter_complex", graph, "-f", "null", "-"], deadline)
    reports = _REPORT.findall(stderr)
    if not reports:
        raise AudioError("ffmpeg printed no loudness measurement")
    try:
        report = json.loads(reports[-1])
        # silence reads "-inf": float() takes it, and comparisons with it behave
        return _Measured(**{key: float(report[key]) for key in _FIELDS})
    except (ValueError, KeyError) as exc:
        raise AudioError(f"ffmpeg's loudness measurement is unreadable: {exc}") from exc


def _ffmpeg(args: list[str], deadline: _Deadline) -> str:
    """Run ffmpeg to completion within the deadline; its stderr (where loudnorm reports)."""
    executable = shutil.which("ffmpeg")
    if executable is None:
        raise AudioError("ffmpeg is not installed")
    command = [executable, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info", "-y"]
    with subprocess.Popen(  # noqa: S603 — an argument list, no shell
        [*command, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as process:
        waited: subprocess.TimeoutExpired | None = None
        try:
            # Short waits, so a cancel or the deadline is noticed at once; communicate()
            # may be called again after its timeout and keeps collecting stderr.
            while True:
                try:
                    _, raw = process.communicate(timeout=min(_POLL_S, deadline.remaining()))
                    break
                except subprocess.TimeoutExpired as exc:
                    waited = exc
        except AudioError as stopped:  # the deadline or a cancel, while ffmpeg ran
            process.kill()
            process.wait()
            raise stopped from waited
    stderr = raw.decode("utf-8", errors="replace")
    if process.returncode != 0:
        last = stderr.strip().splitlines()[-1:] or ["no message"]
        raise AudioError(f"ffmpeg failed: {last[0]}")
    return stderr
