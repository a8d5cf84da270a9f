"""What the simulated camera is and remembers: identity, faults, clock, PTZ head.

Pure state, no I/O: the SOAP handlers read and change it, the tests observe it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple


@dataclass
class CameraFaults:
    """Faults of real cameras, switchable while the simulator runs (mutable on purpose)."""

    wrong_password: bool = False
    """Every authenticated call is refused, as if the configured password were wrong."""
    clock_skew_s: float = 0.0
    """Device clock = real clock + skew; WS-Security `Created` is checked against it (±5 min)."""
    snapshot_digest_only: bool = False
    """The snapshot URL accepts only HTTP Digest (Basic gets a 401 with a Digest challenge)."""
    snapshot_basic_only: bool = False
    """The snapshot URL accepts only HTTP Basic, as on old cameras (Digest gets a 401)."""
    no_ptz: bool = False
    """No PTZ service advertised; PTZ calls answer a SOAP Fault (ter:ActionNotSupported)."""
    no_snapshot_uri: bool = False
    """GetSnapshotUri answers a SOAP Fault (ter:ActionNotSupported)."""
    h265_only: bool = False
    """Both profiles' video encoders report Encoding H265."""
    soap_delay_s: float = 0.0
    """Every SOAP reply is held back this long (to exceed a client's timeout)."""
    empty_body: bool = False
    """Replies (but GetSystemDateAndTime) carry an empty SOAP Body, as buggy firmware does."""


@dataclass(frozen=True, kw_only=True)
class CameraIdentity:
    """What GetDeviceInformation answers."""

    manufacturer: str = "loacam-sim"
    model: str = "SimCam 2"
    firmware: str = "1.0"
    serial: str
    hardware_id: str = "sim"


class PtzPosition(NamedTuple):
    """Pan and tilt in [-1, 1], zoom in [0, 1] (ONVIF generic spaces)."""

    pan: float
    tilt: float
    zoom: float


class PtzVelocity(NamedTuple):
    """Pan, tilt and zoom speeds in [-1, 1] (ONVIF generic velocity spaces)."""

    pan: float
    tilt: float
    zoom: float


@dataclass(frozen=True)
class Preset:
    name: str
    position: PtzPosition


HOME = PtzPosition(0.0, 0.0, 0.0)
_MAX_PRESETS = 32


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


class PtzHead:
    """A PTZ head that moves while a continuous move lasts (one generic unit per second)."""

    max_presets = _MAX_PRESETS

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._base = HOME
        self._velocity: PtzVelocity | None = None
        self._since = 0.0
        self._until: float | None = None
        self.last_move: PtzVelocity | None = None
        self.presets: dict[str, Preset] = {}
        self._next_token = 1

    def position(self) -> PtzPosition:
        if self._velocity is None:
            return self._base
        now = self._monotonic()
        end = now if self._until is None else min(now, self._until)
        elapsed = max(0.0, end - self._since)
        pan, tilt, zoom = self._base
        return PtzPosition(
            _clamp(pan + self._velocity.pan * elapsed, -1.0, 1.0),
            _clamp(tilt + self._velocity.tilt * elapsed, -1.0, 1.0),
            _clamp(zoom + self._velocity.zoom * elapsed, 0.0, 1.0),
        )

    @property
    def moving(self) -> bool:
        if self._velocity is None:
            return False
        return self._until is None or self._monotonic() < self._until

    def move(self, velocity: PtzVelocity, timeout_s: float | None) -> None:
        self._base = self.position()
        self._velocity = velocity
        self._since = self._monotonic()
        self._until = None if timeout_s is None else self._since + timeout_s
        self.last_move = velocity

    def stop(self, *, pan_tilt: bool = True, zoom: bool = True) -> None:
        current = self.position()
        velocity = self._velocity
        self._base = current
        self._velocity = None
        if velocity is not None and not (pan_tilt and zoom):
            # Stop only one axis group: the other keeps its speed.
            keep = PtzVelocity(
                0.0 if pan_tilt else velocity.pan,
                0.0 if pan_tilt else velocity.tilt,
                0.0 if zoom else velocity.zoom,
            )
            self._velocity = keep
            self._since = self._monotonic()

    def goto(self, position: PtzPosition) -> None:
        self._velocity = None
        self._base = position

    def set_preset(self, name: str | None, token: str | None) -> str:
        """Store the current position; `token` names an existing preset to overwrite."""
        if token is None:
            token = str(self._next_token)
            self._next_token += 1
        if not name:
            name = self.presets[token].name if token in self.presets else f"Preset {token}"
        self.presets[token] = Preset(name, self.position())
        return token

    def reset(self) -> None:
        """A reboot: the head re-homes, presets survive (they live in flash)."""
        self.goto(HOME)


@dataclass
class DeviceModel:
    """The whole simulated device: what every SOAP handler may read or change."""

    identity: CameraIdentity
    username: str
    password: str
    rtsp_main: str
    rtsp_sub: str
    base_url: str
    faults: CameraFaults
    ptz: PtzHead = field(default_factory=PtzHead)
    time_zone: str = "ICT-7"  # POSIX TZ: Indochina Time, UTC+7
    ntp: bool = False
    reboot_count: int = 0
    requests: Counter[str] = field(default_factory=Counter)
    _clock_offset: timedelta = field(default_factory=timedelta)

    def clock(self) -> datetime:
        """The device's idea of now, in UTC: real clock + skew fault + any manual setting."""
        return self._real_plus_skew() + self._clock_offset

    def set_clock(self, when: datetime) -> None:
        """SetSystemDateAndTime (Manual): from now on the device clock reads `when`."""
        self._clock_offset = when - self._real_plus_skew()

    def _real_plus_skew(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.faults.clock_skew_s)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"
