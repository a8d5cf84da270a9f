"""espeak-ng: robotic but offline Vietnamese (Debian's package, three regional voices)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from audio.tts.base import VOICES, Speech, check_request, read_wav, run_speech_tool


@dataclass(frozen=True)
class EspeakSettings:
    executable: str = "espeak-ng"
    speed_wpm: int = 140  # espeak-ng's 175 default is too fast for a village loudspeaker
    timeout_s: float = 60.0  # a long announcement renders in a few seconds; this is a hang


class EspeakEngine:
    """espeak-ng as a subprocess; loacam's voice ids are espeak-ng's own voice names."""

    name = "espeak-ng"
    network = False
    voices = VOICES

    def __init__(self, settings: EspeakSettings | None = None) -> None:
        self._settings = settings or EspeakSettings()

    def params(self) -> str:
        return f"espeak-ng speed={self._settings.speed_wpm}wpm"

    async def synthesize(self, text: str, voice: str) -> Speech:
        check_request(self, text, voice)
        settings = self._settings
        # -w (not --stdout): espeak-ng can only fill in the WAV header's sizes in a file.
        with tempfile.TemporaryDirectory(prefix="loacam-espeak-") as directory:
            output = Path(directory) / "speech.wav"
            argv = [
                settings.executable, "-v", voice, "-s", str(settings.speed_wpm),
                "--stdin", "-w", str(output),
            ]  # fmt: skip
            await run_speech_tool(self.name, argv, text, settings.timeout_s)
            data = await read_wav(self.name, output)
        return Speech(data=data, suffix="wav", engine=self.name, voice=voice)
