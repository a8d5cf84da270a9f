"""The `audio:` part of the configuration: text-to-speech, the audio pipeline, uploads.

Also home of the base model every config section uses (it lives here so that
`daemon.config` can import the audio section without a cycle).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from audio.tts import ENGINES


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _check_absolute(value: Path) -> Path:
    if not value.is_absolute():
        raise ValueError(f"{str(value)!r} must be an absolute path (starting with /)")
    return value


AbsolutePath = Annotated[Path, AfterValidator(_check_absolute)]

Engine = Literal["gtts", "espeak-ng", "piper"]
# loacam's voice ids (audio.tts.VOICES) are espeak-ng's: northern, central, southern.
Voice = Literal["vi", "vi-vn-x-central", "vi-vn-x-south"]
VOICES: tuple[Voice, ...] = get_args(Voice)
DEFAULT_ENGINES: tuple[Engine, ...] = ("gtts", "espeak-ng")
_ABBREVIATION = re.compile(r"^[^\s]{1,20}$")


class GttsConfig(Model):
    timeout_s: float = Field(
        10.0, ge=1, le=120, description="Seconds gTTS may take for one text before falling back."
    )
    retries: int = Field(2, ge=0, le=5, description="Retries when Google answers 429 (too many).")
    tld: str = Field(
        "com",
        pattern=r"^[a-z]{2,6}(\.[a-z]{2,3})?$",
        description="Google host suffix (translate.google.<tld>), e.g. com or com.vn.",
    )


class EspeakConfig(Model):
    executable: str = Field("espeak-ng", min_length=1, description="The espeak-ng program.")
    speed_wpm: int = Field(140, ge=80, le=300, description="Speaking rate, words per minute.")


class PiperConfig(Model):
    model: AbsolutePath | None = Field(
        None, description="Piper voice model (.onnx) on this machine; needed to list `piper`."
    )
    executable: str = Field("piper", min_length=1, description="The piper program.")


class TtsConfig(Model):
    engines: list[Engine] = Field(
        default_factory=lambda: list(DEFAULT_ENGINES),
        min_length=1,
        description="Engines in the order they are tried; the next one is used when one fails.",
    )
    voice: Voice = Field("vi", description="Default voice: vi, vi-vn-x-central, vi-vn-x-south.")
    deadline_s: float = Field(
        120.0, ge=5, le=900, description="Seconds all engines together may take for one text."
    )
    gtts: GttsConfig = Field(default_factory=GttsConfig, description="Google text-to-speech.")
    espeak: EspeakConfig = Field(default_factory=EspeakConfig, description="espeak-ng (offline).")
    piper: PiperConfig = Field(default_factory=PiperConfig, description="Piper (offline).")

    @model_validator(mode="after")
    def _check_engines(self) -> TtsConfig:
        if len(set(self.engines)) != len(self.engines):
            raise ValueError("engines: each engine may be listed once")
        if "piper" in self.engines and self.piper.model is None:
            raise ValueError("engines lists piper but piper.model is not set")
        local = [engine for engine in self.engines if not ENGINES[engine].network]
        # An emergency never waits for the internet: some offline engine must speak it.
        if not any(self.voice in ENGINES[engine].voices for engine in local):
            raise ValueError(
                f"no offline engine (espeak-ng, piper) speaks voice {self.voice!r}: "
                "add espeak-ng, so an emergency is never silent without internet"
            )
        return self


class LoudnessConfig(Model):
    integrated_lufs: float = Field(
        -16.0, ge=-30, le=-10, description="Loudness target (EBU R128 integrated), LUFS."
    )
    true_peak_dbtp: float = Field(-1.0, ge=-9, le=0, description="Highest true peak allowed, dBTP.")


class OutputConfig(Model):
    codec: Literal["mp3", "wav"] = Field("mp3", description="Format native speakers download.")
    sample_rate: Literal[16000, 22050, 24000, 32000, 44100, 48000] = Field(
        44100, description="Sample rate of that format, Hz (mono always)."
    )
    bitrate_kbps: Literal[32, 48, 64, 96, 128, 160, 192] = Field(
        64, description="MP3 bit rate, kbit/s."
    )
    hermes_sample_rate: Literal[16000, 22050, 44100] = Field(
        22050, description="Sample rate of the WAV sent to Hermes speakers, Hz."
    )


class ChimeConfig(Model):
    before: bool = Field(default=True, description="Play a chime before each announcement.")
    after: bool = Field(default=False, description="Play a chime after each announcement.")
    file: AbsolutePath | None = Field(
        None, description="Your own chime (any audio file); default: loacam's generated chime."
    )


HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class QuietSeason(Model):
    months: list[Annotated[int, Field(ge=1, le=12)]] = Field(
        min_length=1, description="Months (1-12) these quiet hours apply in."
    )
    morning: HHMM = Field(description="No normal or priority broadcast before this time.")
    evening: HHMM = Field(description="No normal or priority broadcast from this time.")

    @model_validator(mode="after")
    def _ordered(self) -> QuietSeason:
        if self.morning >= self.evening:
            raise ValueError("morning must come before evening (e.g. 05:00, 21:30)")
        return self


class VolumeStep(Model):
    start: HHMM = Field(description="From this time of day (until the next step's start).")
    max_volume: int = Field(ge=0, le=100, description="Broadcasts are at most this loud.")


class BroadcastsConfig(Model):
    quiet_morning: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] | None = Field(
        "05:30", description="No normal or priority broadcast before this time (HH:MM, Vietnam)."
    )
    quiet_evening: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] | None = Field(
        "21:00", description="No normal or priority broadcast from this time (HH:MM, Vietnam)."
    )

    quiet_seasons: list[QuietSeason] = Field(
        default_factory=list,
        description="Other quiet hours for some months (the first listed that holds the month "
        "wins; other months use quiet_morning and quiet_evening).",
    )
    volume_profile: list[VolumeStep] = Field(
        default_factory=list,
        description="Loudest allowed volume by time of day (Vietnam's time); empty: no cap. "
        "An emergency is never capped.",
    )
    after_preemption: Literal["resume", "interrupted"] = Field(
        "resume",
        description="What happens to an item an emergency cut off: resume (played again "
        "from its start on those speakers once the emergency ends, if still within its "
        "lateness) or interrupted (recorded as interrupted, not played again).",
    )

    @model_validator(mode="after")
    def _both(self) -> BroadcastsConfig:
        if (self.quiet_morning is None) != (self.quiet_evening is None):
            raise ValueError("set both quiet_morning and quiet_evening, or neither")
        if self.quiet_morning is not None and self.quiet_morning >= (self.quiet_evening or ""):
            raise ValueError("quiet_morning must come before quiet_evening (e.g. 05:30, 21:00)")
        starts = [step.start for step in self.volume_profile]
        if len(set(starts)) != len(starts):
            raise ValueError("volume_profile: two steps start at the same time")
        return self


class AudioConfig(Model):
    tts: TtsConfig = Field(default_factory=TtsConfig, description="Text-to-speech engines.")
    abbreviations: dict[str, str] = Field(
        default_factory=dict,
        description="Extra abbreviations and how to read them, e.g. {HTX: hợp tác xã}; "
        "they add to, or replace, loacam's built-in list.",
    )
    loudness: LoudnessConfig = Field(
        default_factory=LoudnessConfig, description="Loudness every item is brought to."
    )
    output: OutputConfig = Field(default_factory=OutputConfig, description="Speaker audio format.")
    chime: ChimeConfig = Field(default_factory=ChimeConfig, description="Chimes around items.")
    cache_max_mb: int = Field(
        500, ge=10, le=100_000, description="Size of the rendered speech cache, MB."
    )
    render_ahead_min: int = Field(
        30, ge=1, le=24 * 60, description="Minutes before air time scheduled speech is rendered."
    )
    upload_max_mb: int = Field(50, ge=1, le=500, description="Largest recording accepted, MB.")
    upload_max_duration_s: int = Field(
        3600, ge=10, le=3 * 3600, description="Longest recording accepted, seconds."
    )
    max_text_chars: int = Field(
        5000, ge=100, le=50_000, description="Longest announcement text accepted, characters."
    )

    @model_validator(mode="after")
    def _check_abbreviations(self) -> AudioConfig:
        for key, value in self.abbreviations.items():
            if not _ABBREVIATION.match(key):
                raise ValueError(f"abbreviation {key[:30]!r}: 1-20 characters without spaces")
            if not 1 <= len(value.strip()) <= 200:
                raise ValueError(f"abbreviation {key!r}: its reading must be 1-200 characters")
        return self
