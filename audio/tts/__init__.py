"""Text-to-speech: engines behind one Protocol, and the chain that falls back between them.

ENGINES is the explicit table of engine names (the configuration's `type`) to classes; no
discovery. `make_engine` builds the one a settings object describes.
"""

from __future__ import annotations

from typing import Final

from audio.tts.base import VOICES, Speech, TtsEngine, TtsError, TtsUnavailableError
from audio.tts.chain import Attempt, ChainResult, TtsChain
from audio.tts.espeak import EspeakEngine, EspeakSettings
from audio.tts.gtts_engine import GttsEngine, GttsSettings
from audio.tts.piper import PiperEngine, PiperSettings

EngineSettings = GttsSettings | EspeakSettings | PiperSettings

ENGINES: Final[dict[str, type[GttsEngine] | type[EspeakEngine] | type[PiperEngine]]] = {
    "gtts": GttsEngine,
    "espeak-ng": EspeakEngine,
    "piper": PiperEngine,
}


def make_engine(settings: EngineSettings) -> TtsEngine:
    """The engine for a settings object (the settings type names the engine)."""
    match settings:
        case GttsSettings():
            return GttsEngine(settings)
        case EspeakSettings():
            return EspeakEngine(settings)
        case PiperSettings():
            return PiperEngine(settings)


__all__ = [
    "ENGINES",
    "VOICES",
    "Attempt",
    "ChainResult",
    "EngineSettings",
    "EspeakEngine",
    "EspeakSettings",
    "GttsEngine",
    "GttsSettings",
    "PiperEngine",
    "PiperSettings",
    "Speech",
    "TtsChain",
    "TtsEngine",
    "TtsError",
    "TtsUnavailableError",
    "make_engine",
]
