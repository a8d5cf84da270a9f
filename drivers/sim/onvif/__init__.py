"""A simulated ONVIF camera (SOAP over HTTP, snapshot URL) for the tests and `loacam demo`.

The RTSP media is a separate process; the simulator only hands out its URLs.
"""

from drivers.sim.onvif.device import SimulatedOnvifCamera
from drivers.sim.onvif.state import (
    CameraFaults,
    CameraIdentity,
    Preset,
    PtzPosition,
    PtzVelocity,
)

__all__ = [
    "CameraFaults",
    "CameraIdentity",
    "Preset",
    "PtzPosition",
    "PtzVelocity",
    "SimulatedOnvifCamera",
]
