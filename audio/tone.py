"""A test tone as WAV bytes: what a technician plays to hear that a speaker works."""

from __future__ import annotations

import math
import struct

from audio.decode import mono_wav

TONE_RATE = 16_000


def tone_wav(seconds: float, frequency: float = 1000.0, rate: int = TONE_RATE) -> bytes:
    """A mono 16-bit sine at half scale, faded in and out over 20 ms (no clicks)."""
    frames = max(1, round(seconds * rate))
    fade = min(frames // 2, rate // 50)
    samples = bytearray()
    for n in range(frames):
        gain = min(1.0, n / fade, (frames - 1 - n) / fade) if fade else 1.0
        value = int(16383 * gain * math.sin(2 * math.pi * frequency * n / rate))
        samples += struct.pack("<h", value)
    return mono_wav(bytes(samples), rate)
