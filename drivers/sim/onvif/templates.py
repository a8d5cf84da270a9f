"""Response bodies, written as the ONVIF schemas (ver10 device/media, ver20 PTZ) order them.

The element order follows the XSD sequences: zeep reads them positionally, and a
strict client rejects anything out of place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from drivers.sim.onvif.soap import xml_text as x
from drivers.sim.onvif.state import CameraIdentity, Preset, PtzPosition

_SPACES = "http://www.onvif.org/ver10/tptz"
PAN_TILT_POSITION = f"{_SPACES}/PanTiltSpaces/PositionGenericSpace"
ZOOM_POSITION = f"{_SPACES}/ZoomSpaces/PositionGenericSpace"
PAN_TILT_VELOCITY = f"{_SPACES}/PanTiltSpaces/VelocityGenericSpace"
ZOOM_VELOCITY = f"{_SPACES}/ZoomSpaces/VelocityGenericSpace"
PTZ_NODE = "ptz_node_0"
PTZ_CONFIG = "ptz_config_0"


@dataclass(frozen=True)
class StreamProfile:
    token: str
    name: str
    width: int
    height: int
    bitrate_kbps: int


PROFILES = (
    StreamProfile("main", "MainStream", 1280, 720, 2048),
    StreamProfile("sub", "SubStream", 640, 360, 512),
)
FRAME_RATE = 15


def _date_time(tag: str, when: datetime) -> str:
    return (
        f"<tt:{tag}><tt:Time><tt:Hour>{when.hour}</tt:Hour><tt:Minute>{when.minute}</tt:Minute>"
        f"<tt:Second>{when.second}</tt:Second></tt:Time><tt:Date><tt:Year>{when.year}</tt:Year>"
        f"<tt:Month>{when.month}</tt:Month><tt:Day>{when.day}</tt:Day></tt:Date></tt:{tag}>"
    )


def system_date_and_time(*, ntp: bool, time_zone: str, utc: datetime, local: datetime) -> str:
    return (
        "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
        f"<tt:DateTimeType>{'NTP' if ntp else 'Manual'}</tt:DateTimeType>"
        "<tt:DaylightSavings>false</tt:DaylightSavings>"
        f"<tt:TimeZone><tt:TZ>{x(time_zone)}</tt:TZ></tt:TimeZone>"
        f"{_date_time('UTCDateTime', utc)}{_date_time('LocalDateTime', local)}"
        "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
    )


def capabilities(*, device: str | None, media: str | None, ptz: str | None) -> str:
    parts = []
    if device is not None:
        parts.append(f"<tt:Device><tt:XAddr>{x(device)}</tt:XAddr></tt:Device>")
    if media is not None:
        parts.append(
            f"<tt:Media><tt:XAddr>{x(media)}</tt:XAddr><tt:StreamingCapabilities>"
            "<tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP>"
            "<tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>"
        )
    if ptz is not None:
        parts.append(f"<tt:PTZ><tt:XAddr>{x(ptz)}</tt:XAddr></tt:PTZ>")
    return (
        "<tds:GetCapabilitiesResponse><tds:Capabilities>"
        f"{''.join(parts)}</tds:Capabilities></tds:GetCapabilitiesResponse>"
    )


def services(entries: list[tuple[str, str, int, int]]) -> str:
    """(namespace, xaddr, major, minor) per service."""
    body = "".join(
        f"<tds:Service><tds:Namespace>{x(namespace)}</tds:Namespace>"
        f"<tds:XAddr>{x(xaddr)}</tds:XAddr><tds:Version><tt:Major>{major}</tt:Major>"
        f"<tt:Minor>{minor}</tt:Minor></tds:Version></tds:Service>"
        for namespace, xaddr, major, minor in entries
    )
    return f"<tds:GetServicesResponse>{body}</tds:GetServicesResponse>"


def device_information(identity: CameraIdentity) -> str:
    return (
        "<tds:GetDeviceInformationResponse>"
        f"<tds:Manufacturer>{x(identity.manufacturer)}</tds:Manufacturer>"
        f"<tds:Model>{x(identity.model)}</tds:Model>"
        f"<tds:FirmwareVersion>{x(identity.firmware)}</tds:FirmwareVersion>"
        f"<tds:SerialNumber>{x(identity.serial)}</tds:SerialNumber>"
        f"<tds:HardwareId>{x(identity.hardware_id)}</tds:HardwareId>"
        "</tds:GetDeviceInformationResponse>"
    )


def system_reboot(message: str) -> str:
    return (
        f"<tds:SystemRebootResponse><tds:Message>{x(message)}</tds:Message>"
        "</tds:SystemRebootResponse>"
    )


def empty(prefix: str, operation: str) -> str:
    return f"<{prefix}:{operation}Response/>"


def _space2d(tag: str, uri: str) -> str:
    return (
        f"<tt:{tag}><tt:URI>{uri}</tt:URI><tt:XRange><tt:Min>-1</tt:Min><tt:Max>1</tt:Max></tt:XRange>"
        f"<tt:YRange><tt:Min>-1</tt:Min><tt:Max>1</tt:Max></tt:YRange></tt:{tag}>"
    )


def _space1d(tag: str, uri: str, low: int) -> str:
    return (
        f"<tt:{tag}><tt:URI>{uri}</tt:URI><tt:XRange><tt:Min>{low}</tt:Min>"
        f"<tt:Max>1</tt:Max></tt:XRange></tt:{tag}>"
    )


def ptz_configuration(tag: str) -> str:
    return (
        f'<{tag} token="{PTZ_CONFIG}"><tt:Name>PTZ</tt:Name><tt:UseCount>1</tt:UseCount>'
        f"<tt:NodeToken>{PTZ_NODE}</tt:NodeToken>"
        f"<tt:DefaultAbsolutePantTiltPositionSpace>{PAN_TILT_POSITION}"
        "</tt:DefaultAbsolutePantTiltPositionSpace>"
        f"<tt:DefaultAbsoluteZoomPositionSpace>{ZOOM_POSITION}</tt:DefaultAbsoluteZoomPositionSpace>"
        f"<tt:DefaultContinuousPanTiltVelocitySpace>{PAN_TILT_VELOCITY}"
        "</tt:DefaultContinuousPanTiltVelocitySpace>"
        f"<tt:DefaultContinuousZoomVelocitySpace>{ZOOM_VELOCITY}"
        "</tt:DefaultContinuousZoomVelocitySpace>"
        "<tt:DefaultPTZTimeout>PT5S</tt:DefaultPTZTimeout>"
        f"<tt:PanTiltLimits>{_space2d('Range', PAN_TILT_POSITION)}</tt:PanTiltLimits>"
        f"<tt:ZoomLimits>{_space1d('Range', ZOOM_POSITION, 0)}</tt:ZoomLimits>"
        f"</{tag}>"
    )


def _video_encoder(profile: StreamProfile, *, h265: bool) -> str:
    h264 = (
        ""
        if h265
        else "<tt:H264><tt:GovLength>30</tt:GovLength>"
        "<tt:H264Profile>Main</tt:H264Profile></tt:H264>"
    )
    return (
        f'<tt:VideoEncoderConfiguration token="vec_{profile.token}">'
        f"<tt:Name>{profile.name}</tt:Name><tt:UseCount>1</tt:UseCount>"
        # ver10 media's enumeration knows JPEG/MPEG4/H264 only; H.265 cameras still say H265.
        f"<tt:Encoding>{'H265' if h265 else 'H264'}</tt:Encoding>"
        f"<tt:Resolution><tt:Width>{profile.width}</tt:Width>"
        f"<tt:Height>{profile.height}</tt:Height></tt:Resolution>"
        "<tt:Quality>4</tt:Quality>"
        f"<tt:RateControl><tt:FrameRateLimit>{FRAME_RATE}</tt:FrameRateLimit>"
        "<tt:EncodingInterval>1</tt:EncodingInterval>"
        f"<tt:BitrateLimit>{profile.bitrate_kbps}</tt:BitrateLimit></tt:RateControl>{h264}"
        "<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address>"
        "</tt:Address><tt:Port>0</tt:Port><tt:TTL>1</tt:TTL><tt:AutoStart>false</tt:AutoStart>"
        "</tt:Multicast><tt:SessionTimeout>PT60S</tt:SessionTimeout>"
        "</tt:VideoEncoderConfiguration>"
    )


def profile(profile: StreamProfile, *, h265: bool, ptz: bool) -> str:
    main = PROFILES[0]
    ptz_config = ptz_configuration("tt:PTZConfiguration") if ptz else ""
    return (
        f'<trt:Profiles token="{profile.token}" fixed="true"><tt:Name>{profile.name}</tt:Name>'
        '<tt:VideoSourceConfiguration token="vsc_0"><tt:Name>VideoSource</tt:Name>'
        f"<tt:UseCount>{len(PROFILES)}</tt:UseCount><tt:SourceToken>video_source_0</tt:SourceToken>"
        f'<tt:Bounds x="0" y="0" width="{main.width}" height="{main.height}"/>'
        f"</tt:VideoSourceConfiguration>{_video_encoder(profile, h265=h265)}{ptz_config}"
        "</trt:Profiles>"
    )


def profiles(*, h265: bool, ptz: bool) -> str:
    body = "".join(
        # PTZ is configured on the main profile only, as on many counter cameras.
        profile(entry, h265=h265, ptz=ptz and entry is PROFILES[0])
        for entry in PROFILES
    )
    return f"<trt:GetProfilesResponse>{body}</trt:GetProfilesResponse>"


def media_uri(operation: str, uri: str) -> str:
    return (
        f"<trt:{operation}Response><trt:MediaUri><tt:Uri>{x(uri)}</tt:Uri>"
        "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
        "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
        f"<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:{operation}Response>"
    )


def _ptz_vector(tag: str, position: PtzPosition) -> str:
    return (
        f'<tt:{tag}><tt:PanTilt x="{position.pan:.6f}" y="{position.tilt:.6f}" '
        f'space="{PAN_TILT_POSITION}"/>'
        f'<tt:Zoom x="{position.zoom:.6f}" space="{ZOOM_POSITION}"/></tt:{tag}>'
    )


def presets(entries: dict[str, Preset]) -> str:
    body = "".join(
        f'<tptz:Preset token="{x(token)}"><tt:Name>{x(preset.name)}</tt:Name>'
        f"{_ptz_vector('PTZPosition', preset.position)}</tptz:Preset>"
        for token, preset in entries.items()
    )
    return f"<tptz:GetPresetsResponse>{body}</tptz:GetPresetsResponse>"


def set_preset(token: str) -> str:
    return (
        f"<tptz:SetPresetResponse><tptz:PresetToken>{x(token)}</tptz:PresetToken>"
        "</tptz:SetPresetResponse>"
    )


def ptz_status(position: PtzPosition, *, moving: bool, utc: datetime) -> str:
    state = "MOVING" if moving else "IDLE"
    return (
        f"<tptz:GetStatusResponse><tptz:PTZStatus>{_ptz_vector('Position', position)}"
        f"<tt:MoveStatus><tt:PanTilt>{state}</tt:PanTilt><tt:Zoom>{state}</tt:Zoom></tt:MoveStatus>"
        f"<tt:UtcTime>{utc.strftime('%Y-%m-%dT%H:%M:%SZ')}</tt:UtcTime>"
        "</tptz:PTZStatus></tptz:GetStatusResponse>"
    )


def ptz_nodes(max_presets: int) -> str:
    spaces = (
        _space2d("AbsolutePanTiltPositionSpace", PAN_TILT_POSITION)
        + _space1d("AbsoluteZoomPositionSpace", ZOOM_POSITION, 0)
        + _space2d("ContinuousPanTiltVelocitySpace", PAN_TILT_VELOCITY)
        + _space1d("ContinuousZoomVelocitySpace", ZOOM_VELOCITY, -1)
    )
    return (
        f'<tptz:GetNodesResponse><tptz:PTZNode token="{PTZ_NODE}" FixedHomePosition="false">'
        f"<tt:Name>PTZ</tt:Name><tt:SupportedPTZSpaces>{spaces}</tt:SupportedPTZSpaces>"
        f"<tt:MaximumNumberOfPresets>{max_presets}</tt:MaximumNumberOfPresets>"
        "<tt:HomeSupported>false</tt:HomeSupported></tptz:PTZNode>"
        "</tptz:GetNodesResponse>"
    )


def ptz_configurations() -> str:
    return (
        "<tptz:GetConfigurationsResponse>"
        f"{ptz_configuration('tptz:PTZConfiguration')}</tptz:GetConfigurationsResponse>"
    )
