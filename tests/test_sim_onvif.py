"""The simulated ONVIF camera, driven by the real onvif-zeep-async client over real sockets."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import cv2
import httpx
import numpy as np
import pytest
import zeep.exceptions
from lxml import etree
from onvif import ONVIFCamera, ONVIFError

from drivers.sim.onvif import CameraIdentity, PtzPosition, PtzVelocity, SimulatedOnvifCamera
from drivers.sim.onvif.snapshot import HttpAuth, Verdict
from drivers.sim.onvif.state import PtzHead

USER = "admin"
PASSWORD = "Mot-Cua-2024"
RTSP_MAIN = "rtsp://127.0.0.1:8554/cam1/main"
RTSP_SUB = "rtsp://127.0.0.1:8554/cam1/sub"
PTZ_NS = "http://www.onvif.org/ver20/ptz/wsdl"
MEDIA_NS = "http://www.onvif.org/ver10/media/wsdl"
DEVICE_NS = "http://www.onvif.org/ver10/device/wsdl"
TER = "http://www.onvif.org/ver10/error"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
STREAM_SETUP = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}


@pytest.fixture
async def camera() -> AsyncIterator[SimulatedOnvifCamera]:
    cam = SimulatedOnvifCamera(
        username=USER,
        password=PASSWORD,
        rtsp_main=RTSP_MAIN,
        rtsp_sub=RTSP_SUB,
        identity=CameraIdentity(serial="SIM-0001"),
    )
    await cam.start()
    try:
        yield cam
    finally:
        await cam.stop()


@asynccontextmanager
async def onvif_client(
    cam: SimulatedOnvifCamera, *, adjust_time: bool = True, password: str = PASSWORD
) -> AsyncIterator[ONVIFCamera]:
    # ONVIFCamera opens aiohttp sessions in __init__: build it in the loop, always close it.
    client = ONVIFCamera(cam.host, cam.port, USER, password, adjust_time=adjust_time, no_cache=True)
    try:
        yield client
    finally:
        await client.close()


def subcodes(fault: zeep.exceptions.Fault) -> list[str]:
    return [etree.QName(code).localname for code in fault.subcodes or []]


def decoded_size(jpeg: bytes) -> tuple[int, int]:
    image = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    height, width = image.shape[:2]
    return width, height


def soap12(operation: str, namespace: str = DEVICE_NS) -> bytes:
    return (
        f'<s:Envelope xmlns:s="{SOAP12}"><s:Body>'
        f'<{operation} xmlns="{namespace}"/></s:Body></s:Envelope>'
    ).encode()


def fault_subcode(body: bytes) -> str | None:
    root = etree.fromstring(body)
    return root.findtext(".//s:Fault/s:Code/s:Subcode/s:Value", namespaces={"s": SOAP12})


async def test_a_healthy_camera_answers_like_a_real_one(camera: SimulatedOnvifCamera) -> None:
    async with onvif_client(camera) as client:
        await client.update_xaddrs()
        base = f"http://127.0.0.1:{camera.port}/onvif"
        assert client.xaddrs == {
            DEVICE_NS: f"{base}/device_service",
            MEDIA_NS: f"{base}/media_service",
            PTZ_NS: f"{base}/ptz_service",
        }
        capabilities = await client.get_capabilities()
        assert capabilities is not None
        assert capabilities["PTZ"]["XAddr"] == f"{base}/ptz_service"

        device = await client.create_devicemgmt_service()
        info = await device.GetDeviceInformation()
        fields = ("Manufacturer", "Model", "FirmwareVersion", "SerialNumber", "HardwareId")
        expected = ["loacam-sim", "SimCam 2", "1.0", "SIM-0001", "sim"]
        assert [getattr(info, name) for name in fields] == expected

        media = await client.create_media_service()
        profiles = await media.GetProfiles()
        assert [profile.token for profile in profiles] == ["main", "sub"]
        encoders = [profile.VideoEncoderConfiguration for profile in profiles]
        sizes = [(e.Resolution.Width, e.Resolution.Height) for e in encoders]
        assert sizes == [(1280, 720), (640, 360)]
        assert [e.Encoding for e in encoders] == ["H264", "H264"]
        assert [e.RateControl.FrameRateLimit for e in encoders] == [15, 15]
        assert profiles[0].PTZConfiguration.NodeToken == "ptz_node_0"
        assert profiles[1].PTZConfiguration is None

        uris = {}
        for token in ("main", "sub"):
            reply = await media.GetStreamUri({"ProfileToken": token, "StreamSetup": STREAM_SETUP})
            assert reply.InvalidAfterConnect is False
            assert reply.Timeout == dt.timedelta(0)
            uris[token] = reply.Uri
        assert uris == {"main": RTSP_MAIN, "sub": RTSP_SUB}
        assert await client.get_snapshot_uri("main") == f"{base}/snapshot.jpg?profile=main"

        # The library's own snapshot path (aiohttp's DigestAuthMiddleware).
        jpeg = await client.get_snapshot("main")
        assert jpeg is not None
        assert decoded_size(jpeg) == (1280, 720)
    assert camera.requests["GetProfiles"] == 1
    assert camera.requests["snapshot"] == 2  # the Digest challenge, then the authorised GET


@pytest.mark.parametrize(
    ("auth", "profile", "size"),
    [
        (httpx.BasicAuth(USER, PASSWORD), "main", (1280, 720)),
        (httpx.DigestAuth(USER, PASSWORD), "main", (1280, 720)),
        (httpx.DigestAuth(USER, PASSWORD), "sub", (640, 360)),
    ],
    ids=["basic-main", "digest-main", "digest-sub"],
)
async def test_snapshots_are_real_jpegs_behind_basic_or_digest(
    camera: SimulatedOnvifCamera, auth: httpx.Auth, profile: str, size: tuple[int, int]
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        anonymous = await http.get(camera.snapshot_url(profile))
        response = await http.get(camera.snapshot_url(profile), auth=auth)
    assert anonymous.status_code == 401
    challenges = anonymous.headers.get_list("www-authenticate")
    assert [c.split()[0] for c in challenges] == ["Digest", "Basic"]
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert decoded_size(response.content) == size


async def test_a_digest_only_snapshot_refuses_basic(camera: SimulatedOnvifCamera) -> None:
    camera.faults.snapshot_digest_only = True
    async with httpx.AsyncClient(timeout=10) as http:
        basic = await http.get(camera.snapshot_url(), auth=httpx.BasicAuth(USER, PASSWORD))
        digest = await http.get(camera.snapshot_url(), auth=httpx.DigestAuth(USER, PASSWORD))
        wrong = await http.get(camera.snapshot_url(), auth=httpx.DigestAuth(USER, "nope"))
    assert basic.status_code == 401
    assert [c.split()[0] for c in basic.headers.get_list("www-authenticate")] == ["Digest"]
    assert digest.status_code == 200
    assert decoded_size(digest.content) == (1280, 720)
    assert wrong.status_code == 401


def test_digest_nonces_expire_and_cannot_be_forged() -> None:
    auth = HttpAuth()
    old_stamp = f"{dt.datetime.now(dt.UTC).timestamp() - 3600:.3f}"
    stale = f"{old_stamp}-{auth._sign(old_stamp)}"
    assert auth._nonce_verdict(stale) is Verdict.STALE
    forged = f"{old_stamp}-{'0' * 32}"
    assert auth._nonce_verdict(forged) is Verdict.DENIED
    assert auth._nonce_verdict(auth.new_nonce()) is Verdict.OK


async def test_ptz_moves_and_presets_round_trip(camera: SimulatedOnvifCamera) -> None:
    async with onvif_client(camera) as client:
        await client.update_xaddrs()
        ptz = await client.create_ptz_service()
        velocity = {"PanTilt": {"x": 0.5, "y": -0.25}, "Zoom": {"x": 0.0}}
        await ptz.ContinuousMove({"ProfileToken": "main", "Velocity": velocity})
        assert camera.last_move == PtzVelocity(0.5, -0.25, 0.0)
        assert camera.ptz_moving
        await ptz.Stop({"ProfileToken": "main"})
        assert not camera.ptz_moving
        stopped = camera.ptz_position
        assert stopped.pan > 0 > stopped.tilt
        assert camera.ptz_position == stopped  # it stays where it stopped

        reply = await ptz.SetPreset({"ProfileToken": "main", "PresetName": "Quầy 1"})
        token = str(reply)
        assert camera.presets[token].position == stopped
        await ptz.ContinuousMove({"ProfileToken": "main", "Velocity": velocity})
        await ptz.Stop({"ProfileToken": "main"})
        assert camera.ptz_position != stopped

        presets = await ptz.GetPresets({"ProfileToken": "main"})
        assert [(p.token, p.Name) for p in presets] == [(token, "Quầy 1")]
        assert presets[0].PTZPosition.PanTilt.x == pytest.approx(stopped.pan, abs=1e-6)
        await ptz.GotoPreset({"ProfileToken": "main", "PresetToken": token})
        assert camera.ptz_position == stopped
        status = await ptz.GetStatus({"ProfileToken": "main"})
        assert status.MoveStatus.PanTilt == "IDLE"

        with pytest.raises(zeep.exceptions.Fault) as unknown:
            await ptz.GotoPreset({"ProfileToken": "main", "PresetToken": "99"})
        assert subcodes(unknown.value) == ["InvalidArgVal", "NoToken"]
        with pytest.raises(zeep.exceptions.Fault) as sub:
            await ptz.GetPresets({"ProfileToken": "sub"})
        assert subcodes(sub.value) == ["InvalidArgVal", "NoPTZProfile"]


def test_the_ptz_head_moves_with_time_until_stopped_timed_out_or_at_a_limit() -> None:
    now = [100.0]
    head = PtzHead(monotonic=lambda: now[0])
    head.move(PtzVelocity(0.5, -1.0, 0.25), timeout_s=None)
    now[0] += 1.0
    assert head.position() == PtzPosition(0.5, -1.0, 0.25)
    now[0] += 10.0  # pan and tilt stop at the end of their range, zoom at 1
    assert head.position() == PtzPosition(1.0, -1.0, 1.0)
    head.goto(PtzPosition(0.0, 0.0, 0.0))
    head.move(PtzVelocity(0.1, 0.0, 0.0), timeout_s=2.0)
    now[0] += 5.0
    assert head.position().pan == pytest.approx(0.2)
    assert not head.moving


async def test_a_skewed_clock_needs_adjusted_timestamps_until_synced(
    camera: SimulatedOnvifCamera,
) -> None:
    camera.faults.clock_skew_s = 3600
    assert camera.clock() - dt.datetime.now(dt.UTC) > dt.timedelta(minutes=59)
    async with onvif_client(camera, adjust_time=False) as naive:
        with pytest.raises(zeep.exceptions.Fault) as refused:
            await naive.update_xaddrs()
    assert subcodes(refused.value) == ["NotAuthorized"]
    assert refused.value.code.endswith("Sender")

    async with onvif_client(camera, adjust_time=True) as adjusted:
        await adjusted.update_xaddrs()
        assert adjusted.dt_diff is not None
        assert adjusted.dt_diff > dt.timedelta(minutes=59)
        device = await adjusted.create_devicemgmt_service()
        now = dt.datetime.now(dt.UTC)
        await device.SetSystemDateAndTime(
            {
                "DateTimeType": "Manual",
                "DaylightSavings": False,
                "TimeZone": {"TZ": "ICT-7"},
                "UTCDateTime": {
                    "Date": {"Year": now.year, "Month": now.month, "Day": now.day},
                    "Time": {"Hour": now.hour, "Minute": now.minute, "Second": now.second},
                },
            }
        )
        assert abs(camera.clock() - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=2)
        # The client's offset is now an hour wrong: it must measure the clock again.
        with pytest.raises(zeep.exceptions.Fault):
            await device.GetDeviceInformation()

    async with onvif_client(camera, adjust_time=False) as naive:
        await naive.update_xaddrs()
        device = await naive.create_devicemgmt_service()
        reported = await device.GetSystemDateAndTime()
        assert reported.DateTimeType == "Manual"
        assert reported.TimeZone.TZ == "ICT-7"
        assert (reported.LocalDateTime.Time.Hour - reported.UTCDateTime.Time.Hour) % 24 == 7


async def test_wrong_password_is_a_not_authorized_fault(camera: SimulatedOnvifCamera) -> None:
    async with onvif_client(camera, password="wrong") as client:
        with pytest.raises(zeep.exceptions.Fault) as refused:
            await client.update_xaddrs()
        assert subcodes(refused.value) == ["NotAuthorized"]

    camera.faults.wrong_password = True
    async with onvif_client(camera) as client:
        device = await client.create_devicemgmt_service()
        # The clock stays readable without credentials, as on real cameras.
        assert (await device.GetSystemDateAndTime()).UTCDateTime is not None
        with pytest.raises(zeep.exceptions.Fault) as refused:
            await device.GetDeviceInformation()
        assert subcodes(refused.value) == ["NotAuthorized"]
        async with httpx.AsyncClient(timeout=10) as http:
            snapshot = await http.get(camera.snapshot_url(), auth=httpx.DigestAuth(USER, PASSWORD))
        assert snapshot.status_code == 401

        camera.faults.wrong_password = False
        assert (await device.GetDeviceInformation()).SerialNumber == "SIM-0001"


async def test_plain_text_passwords_and_missing_tokens(camera: SimulatedOnvifCamera) -> None:
    client = ONVIFCamera(camera.host, camera.port, USER, PASSWORD, encrypt=False, no_cache=True)
    try:
        device = await client.create_devicemgmt_service()
        assert (await device.GetDeviceInformation()).SerialNumber == "SIM-0001"
    finally:
        await client.close()
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            camera.device_url,
            content=soap12("GetDeviceInformation"),
            headers={"content-type": "application/soap+xml; charset=utf-8"},
        )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/soap+xml")
    assert fault_subcode(response.content) == "ter:NotAuthorized"


async def test_without_ptz_nothing_is_advertised_and_ptz_calls_fault(
    camera: SimulatedOnvifCamera,
) -> None:
    camera.faults.no_ptz = True
    async with onvif_client(camera) as client:
        await client.update_xaddrs()
        assert PTZ_NS not in client.xaddrs
        capabilities = await client.get_capabilities()
        assert capabilities is not None
        assert capabilities["PTZ"] is None
        with pytest.raises(ONVIFError):
            await client.create_ptz_service()
        media = await client.create_media_service()
        assert all(p.PTZConfiguration is None for p in await media.GetProfiles())

        # A client that calls PTZ anyway gets a fault, not a hang or an HTML page.
        client.xaddrs[PTZ_NS] = f"http://127.0.0.1:{camera.port}/onvif/ptz_service"
        ptz = await client.create_ptz_service()
        with pytest.raises(zeep.exceptions.Fault) as refused:
            await ptz.GetPresets({"ProfileToken": "main"})
    assert subcodes(refused.value) == ["ActionNotSupported"]


async def test_no_snapshot_uri_and_h265_only(camera: SimulatedOnvifCamera) -> None:
    camera.faults.no_snapshot_uri = True
    camera.faults.h265_only = True
    async with onvif_client(camera) as client:
        await client.update_xaddrs()
        media = await client.create_media_service()
        with pytest.raises(zeep.exceptions.Fault) as refused:
            await media.GetSnapshotUri({"ProfileToken": "main"})
        assert subcodes(refused.value) == ["ActionNotSupported"]
        assert await client.get_snapshot_uri("main") is None  # the library swallows the fault
        encodings = [p.VideoEncoderConfiguration.Encoding for p in await media.GetProfiles()]
        assert encodings == ["H265", "H265"]


async def test_slow_replies_exceed_a_client_timeout(camera: SimulatedOnvifCamera) -> None:
    async with onvif_client(camera) as client:
        await client.update_xaddrs()
        device = await client.create_devicemgmt_service()
        camera.faults.soap_delay_s = 1.5
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(device.GetDeviceInformation(), 0.3)
        async with httpx.AsyncClient() as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.post(
                    camera.device_url, content=soap12("GetSystemDateAndTime"), timeout=0.3
                )
        # The library's own read timeout (whole seconds) also surfaces as a TimeoutError.
        fresh = ONVIFCamera(camera.host, camera.port, USER, PASSWORD, no_cache=True)
        try:
            impatient = await fresh.create_onvif_service("devicemgmt", read_timeout=1)
            with pytest.raises(TimeoutError, match="timed out"):
                await impatient.GetDeviceInformation()
        finally:
            await fresh.close()
        camera.faults.soap_delay_s = 0.0
        assert (await device.GetDeviceInformation()).SerialNumber == "SIM-0001"


async def test_a_stopped_camera_refuses_connections_then_comes_back(
    camera: SimulatedOnvifCamera,
) -> None:
    async with onvif_client(camera) as client:
        await client.update_xaddrs()
        device = await client.create_devicemgmt_service()
        assert (await device.GetDeviceInformation()).SerialNumber == "SIM-0001"
        await camera.stop()
        assert not camera.running
        with pytest.raises(aiohttp.ClientConnectorError) as refused:
            await device.GetDeviceInformation()
        assert isinstance(refused.value.os_error, ConnectionRefusedError)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((camera.host, camera.port), timeout=2).close()
        await camera.start()
        assert (await device.GetDeviceInformation()).SerialNumber == "SIM-0001"


async def test_malformed_and_unknown_requests_get_faults(camera: SimulatedOnvifCamera) -> None:
    soap11 = (
        b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
        b'<GetSystemDateAndTime xmlns="http://www.onvif.org/ver10/device/wsdl"/>'
        b"</e:Body></e:Envelope>"
    )
    async with httpx.AsyncClient(timeout=10) as http:
        garbage = await http.post(camera.device_url, content=b"<not xml")
        empty_body = await http.post(camera.device_url, content=b"")
        unknown = await http.post(camera.device_url, content=soap12("GetHostname"))
        wrong_service = await http.post(camera.device_url, content=soap12("GetProfiles", MEDIA_NS))
        old_soap = await http.post(
            camera.device_url, content=soap11, headers={"content-type": "text/xml"}
        )
    assert (garbage.status_code, fault_subcode(garbage.content)) == (400, "ter:WellFormed")
    assert (empty_body.status_code, fault_subcode(empty_body.content)) == (400, "ter:WellFormed")
    assert (unknown.status_code, fault_subcode(unknown.content)) == (
        500,
        "ter:ActionNotSupported",
    )
    assert fault_subcode(wrong_service.content) == "ter:ActionNotSupported"
    assert old_soap.status_code == 200
    assert old_soap.headers["content-type"].startswith("text/xml")
    assert b"GetSystemDateAndTimeResponse" in old_soap.content


async def test_entities_in_requests_are_never_expanded(
    camera: SimulatedOnvifCamera, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET", encoding="utf-8")
    xxe = (
        f'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY xxe SYSTEM "file://{secret}">'
        '<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        f'<s:Envelope xmlns:s="{SOAP12}"><s:Header><Security xmlns="{WSSE}"><UsernameToken>'
        f"<Username>{USER}</Username><Password>{PASSWORD}</Password></UsernameToken></Security>"
        f'</s:Header><s:Body><SetPreset xmlns="{PTZ_NS}"><ProfileToken>main</ProfileToken>'
        "<PresetName>&xxe;&b;</PresetName></SetPreset></s:Body></s:Envelope>"
    )
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(camera.device_url.replace("device", "ptz"), content=xxe)
    assert response.status_code == 200
    [preset] = camera.presets.values()
    assert "TOP-SECRET" not in preset.name
    assert "aaaaaaaaaa" not in preset.name


async def test_reboot_is_counted(camera: SimulatedOnvifCamera) -> None:
    async with onvif_client(camera) as client:
        await client.update_xaddrs()
        device = await client.create_devicemgmt_service()
        assert "Rebooting" in await device.SystemReboot()
    assert camera.reboot_count == 1
    assert camera.requests["SystemReboot"] == 1
