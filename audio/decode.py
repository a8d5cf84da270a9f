"""Decoding audio files with PyAV (FFmpeg's libraries): duration, and PCM WAV for Hermes."""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

WAV_RATE = 22_050  # Rhasspy's audio servers play any rate; speech needs no more


class AudioDecodeError(Exception):
    """The file is not audio FFmpeg can decode."""


@dataclass(frozen=True)
class Decoded:
    wav: bytes
    duration_s: float


def to_wav_blocking(path: Path, rate: int = WAV_RATE) -> Decoded:
    """Decode `path` to mono 16-bit PCM WAV. Blocking (CPU and disk): run it in a thread."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    pcm = bytearray()
    try:
        with av.open(str(path)) as container:
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
