"""The fallback chain: the configured engines in order, the first that speaks wins.

An emergency asks for `local_only=True` and so never waits on the network: gTTS is skipped,
not merely given a short timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from audio.tts.base import Speech, TtsEngine, TtsError

_LOG = logging.getLogger(__name__)
_ERROR_CHARS = 200  # a failure reason in a log line or an API answer stays one short line


@dataclass(frozen=True)
class Attempt:
    engine: str
    error: str


@dataclass(frozen=True)
class ChainResult:
    speech: Speech
    attempts: tuple[Attempt, ...]
    """The engines that failed before the one that spoke, in order."""


class TtsChain:
    def __init__(self, engines: Sequence[TtsEngine], deadline_s: float = 90.0) -> None:
        # 90 s: gTTS's 30 s deadline plus a long espeak-ng render; announcements are
        # rendered ahead of their time, and an emergency skips the network engines.
        self._engines = tuple(engines)
        self._deadline_s = deadline_s

    @property
    def voices(self) -> frozenset[str]:
        """Every voice some configured engine can speak."""
        return frozenset().union(*(engine.voices for engine in self._engines))

    def engines_for(self, voice: str, *, local_only: bool = False) -> list[TtsEngine]:
        """The engines to try for `voice`, in configured order."""
        return [
            engine
            for engine in self._engines
            if voice in engine.voices and not (local_only and engine.network)
        ]

    async def synthesize(self, text: str, voice: str, *, local_only: bool = False) -> ChainResult:
        """Speak `text` (already normalised) with the first engine that succeeds.

        Raises TtsError naming every attempt when all fail, and for a voice no engine has.
        """
        engines = self._check(text, voice, local_only=local_only)
        attempts: list[Attempt] = []
        give_up_at = asyncio.get_running_loop().time() + self._deadline_s
        for index, engine in enumerate(engines):
            try:
                async with asyncio.timeout_at(give_up_at) as budget:
                    speech = await engine.synthesize(text, voice)
            except TimeoutError:
                if not budget.expired():
                    raise
                untried = ", ".join(later.name for later in engines[index + 1 :]) or "none"
                error = f"the chain's {self._deadline_s:g} s deadline passed (not tried: {untried})"
                self._failed(attempts, engine, error, len(text))
                break
            except TtsError as exc:
                self._failed(attempts, engine, str(exc) or type(exc).__name__, len(text))
            else:
                return ChainResult(speech=speech, attempts=tuple(attempts))
        summary = "; ".join(f"{attempt.engine}: {attempt.error}" for attempt in attempts)
        raise TtsError(f"no engine could speak voice {voice}: {summary}")

    def _check(self, text: str, voice: str, *, local_only: bool) -> list[TtsEngine]:
        if voice not in self.voices:
            known = ", ".join(sorted(self.voices)) or "none"
            raise TtsError(f"unknown voice {voice!r} (configured voices: {known})")
        if not text.strip():
            raise TtsError("nothing to say: the text is empty")
        engines = self.engines_for(voice, local_only=local_only)
        if not engines:
            raise TtsError(f"no offline engine speaks voice {voice}")
        return engines

    @staticmethod
    def _failed(attempts: list[Attempt], engine: TtsEngine, error: str, length: int) -> None:
        error = error[:_ERROR_CHARS]
        attempts.append(Attempt(engine=engine.name, error=error))
        # The length, never the text: announcements may name people.
        _LOG.warning("tts %s failed (%d characters): %s", engine.name, length, error)
