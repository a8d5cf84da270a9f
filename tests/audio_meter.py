"""An independent loudness meter for the tests: ffmpeg's own EBU R128 filter (ebur128).

Not loudnorm, which the code under test uses: a bug shared by both would go unseen.
"""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path

import av


def meter(path: Path, trim: tuple[float, float] | None = None) -> dict[str, float]:
    """Integrated loudness `I` (LUFS), loudness range `LRA` (LU), true peak `TP` (dBTP)."""
    crop = f"atrim={trim[0]}:{trim[1]}," if trim else ""
    done = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", str(path),
         "-af", f"{crop}ebur128=peak=true", "-f", "null", "-"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    summary = done.stderr[done.stderr.rindex("Summary:") :]
    found = {
        key: re.search(rf"{label}:\s+(-?[\d.]+|-inf) {unit}", summary)
        for key, label, unit in (("I", "I", "LUFS"), ("LRA", "LRA", "LU"), ("TP", "Peak", "dBFS"))
    }
    return {key: float(match[1]) for key, match in found.items() if match is not None}


def seconds_of(data: bytes) -> float:
    """Decode all of `data` (MP3 or WAV) with FFmpeg's libraries; its length in seconds."""
    samples, rate = 0, 0
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(audio=0):
            samples += frame.samples
            rate = frame.sample_rate
    assert rate > 0, "no audio frames"
    return samples / rate
