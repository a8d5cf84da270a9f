"""What every TTS engine is: one Protocol, one result type, one small exception tree.

The subprocess runner shared by the offline engines (espeak-ng, Piper) lives here too, so
that no engine module imports another.
"""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

VOICES = frozenset({"vi", "vi-vn-x-central", "vi-vn-x-south"})
"""loacam's voice ids: Northern (the standard), Central and Southern Vietnamese."""

_STDERR_TAIL = 300  # enough for a tool's error line; its stderr never reaches a log whole


class TtsError(Exception):
    """The engine could not turn this text into speech."""


class TtsUnavailableError(TtsError):
    """The engine cannot answer now: no network, a timeout, rate-limited, binary missing."""


@dataclass(frozen=True)
class Speech:
    data: bytes
    suffix: Literal["mp3", "wav"]
    engine: str
    voice: str


class TtsEngine(Protocol):
    name: str
    """"gtts", "espeak-ng" or "piper"."""
    network: bool
    """True when the engine needs the internet: an emergency never waits on it."""
    voices: frozenset[str]
    """The loacam voice ids (see VOICES) this engine can speak."""

    def params(self) -> str:
        """Stable text of the settings that change the sound, for cache keys."""
        ...

    async def synthesize(self, text: str, voice: str) -> Speech:
        """Speak already-normalised `text`; never blocks the event loop."""
        ...


def check_request(engine: TtsEngine, text: str, voice: str) -> None:
    """Refuse, before any work, a voice the engine lacks or a text with nothing to say."""
    if voice not in engine.voices:
        raise TtsError(f"{engine.name} has no voice {voice!r}")
    if not text.strip():
        raise TtsError("nothing to say: the text is empty")


async def run_speech_tool(engine: str, argv: Sequence[str], text: str, timeout_s: float) -> None:
    """Run a speech executable with `text` on stdin; it writes its audio to a file.

    The text goes on stdin, never on the command line, where a leading '-' would make it an
    option. The process is killed on timeout and on cancellation (the chain's deadline),
    so no synthesis outlives its caller.
    """
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError as exc:
        raise TtsUnavailableError(f"{engine}: executable {argv[0]!r} not found") from exc
    except PermissionError as exc:
        raise TtsUnavailableError(f"{engine}: {argv[0]!r} is not executable") from exc
    try:
        async with asyncio.timeout(timeout_s):
            _, stderr = await process.communicate(text.encode("utf-8"))
    except TimeoutError as exc:
        raise TtsUnavailableError(f"{engine}: no result within {timeout_s:g} s") from exc
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        detail = stderr.decode("utf-8", "replace").strip()[-_STDERR_TAIL:]
        raise TtsError(f"{engine} exited with status {process.returncode}: {detail}")


async def read_wav(engine: str, path: Path) -> bytes:
    """The WAV a tool wrote; a tool that exits 0 may still have written nothing."""
    data = await asyncio.to_thread(_read_if_there_blocking, path)
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            frames = reader.getnframes()
    except (wave.Error, EOFError) as exc:
        raise TtsError(f"{engine} wrote no valid WAV ({len(data)} bytes): {exc}") from exc
    if frames == 0:
        raise TtsError(f"{engine} wrote a WAV without audio")
    return data


def _read_if_there_blocking(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""
