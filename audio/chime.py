"""The announcement chime: a soft two-note "ding-dong" generated in code.

It is made from sine partials with exponential decay (a vibraphone-like tone rather than a
metallic bell, which sounds harsh through horn loudspeakers), so it needs no bundled file
and is the same, sample for sample, on every machine.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from audio.decode import mono_wav

CHIME_SECONDS = 2.0
CHIME_PEAK = 0.5  # -6 dBFS; the pipeline sets the level it plays at
# (start s, frequency Hz): E5 then C5, a falling major third — the "ding-dong" listeners
# already know from stations and public-address systems.
_NOTES = ((0.0, 659.26), (0.55, 523.25))
# (multiple of the fundamental, amplitude, decay time constant s): upper partials die
# away sooner, as they do on a struck bar.
_PARTIALS = ((1.0, 1.0, 0.60), (2.0, 0.30, 0.30), (3.0, 0.10, 0.18))
_ATTACK_S = 0.006  # long enough to avoid a click, short enough to sound struck
_FADE_OUT_S = 0.25  # the tail reaches exactly zero, so nothing clicks where speech starts


def chime_samples(rate: int = 44_100) -> npt.NDArray[np.float32]:
    """The chime as mono float samples in [-1, 1] at `rate`, peaking at CHIME_PEAK."""
    if rate < 8_000:
        raise ValueError(f"chime sample rate {rate} Hz is below 8000 Hz")
    total = round(CHIME_SECONDS * rate)
    t = np.arange(total, dtype=np.float64) / rate
    signal = np.zeros(total, dtype=np.float64)
    for start, frequency in _NOTES:
        signal += _note(t - start, frequency)
    fade = round(_FADE_OUT_S * rate)
    signal[total - fade :] *= _raised_cosine(fade)[::-1]
    signal *= CHIME_PEAK / float(np.max(np.abs(signal)))
    return signal.astype(np.float32)


def chime_wav(rate: int = 22_050) -> bytes:
    """The chime as 16-bit mono WAV bytes (for a preview, or a speaker that only plays WAV)."""
    pcm = np.round(chime_samples(rate) * 32767).astype("<i2")
    return mono_wav(pcm.tobytes(), rate)


def _note(t: npt.NDArray[np.float64], frequency: float) -> npt.NDArray[np.float64]:
    """One struck note; `t` is time since the strike (negative before it: silent)."""
    after = np.clip(t, 0.0, None)
    tone = np.zeros_like(t)
    for ratio, amplitude, decay in _PARTIALS:
        tone += amplitude * np.exp(-after / decay) * np.sin(2 * np.pi * frequency * ratio * after)
    attack = np.clip(t / _ATTACK_S, 0.0, 1.0)
    return tone * (0.5 - 0.5 * np.cos(np.pi * attack))


def _raised_cosine(length: int) -> npt.NDArray[np.float64]:
    """A click-free ramp from 0 up to (not including) 1 over `length` samples."""
    return 0.5 - 0.5 * np.cos(np.pi * np.arange(length) / length)
