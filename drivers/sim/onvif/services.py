"""The ONVIF operations the simulator answers: device (ver10), media (ver10), PTZ (ver20)."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

from drivers.sim.onvif import templates
from drivers.sim.onvif.soap import (
    NS,
    SoapFaultError,
    SoapRequest,
    check_token,
    invalid_arg,
    not_authorized,
    not_supported,
)
from drivers.sim.onvif.state import DeviceModel, PtzVelocity

log = logging.getLogger(__name__)

Service = Literal["device", "media", "ptz"]
SERVICE_NS: dict[Service, str] = {"device": NS["tds"], "media": NS["trt"], "ptz": NS["tptz"]}
SERVICE_PATHS: dict[Service, str] = {
    "device": "/onvif/device_service",
    "media": "/onvif/media_service",
    "ptz": "/onvif/ptz_service",
}
SNAPSHOT_PATH = "/onvif/snapshot.jpg"
# Real cameras answer GetSystemDateAndTime without credentials, so that a client
# can learn the device clock before it signs anything.
PUBLIC_OPERATIONS = frozenset({"GetSystemDateAndTime"})

Handler = Callable[[DeviceModel, SoapRequest], str]


def handle(model: DeviceModel, service: Service, request: SoapRequest) -> str:
    """The response body for one request, or a SoapFaultError."""
    handler = HANDLERS[service].get(request.operation)
    if request.namespace != SERVICE_NS[service] or handler is None:
        raise not_supported()
    if service == "ptz" and model.faults.no_ptz:
        raise not_supported("This device has no PTZ unit")
    if request.operation not in PUBLIC_OPERATIONS:
        _authenticate(model, request)
    return handler(model, request)


def _authenticate(model: DeviceModel, request: SoapRequest) -> None:
    if model.faults.wrong_password:
        reason: str | None = "fault wrong_password: every password is wrong"
    else:
        reason = check_token(
            request.token,
            username=model.username,
            password=model.password,
            device_now=model.clock(),
        )
    if reason is not None:
        log.info("sim camera %s: %s refused: %s", model.identity.serial, request.operation, reason)
        raise not_authorized()


# -- device ---------------------------------------------------------------------------------

_TZ_OFFSET = re.compile(r"^[A-Za-z]{3,}([+-]?)(\d{1,2})(?::(\d{2}))?")


def _local_offset(time_zone: str) -> timedelta:
    """The standard-time offset of a POSIX TZ string ("ICT-7" is UTC+7: POSIX signs are west)."""
    match = _TZ_OFFSET.match(time_zone)
    if match is None:
        return timedelta(0)
    sign, hours, minutes = match.groups()
    offset = timedelta(hours=int(hours), minutes=int(minutes or 0))
    return offset if sign == "-" else -offset


def _get_system_date_and_time(model: DeviceModel, _request: SoapRequest) -> str:
    utc = model.clock()
    local = utc + _local_offset(model.time_zone)
    return templates.system_date_and_time(
        ntp=model.ntp, time_zone=model.time_zone, utc=utc, local=local
    )


def _int_field(request: SoapRequest, path: str) -> int:
    text = request.text(path)
    if text is None or not text.lstrip("-").isdigit():
        raise invalid_arg("ter:InvalidDateTime", f"Missing or invalid {path.rsplit(':', 1)[-1]}")
    return int(text)


def _set_system_date_and_time(model: DeviceModel, request: SoapRequest) -> str:
    kind = request.text("tds:DateTimeType")
    if kind not in {"Manual", "NTP"}:
        raise invalid_arg("ter:InvalidDateTime", "DateTimeType must be Manual or NTP")
    time_zone = request.text("tds:TimeZone/tt:TZ")
    if time_zone:
        model.time_zone = time_zone
    model.ntp = kind == "NTP"
    if kind == "Manual":
        when = "tds:UTCDateTime/tt:"
        try:
            utc = datetime(
                _int_field(request, f"{when}Date/tt:Year"),
                _int_field(request, f"{when}Date/tt:Month"),
                _int_field(request, f"{when}Date/tt:Day"),
                _int_field(request, f"{when}Time/tt:Hour"),
                _int_field(request, f"{when}Time/tt:Minute"),
                _int_field(request, f"{when}Time/tt:Second"),
                tzinfo=UTC,
            )
        except ValueError as exc:
            raise invalid_arg("ter:InvalidDateTime", f"Invalid date or time: {exc}") from exc
        model.set_clock(utc)
    return templates.empty("tds", "SetSystemDateAndTime")


def _xaddrs(model: DeviceModel) -> dict[Service, str]:
    found = {service: model.url(path) for service, path in SERVICE_PATHS.items()}
    if model.faults.no_ptz:
        del found["ptz"]
    return found


def _get_capabilities(model: DeviceModel, request: SoapRequest) -> str:
    wanted = set(request.texts("tds:Category")) or {"All"}
    xaddrs = _xaddrs(model)
    known = {"All", "Device", "Media", "PTZ"}
    missing = wanted - known
    if "PTZ" in wanted and "ptz" not in xaddrs:
        missing.add("PTZ")
    if missing:
        raise SoapFaultError(
            "Receiver",
            ("ter:ActionNotSupported", "ter:NoSuchService"),
            f"No such service: {', '.join(sorted(missing))}",
        )

    def pick(category: str, service: Service) -> str | None:
        return xaddrs.get(service) if {"All", category} & wanted else None

    return templates.capabilities(
        device=pick("Device", "device"), media=pick("Media", "media"), ptz=pick("PTZ", "ptz")
    )


_VERSIONS: dict[Service, tuple[int, int]] = {"device": (2, 60), "media": (2, 60), "ptz": (2, 60)}


def _get_services(model: DeviceModel, _request: SoapRequest) -> str:
    entries = [
        (SERVICE_NS[service], xaddr, *_VERSIONS[service])
        for service, xaddr in _xaddrs(model).items()
    ]
    return templates.services(entries)


def _get_device_information(model: DeviceModel, _request: SoapRequest) -> str:
    return templates.device_information(model.identity)


def _system_reboot(model: DeviceModel, _request: SoapRequest) -> str:
    model.reboot_count += 1
    model.ptz.reset()
    return templates.system_reboot("Rebooting in 5 seconds")


# -- media ----------------------------------------------------------------------------------


def _profile_token(request: SoapRequest, prefix: str) -> str:
    token = request.text(f"{prefix}:ProfileToken")
    if token not in {entry.token for entry in templates.PROFILES}:
        raise invalid_arg("ter:NoProfile", f"No profile with token {token!r}")
    return token


def _get_profiles(model: DeviceModel, _request: SoapRequest) -> str:
    faults = model.faults
    return templates.profiles(h265=faults.h265_only, ptz=not faults.no_ptz)


def _get_stream_uri(model: DeviceModel, request: SoapRequest) -> str:
    main = _profile_token(request, "trt") == templates.PROFILES[0].token
    return templates.media_uri("GetStreamUri", model.rtsp_main if main else model.rtsp_sub)


def _get_snapshot_uri(model: DeviceModel, request: SoapRequest) -> str:
    if model.faults.no_snapshot_uri:
        raise not_supported("Snapshots are not supported")
    token = _profile_token(request, "trt")
    return templates.media_uri("GetSnapshotUri", model.url(f"{SNAPSHOT_PATH}?profile={token}"))


# -- PTZ ------------------------------------------------------------------------------------


def _ptz_profile(request: SoapRequest) -> None:
    if _profile_token(request, "tptz") != templates.PROFILES[0].token:
        raise invalid_arg("ter:NoPTZProfile", "This profile has no PTZ configuration")


def _speed(request: SoapRequest, path: str, name: str) -> float:
    text = request.attr(path, name)
    if text is None:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise invalid_arg("ter:InvalidVelocity", f"Invalid speed {text!r}")
    return max(-1.0, min(1.0, value))


_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$")


def _duration_s(text: str | None) -> float | None:
    if not text:
        return None
    match = _DURATION.match(text)
    if match is None or text == "PT":
        raise invalid_arg("ter:InvalidArgVal", f"Unsupported duration {text!r}")
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


def _continuous_move(model: DeviceModel, request: SoapRequest) -> str:
    _ptz_profile(request)
    velocity = PtzVelocity(
        _speed(request, "tptz:Velocity/tt:PanTilt", "x"),
        _speed(request, "tptz:Velocity/tt:PanTilt", "y"),
        _speed(request, "tptz:Velocity/tt:Zoom", "x"),
    )
    model.ptz.move(velocity, _duration_s(request.text("tptz:Timeout")))
    return templates.empty("tptz", "ContinuousMove")


def _flag(request: SoapRequest, path: str) -> bool:
    return request.text(path) in {None, "true", "1"}


def _stop(model: DeviceModel, request: SoapRequest) -> str:
    _ptz_profile(request)
    model.ptz.stop(pan_tilt=_flag(request, "tptz:PanTilt"), zoom=_flag(request, "tptz:Zoom"))
    return templates.empty("tptz", "Stop")


def _get_presets(model: DeviceModel, request: SoapRequest) -> str:
    _ptz_profile(request)
    return templates.presets(model.ptz.presets)


def _set_preset(model: DeviceModel, request: SoapRequest) -> str:
    _ptz_profile(request)
    presets = model.ptz.presets
    name = request.text("tptz:PresetName")
    token = request.text("tptz:PresetToken") or None
    if token is not None and token not in presets:
        raise invalid_arg("ter:NoToken", f"No preset with token {token!r}")
    if name and any(p.name == name and t != token for t, p in presets.items()):
        raise invalid_arg("ter:PresetExist", f"A preset named {name!r} exists")
    if token is None and len(presets) >= model.ptz.max_presets:
        raise SoapFaultError("Receiver", ("ter:Action", "ter:TooManyPresets"), "Too many presets")
    return templates.set_preset(model.ptz.set_preset(name, token))


def _preset_token(model: DeviceModel, request: SoapRequest) -> str:
    _ptz_profile(request)
    token = request.text("tptz:PresetToken")
    if token is None or token not in model.ptz.presets:
        raise invalid_arg("ter:NoToken", f"No preset with token {token!r}")
    return token


def _goto_preset(model: DeviceModel, request: SoapRequest) -> str:
    token = _preset_token(model, request)
    model.ptz.goto(model.ptz.presets[token].position)
    return templates.empty("tptz", "GotoPreset")


def _remove_preset(model: DeviceModel, request: SoapRequest) -> str:
    del model.ptz.presets[_preset_token(model, request)]
    return templates.empty("tptz", "RemovePreset")


def _get_status(model: DeviceModel, request: SoapRequest) -> str:
    _ptz_profile(request)
    ptz = model.ptz
    return templates.ptz_status(ptz.position(), moving=ptz.moving, utc=model.clock())


def _get_nodes(model: DeviceModel, _request: SoapRequest) -> str:
    return templates.ptz_nodes(model.ptz.max_presets)


def _get_configurations(_model: DeviceModel, _request: SoapRequest) -> str:
    return templates.ptz_configurations()


HANDLERS: dict[Service, dict[str, Handler]] = {
    "device": {
        "GetSystemDateAndTime": _get_system_date_and_time,
        "SetSystemDateAndTime": _set_system_date_and_time,
        "GetCapabilities": _get_capabilities,
        "GetServices": _get_services,
        "GetDeviceInformation": _get_device_information,
        "SystemReboot": _system_reboot,
    },
    "media": {
        "GetProfiles": _get_profiles,
        "GetStreamUri": _get_stream_uri,
        "GetSnapshotUri": _get_snapshot_uri,
    },
    "ptz": {
        "ContinuousMove": _continuous_move,
        "Stop": _stop,
        "GetPresets": _get_presets,
        "SetPreset": _set_preset,
        "GotoPreset": _goto_preset,
        "RemovePreset": _remove_preset,
        "GetStatus": _get_status,
        "GetNodes": _get_nodes,
        "GetConfigurations": _get_configurations,
    },
}
