"""Decoding audio files with PyAV (FFmpeg's libraries): checking them, and PCM WAV for Hermes."""

from __future__ import annotations

import io
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

WAV_RATE = 22_050  # Rhasspy's audio servers play any rate; speech needs no more
# A file whose header promises more than this much more audio than it holds was cut short
# (an interrupted upload or copy). The slack absorbs encoder padding and rounding.
_SHORTFALL_S = 0.5
_SHORTFALL_FRACTION = 0.05
# Uploads are untrusted. Only these demuxers may read them (no HLS or other playlists, which
# make FFmpeg open further URLs), and only from local files ("file:" also stops a name like
# "concat:a|b" or "http:..." from being taken as a protocol).
DEMUXERS = "mp3,wav,w64,mov,ogg,flac,aac,matroska,asf,amr,aiff"
SAFE_INPUT = {"protocol_whitelist": "file", "format_whitelist": DEMUXERS}


class AudioError(Exception):
    """Base of the errors the audio package raises."""


class AudioDecodeError(AudioError):
    """The file is not audio FFmpeg can decode."""


class AudioTooLongError(AudioDecodeError):
    """The audio lasts longer than the caller allows."""

    def __init__(self, limit_s: float) -> None:
        super().__init__(f"audio is longer than the {limit_s:g} s allowed")
        self.limit_s = limit_s


class AudioTimeoutError(AudioError):
    """Processing the audio took longer than the caller allows."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"audio processing took longer than {timeout_s:g} s")
        self.timeout_s = timeout_s


@dataclass(frozen=True)
class Decoded:
    wav: bytes
    duration_s: float


@dataclass(frozen=True)
class AudioInfo:
    duration_s: float  # counted from the decoded samples, not read from a header
    codec: str
    sample_rate: int
    channels: int


def probe_blocking(
    path: Path, max_duration_s: float | None = None, timeout_s: float | None = None
) -> AudioInfo:
    """Decode all of `path` to prove it plays to the end, and describe its first audio stream.

    Blocking (CPU and disk): run it in a thread. Raises AudioDecodeError with a short plain
    message, AudioTooLongError as soon as more than `max_duration_s` has been decoded, and
    AudioTimeoutError once `timeout_s` has passed (checked between frames).
    """
    started = time.monotonic()
    try:
        if path.stat().st_size == 0:
            raise AudioDecodeError("the file is empty")
        with av.open(f"file:{path}", container_options=SAFE_INPUT) as container:
            if not container.streams.audio:
                raise AudioDecodeError("the file has no audio")
            stream = container.streams.audio[0]
            duration_s = 0.0
            for frame in container.decode(stream):
                duration_s += frame.samples / frame.sample_rate
                if max_duration_s is not None and duration_s > max_duration_s:
                    raise AudioTooLongError(max_duration_s)
                if timeout_s is not None and time.monotonic() - started > timeout_s:
                    raise AudioTimeoutError(timeout_s)
            declared_s = (
                float(stream.duration * stream.time_base)
                if stream.duration is not None and stream.time_base is not None
                else None
            )
            info = AudioInfo(
                duration_s=duration_s,
                codec=stream.codec_context.codec.canonical_name,
                sample_rate=stream.codec_context.sample_rate,
                channels=stream.codec_context.channels,
            )
    except FileNotFoundError as exc:
        raise AudioDecodeError("the file does not exist") from exc
    except av.error.InvalidDataError as exc:
        raise AudioDecodeError("not an audio file, or a damaged one") from exc
    except av.error.FFmpegError as exc:
        raise AudioDecodeError(f"the audio cannot be decoded ({exc.strerror})") from exc
    except OSError as exc:
        raise AudioDecodeError(f"the file cannot be read ({exc.strerror})") from exc
    _check_complete(info.duration_s, declared_s)
    return info


def _check_complete(duration_s: float, declared_s: float | None) -> None:
    """Refuse a file that decodes to nothing or to much less than its header promises.

    Only some headers count their samples (MP3 with a Xing/LAME frame, FLAC, MP4); a cut
    WAV or Ogg file announces its cut length, so it passes and plays what it holds.
    """
    if duration_s <= 0:
        raise AudioDecodeError("the file holds no audio samples")
    if declared_s is None:
        return
    if declared_s - duration_s > max(_SHORTFALL_S, _SHORTFALL_FRACTION * declared_s):
        raise AudioDecodeError(f"the file is cut short ({duration_s:.1f} s of {declared_s:.1f} s)")


def to_wav_blocking(path: Path, rate: int = WAV_RATE) -> Decoded:
    """Decode `path` to mono 16-bit PCM WAV. Blocking (CPU and disk): run it in a thread."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    pcm = bytearray()
    try:
        with av.open(f"file:{path}", container_options=SAFE_INPUT) as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"{path.name}: no audio stream")
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    pcm += out.to_ndarray().tobytes()
        for out in resampler.resample(None):  # flush what the resampler holds
            pcm += out.to_ndarray().tobytes()
    except (av.error.FFmpegError, ValueError) as exc:
        raise AudioDecodeError(f"{path.name}: {exc}") from exc
    if not pcm:
        raise AudioDecodeError(f"{path.name}: no audio samples")
    return Decoded(mono_wav(bytes(pcm), rate), len(pcm) / 2 / rate)


def mono_wav(pcm: bytes, rate: int) -> bytes:
    """16-bit little-endian mono samples wrapped in a WAV header."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm)
    return buffer.getvalue()
