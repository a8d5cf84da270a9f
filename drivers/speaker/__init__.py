"""Speaker drivers: one module per kind of speaker, all behind `model.SpeakerDriver`."""

from drivers.speaker.hermes import HermesDriver
from drivers.speaker.model import SpeakerDriver
from drivers.speaker.native import NativeDriver

# The driver names a speaker's `driver:` setting may take (see daemon/config.py).
DRIVERS: dict[str, type[SpeakerDriver]] = {
    NativeDriver.name: NativeDriver,
    HermesDriver.name: HermesDriver,
}

__all__ = ["DRIVERS", "HermesDriver", "NativeDriver"]
