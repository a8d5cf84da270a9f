"""Piper: a neural voice that runs offline, when a Vietnamese voice model is installed.

Nothing is downloaded at run time: the operator installs the executable and the model
(`vi_VN-….onnx` with its `.onnx.json` beside it) and names the model in the configuration.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path

from audio.tts.base import (
    Speech,
    TtsUnavailableError,
    check_request,
    read_wav,
    run_speech_tool,
)


@dataclass(frozen=True)
class PiperSettings:
    model: Path
    executable: str = "piper"
    timeout_s: float = 120.0  # neural synthesis on a small server's CPU is slower than espeak-ng


class PiperEngine:
    """Piper as a subprocess. A Piper model is one voice: it answers for "vi" only."""

    name = "piper"
    network = False
    voices = frozenset({"vi"})

    def __init__(self, settings: PiperSettings) -> None:
        self._settings = settings

    def params(self) -> str:
        model = self._settings.model
        sizes = " ".join(
            f"{path.name}:{_size(path)}" for path in (model, model.with_name(model.name + ".json"))
        )
        return f"piper {sizes}"

    async def synthesize(self, text: str, voice: str) -> Speech:
        check_request(self, text, voice)
        settings = self._settings
        # absolute(): a relative model path starting with '-' would otherwise read as an option.
        model = settings.model.absolute()
        if not await asyncio.to_thread(model.is_file):
            raise TtsUnavailableError(f"piper: voice model {model} not found")
        # Piper speaks each stdin line into --output_file, overwriting it: give it one line.
        one_line = " ".join(text.split())
        with tempfile.TemporaryDirectory(prefix="loacam-piper-") as directory:
            output = Path(directory) / "speech.wav"
            argv = [settings.executable, "--model", str(model), "--output_file", str(output)]
            await run_speech_tool(self.name, argv, one_line, settings.timeout_s)
            data = await read_wav(self.name, output)
        return Speech(data=data, suffix="wav", engine=self.name, voice=voice)


def _size(path: Path) -> str:
    """The file's size in bytes: a replaced model of the same name changes the cache key."""
    try:
        return str(path.stat().st_size)
    except FileNotFoundError:
        return "missing"
