"""Cameras end to end in one process: API → manager → ONVIF driver → simulated camera (real SOAP
over HTTP, real RTSP from GStreamer), with the state seen on MQTT."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from daemon.auth import Role
from drivers.camera import discovery
from drivers.sim.broker import PrivateBroker
from drivers.sim.onvif import CameraFaults
from drivers.sim.rtsp import SimulatedRtsp
from tests.camera_rig import CAMERA_PASSWORD, camera_rig, camera_yaml, simulated


@pytest.fixture(scope="module")
def rtsp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedRtsp]:
    """One real RTSP server (main 1280x720, sub 640x360) behind every simulated camera."""
    with SimulatedRtsp(label="rig") as server:
        yield server


def decode(jpeg: bytes) -> tuple[int, int]:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    height, width = image.shape[:2]
    return width, height


async def test_healthy_camera_online_with_profiles_uris_snapshot_and_ptz(
    tmp_path: Path, broker: PrivateBroker, rtsp: SimulatedRtsp
) -> None:
    sim = simulated(rtsp)
    async with camera_rig(tmp_path, broker.port, {"cam": sim}, [camera_yaml("cam", sim)]) as rig:
        await rig.wait_status("cam", "online")
        listed = (await rig.as_role(Role.LEADER, "GET", "/api/v1/cameras")).json()
        assert [(c["id"], c["status"]) for c in listed] == [("cam", "online")]

        detail = (await rig.as_role(Role.TECHNICIAN, "GET", "/api/v1/cameras/cam")).json()
        sizes = {(p["encoding"], p["width"], p["height"]) for p in detail["profiles"]}
        assert sizes == {("H264", 1280, 720), ("H264", 640, 360)}
        uris = {p["stream_uri"] for p in detail["profiles"]}
        assert uris == {rtsp.url("main"), rtsp.url("sub")}
        assert detail["device"]["serial"] == "SIM-1"
        assert detail["ptz"] is True

        for stream, size in (("main", (1280, 720)), ("sub", (640, 360))):
            shot = await rig.as_role(
                Role.LEADER, "GET", f"/api/v1/cameras/cam/snapshot.jpg?stream={stream}"
            )
            assert shot.status_code == 200
            assert shot.headers["content-type"] == "image/jpeg"
            assert decode(shot.content) == size

        move = {"pan": 0.5, "tilt": -0.25, "zoom": 0.0}
        assert (
            await rig.as_role(Role.TECHNICIAN, "POST", "/api/v1/cameras/cam/ptz/move", json=move)
        ).status_code == 204
        assert sim.last_move is not None
        assert (
            await rig.as_role(Role.TECHNICIAN, "POST", "/api/v1/cameras/cam/ptz/stop")
        ).status_code == 204
        saved = await rig.as_role(
            Role.TECHNICIAN, "POST", "/api/v1/cameras/cam/ptz/presets", json={"name": "Quầy 1"}
        )
        assert saved.status_code == 201
        token = saved.json()["token"]
        at_preset = sim.ptz_position
        presets = (
            await rig.as_role(Role.TECHNICIAN, "GET", "/api/v1/cameras/cam/ptz/presets")
        ).json()
        assert {"token": token, "name": "Quầy 1"} in presets
        await rig.as_role(
            Role.TECHNICIAN, "POST", "/api/v1/cameras/cam/ptz/move", json={"pan": 1.0}
        )
        await rig.as_role(Role.TECHNICIAN, "POST", "/api/v1/cameras/cam/ptz/stop")
        goto = await rig.as_role(
            Role.TECHNICIAN, "POST", f"/api/v1/cameras/cam/ptz/presets/{token}/goto"
        )
        assert goto.status_code == 204
        assert sim.ptz_position == at_preset

        # Moving the camera is a technician's job, not a leader's.
        forbidden = await rig.as_role(
            Role.LEADER, "POST", "/api/v1/cameras/cam/ptz/move", json=move
        )
        assert forbidden.status_code == 403


async def test_an_hour_of_clock_skew_still_connects_and_sync_time_corrects_it(
    tmp_path: Path, broker: PrivateBroker, rtsp: SimulatedRtsp
) -> None:
    skewed = simulated(rtsp, faults=CameraFaults(clock_skew_s=3600), serial="SKEW")
    synced = simulated(rtsp, faults=CameraFaults(clock_skew_s=3600), serial="SYNC")
    cameras = [camera_yaml("skewed", skewed), camera_yaml("synced", synced, sync_time=True)]
    async with camera_rig(
        tmp_path, broker.port, {"skewed": skewed, "synced": synced}, cameras
    ) as rig:
        await rig.wait_status("skewed", "online")
        await rig.wait_status("synced", "online")
        skewed_detail = (await rig.as_role(Role.TECHNICIAN, "GET", "/api/v1/cameras/skewed")).json()
        assert skewed_detail["clock_offset_s"] == pytest.approx(3600, abs=5)
        assert abs((skewed.clock() - datetime.now(UTC)).total_seconds() - 3600) < 5

        assert abs((synced.clock() - datetime.now(UTC)).total_seconds()) < 5
        synced_detail = (await rig.as_role(Role.TECHNICIAN, "GET", "/api/v1/cameras/synced")).json()
        assert synced_detail["clock_offset_s"] == pytest.approx(0, abs=5)
        assert synced_detail["time_synced_at"] is not None

        # And on demand, through the API, for the one that was left skewed.
        fixed = await rig.as_role(Role.TECHNICIAN, "POST", "/api/v1/cameras/skewed/sync-time")
        assert fixed.json()["clock_offset_s"] == pytest.approx(0, abs=5)
        assert abs((skewed.clock() - datetime.now(UTC)).total_seconds()) < 5


async def test_wrong_password_is_auth_failed_in_plain_words_with_growing_pauses(
    tmp_path: Path, broker: PrivateBroker, rtsp: SimulatedRtsp
) -> None:
    sim = simulated(rtsp, faults=CameraFaults(wrong_password=True))
    async with camera_rig(tmp_path, broker.port, {"cam": sim}, [camera_yaml("cam", sim)]) as rig:
        status = await rig.wait_status("cam", "auth_failed")
        assert "Sai tên đăng nhập hoặc mật khẩu ONVIF" in status["last_error"]
        since = status["since"]
        attempts: list[datetime] = []
        async with asyncio.timeout(20):
            while len(attempts) < 3:
                await asyncio.sleep(0.2)  # polling the API; the deadline above bounds it
                detail = (await rig.as_role(Role.TECHNICIAN, "GET", "/api/v1/cameras/cam")).json()
                attempts = [
                    datetime.fromisoformat(t) for t in detail["reconnect"]["recent_attempts"]
                ]
        # Retrying keeps the state, so "since" still says when the failure began.
        assert detail["status"] == "auth_failed"
        assert datetime.fromisoformat(detail["since"]) == datetime.fromisoformat(since)
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(attempts)]
        # 1 s, then 2 s (each +-20 %): a backoff, not a retry storm.
        assert gaps[0] >= 0.8
        assert gaps[1] > gaps[0]
        # Between attempts the next one is announced (during one, it is not yet).
        async with asyncio.timeout(10):
            while detail["reconnect"]["next_attempt_at"] is None:
                await asyncio.sleep(0.1)
                detail = (await rig.as_role(Role.TECHNICIAN, "GET", "/api/v1/cameras/cam")).json()


async def test_digest_only_snapshot_and_a_camera_without_ptz(
    tmp_path: Path, broker: PrivateBroker, rtsp: SimulatedRtsp
) -> None:
    sim = simulated(rtsp, faults=CameraFaults(snapshot_digest_only=True, no_ptz=True))
    async with camera_rig(tmp_path, broker.port, {"cam": sim}, [camera_yaml("cam", sim)]) as rig:
        await rig.wait_status("cam", "online")
        shot = await rig.as_role(Role.LEADER, "GET", "/api/v1/cameras/cam/snapshot.jpg")
        assert shot.status_code == 200
        assert decode(shot.content) == (1280, 720)
        assert sim.requests["snapshot_served"] == 1  # the camera's own JPEG, via Digest

        for method, path in (
            ("POST", "/api/v1/cameras/cam/ptz/move"),
            ("POST", "/api/v1/cameras/cam/ptz/stop"),
            ("GET", "/api/v1/cameras/cam/ptz/presets"),
        ):
            answer = await rig.as_role(
                Role.TECHNICIAN, method, path, json={} if method == "POST" else None
            )
            assert answer.status_code == 409, path
            assert "không có chức năng PTZ" in answer.json()["detail"]


async def test_snapshot_falls_back_to_basic_and_then_to_the_stream(
    tmp_path: Path, broker: PrivateBroker, rtsp: SimulatedRtsp
) -> None:
    basic = simulated(rtsp, faults=CameraFaults(snapshot_basic_only=True), serial="BASIC")
    none = simulated(rtsp, faults=CameraFaults(no_snapshot_uri=True), serial="NONE")
    cameras = [camera_yaml("basic", basic), camera_yaml("none", none)]
    async with camera_rig(tmp_path, broker.port, {"basic": basic, "none": none}, cameras) as rig:
        await rig.wait_status("basic", "online")
        await rig.wait_status("none", "online")

        shot = await rig.as_role(Role.LEADER, "GET", "/api/v1/cameras/basic/snapshot.jpg")
        assert shot.status_code == 200
        assert decode(shot.content) == (1280, 720)
        assert basic.requests["snapshot_served"] == 1  # Digest refused, then Basic served

        # No snapshot URL at all: a frame of the camera's own RTSP stream.
        for stream, size in (("main", (1280, 720)), ("sub", (640, 360))):
            shot = await rig.as_role(
                Role.LEADER, "GET", f"/api/v1/cameras/none/snapshot.jpg?stream={stream}"
            )
            assert shot.status_code == 200
            assert decode(shot.content) == size
        assert none.requests["snapshot"] == 0  # the stream, not a snapshot URL


async def test_camera_down_then_back_without_restarting(
    tmp_path: Path, broker: PrivateBroker, rtsp: SimulatedRtsp
) -> None:
    sim = simulated(rtsp)
    async with camera_rig(tmp_path, broker.port, {"cam": sim}, [camera_yaml("cam", sim)]) as rig:
        await rig.wait_status("cam", "online")
        await sim.stop()
        down = await rig.wait_status("cam", "unreachable")
        assert (
            "Không kết nối được tới camera" in down["last_error"]
            or "không trả lời" in down["last_error"]
        )
        snapshot = await rig.as_role(Role.LEADER, "GET", "/api/v1/cameras/cam/snapshot.jpg")
        assert snapshot.status_code == 503
        await sim.start()
        await rig.wait_status("cam", "online", within_s=30)


async def test_replies_slower_than_the_deadline_are_unreachable(
    tmp_path: Path, broker: PrivateBroker, rtsp: SimulatedRtsp
) -> None:
    sim = simulated(rtsp, faults=CameraFaults(soap_delay_s=3))
    cameras = [camera_yaml("slow", sim, timeout_s=1)]
    async with camera_rig(tmp_path, broker.port, {"slow": sim}, cameras) as rig:
        status = await rig.wait_status("slow", "unreachable")
        assert "không trả lời trong 1 giây" in status["last_error"]


async def test_h265_only_camera_is_reported_clearly(
    tmp_path: Path, broker: PrivateBroker, rtsp: SimulatedRtsp
) -> None:
    sim = simulated(rtsp, faults=CameraFaults(h265_only=True))
    async with camera_rig(tmp_path, broker.port, {"cam": sim}, [camera_yaml("cam", sim)]) as rig:
        status = await rig.wait_status("cam", "degraded")
        assert "không có H.264" in status["last_error"]


async def test_district_sees_only_shared_cameras_radio_none(
    tmp_path: Path, broker: PrivateBroker, rtsp: SimulatedRtsp
) -> None:
    shared, private = simulated(rtsp, serial="A"), simulated(rtsp, serial="B")
    cameras = [
        camera_yaml("shared", shared, share_with_district=True),
        camera_yaml("private", private),
    ]
    async with camera_rig(
        tmp_path, broker.port, {"shared": shared, "private": private}, cameras
    ) as rig:
        await rig.wait_status("shared", "online")
        district = (await rig.as_role(Role.DISTRICT, "GET", "/api/v1/cameras")).json()
        assert [c["id"] for c in district] == ["shared"]
        for path in ("/api/v1/cameras/private", "/api/v1/cameras/private/snapshot.jpg"):
            assert (await rig.as_role(Role.DISTRICT, "GET", path)).status_code == 403
        assert (await rig.as_role(Role.DISTRICT, "GET", "/api/v1/cameras/nope")).status_code == 404
        assert (await rig.as_role(Role.RADIO, "GET", "/api/v1/cameras")).json() == []
        # ... unless a camera is shared with the radio station (stored through the API).
        await rig.as_role(
            Role.TECHNICIAN,
            "POST",
            "/api/v1/cameras",
            json={
                "id": "radio-cam",
                "name": "R",
                "host": "127.0.0.1",
                "port": shared.port,
                "password": CAMERA_PASSWORD,
                "share_with_radio": True,
            },
        )
        radio = (await rig.as_role(Role.RADIO, "GET", "/api/v1/cameras")).json()
        assert [c["id"] for c in radio] == ["radio-cam"]
        leader = (await rig.as_role(Role.LEADER, "GET", "/api/v1/cameras")).json()
        assert [c["id"] for c in leader] == ["private", "radio-cam", "shared"]


async def test_add_probes_first_then_persists_and_edits(
    tmp_path: Path, broker: PrivateBroker, rtsp: SimulatedRtsp
) -> None:
    sim = simulated(rtsp, serial="NEW")
    new = {
        "id": "quay-2",
        "name": "Quầy 2",
        "host": "127.0.0.1",
        "port": 0,
        "password": CAMERA_PASSWORD,
    }
    async with camera_rig(tmp_path, broker.port, {"new": sim}, []) as rig:
        new["port"] = sim.port
        refused = await rig.as_role(
            Role.TECHNICIAN, "POST", "/api/v1/cameras", json=new | {"password": "not-the-password"}
        )
        assert refused.status_code == 422
        assert refused.json()["detail"]["probe"]["status"] == "auth_failed"
        assert (await rig.as_role(Role.TECHNICIAN, "GET", "/api/v1/cameras")).json() == []

        added = await rig.as_role(Role.TECHNICIAN, "POST", "/api/v1/cameras", json=new)
        assert added.status_code == 201
        body = added.json()
        assert body["saved"] is True
        assert body["probe"]["device"]["serial"] == "NEW"
        assert len(body["probe"]["profiles"]) == 2
        await rig.wait_status("quay-2", "online")

        renamed = await rig.as_role(
            Role.TECHNICIAN, "PATCH", "/api/v1/cameras/quay-2", json={"name": "Quầy số 2"}
        )
        assert renamed.json()["name"] == "Quầy số 2"
        await rig.wait_status("quay-2", "online")  # the stored password was kept

        bad = await rig.as_role(
            Role.TECHNICIAN, "PATCH", "/api/v1/cameras/quay-2", json={"port": 0}
        )
        assert bad.status_code == 422
        assert (
            await rig.as_role(Role.LEADER, "POST", "/api/v1/cameras", json=new)
        ).status_code == 403

    # A new manager on the same store finds the camera again.
    async with camera_rig(tmp_path, broker.port, {"new2": sim}, []) as rig:
        await rig.wait_status("quay-2", "online")
        listed = (await rig.as_role(Role.TECHNICIAN, "GET", "/api/v1/cameras")).json()
        assert [(c["id"], c["name"], c["source"]) for c in listed] == [
            ("quay-2", "Quầy số 2", "api")
        ]
        assert (
            await rig.as_role(Role.TECHNICIAN, "DELETE", "/api/v1/cameras/quay-2")
        ).status_code == 204
        assert (await rig.as_role(Role.TECHNICIAN, "GET", "/api/v1/cameras")).json() == []


async def test_cameras_from_the_config_file_are_not_edited_through_the_api(
    tmp_path: Path, broker: PrivateBroker, rtsp: SimulatedRtsp
) -> None:
    sim = simulated(rtsp)
    async with camera_rig(tmp_path, broker.port, {"cam": sim}, [camera_yaml("cam", sim)]) as rig:
        for method in ("PATCH", "DELETE"):
            answer = await rig.as_role(
                Role.TECHNICIAN,
                method,
                "/api/v1/cameras/cam",
                json={"name": "x"} if method == "PATCH" else None,
            )
            assert answer.status_code == 409
            assert "tệp cấu hình" in answer.json()["detail"]


async def test_no_camera_password_in_any_response_or_log(
    tmp_path: Path, broker: PrivateBroker, rtsp: SimulatedRtsp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good, wrong = (
        simulated(rtsp, serial="OK"),
        simulated(rtsp, faults=CameraFaults(wrong_password=True)),
    )
    cameras = [camera_yaml("good", good), camera_yaml("wrong", wrong)]
    async with camera_rig(tmp_path, broker.port, {"good": good, "wrong": wrong}, cameras) as rig:
        await rig.wait_status("good", "online")
        await rig.wait_status("wrong", "auth_failed")
        paths = (
            "/api/v1/cameras",
            "/api/v1/cameras/good",
            "/api/v1/cameras/wrong",
            "/metrics",
            "/api/v1/system/status",
        )
        bodies = [(await rig.as_role(Role.ADMIN, "GET", path)).text for path in paths]
        new = {
            "id": "added",
            "name": "A",
            "host": "127.0.0.1",
            "port": good.port,
            "password": CAMERA_PASSWORD,
        }
        # A refused add answers 422: FastAPI would echo the body, password included.
        nameless = {k: v for k, v in new.items() if k != "name"}
        refused = await rig.as_role(Role.ADMIN, "POST", "/api/v1/cameras", json=nameless)
        assert refused.status_code == 422
        bodies.append(refused.text)
        wrong_port = await rig.as_role(
            Role.ADMIN, "POST", "/api/v1/cameras", json=new | {"port": 1}
        )
        assert wrong_port.status_code == 422
        bodies.append(wrong_port.text)
        bodies.append((await rig.as_role(Role.ADMIN, "POST", "/api/v1/cameras", json=new)).text)
        bodies.append((await rig.as_role(Role.ADMIN, "GET", "/api/v1/cameras/added")).text)
        for method, path in (
            ("GET", "/api/v1/cameras/good/snapshot.jpg"),
            ("GET", "/api/v1/cameras/wrong/snapshot.jpg"),
            ("POST", "/api/v1/cameras/good/sync-time"),
            ("POST", "/api/v1/cameras/wrong/sync-time"),
            ("GET", "/api/v1/cameras/good/ptz/presets"),
        ):
            answer = await rig.as_role(Role.ADMIN, method, path)
            assert CAMERA_PASSWORD.encode() not in answer.content, path
        assert 'loacam_camera_status{camera="good",status="online"} 1.0' in bodies[3]
    for text in bodies:
        assert CAMERA_PASSWORD not in text
    assert CAMERA_PASSWORD not in caplog.text


async def test_a_camera_with_broken_replies_is_degraded_and_harms_nobody(
    tmp_path: Path, broker: PrivateBroker, rtsp: SimulatedRtsp
) -> None:
    broken = simulated(rtsp, faults=CameraFaults(empty_body=True), serial="BROKEN")
    good = simulated(rtsp, serial="GOOD")
    cameras = [camera_yaml("broken", broken), camera_yaml("good", good)]
    async with camera_rig(tmp_path, broker.port, {"broken": broken, "good": good}, cameras) as rig:
        status = await rig.wait_status("broken", "degraded")
        assert "không đúng chuẩn ONVIF" in status["last_error"]
        await rig.wait_status("good", "online")
        # The broken one keeps being retried; the manager and the other camera live on.
        await rig.wait_status("good", "online")
        assert broken.requests["GetServices"] >= 1  # it was asked, and answered garbage
        detail = (await rig.as_role(Role.TECHNICIAN, "GET", "/api/v1/cameras/good")).json()
        assert detail["status"] == "online"


async def test_reboot_viewer_detail_and_concurrent_deletes(
    tmp_path: Path, broker: PrivateBroker, rtsp: SimulatedRtsp
) -> None:
    sim = simulated(rtsp)
    new = {"id": "twice", "name": "T", "host": "127.0.0.1", "port": 0, "password": CAMERA_PASSWORD}
    async with camera_rig(tmp_path, broker.port, {"cam": sim}, [camera_yaml("cam", sim)]) as rig:
        await rig.wait_status("cam", "online")
        rebooted = await rig.as_role(Role.TECHNICIAN, "POST", "/api/v1/cameras/cam/reboot")
        assert rebooted.status_code == 200
        assert sim.reboot_count == 1

        leader = (await rig.as_role(Role.LEADER, "GET", "/api/v1/cameras/cam")).json()
        assert (leader["host"], leader["port"], leader["username"]) == (None, None, None)
        assert {p["stream_uri"] for p in leader["profiles"]} == {None}
        technician = (await rig.as_role(Role.TECHNICIAN, "GET", "/api/v1/cameras/cam")).json()
        assert technician["host"] == "127.0.0.1"

        new["port"] = sim.port
        assert (
            await rig.as_role(Role.TECHNICIAN, "POST", "/api/v1/cameras", json=new)
        ).status_code == 201
        answers = await asyncio.gather(
            rig.as_role(Role.TECHNICIAN, "DELETE", "/api/v1/cameras/twice"),
            rig.as_role(Role.TECHNICIAN, "DELETE", "/api/v1/cameras/twice"),
        )
        assert sorted(a.status_code for a in answers) in ([204, 404], [204, 409])


async def test_discover_marks_known_cameras(
    tmp_path: Path, broker: PrivateBroker, rtsp: SimulatedRtsp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The multicast probe itself is tested in a private network namespace
    # (tests/test_discovery.py); here only the leaf that would touch the LAN is replaced.
    found = [
        discovery.DiscoveredDevice(
            endpoint="urn:uuid:1",
            address="127.0.0.1",
            xaddrs=("http://127.0.0.1/onvif",),
            scopes=(),
            name="Quầy",
            model="X",
        ),
        discovery.DiscoveredDevice(
            endpoint="urn:uuid:2",
            address="127.0.0.2",
            xaddrs=(),
            scopes=(),
            name=None,
            model=None,
        ),
    ]

    async def fake_discover(
        timeout_s: float = 3.0, **_kwargs: object
    ) -> list[discovery.DiscoveredDevice]:
        assert timeout_s == 1.5
        return found

    monkeypatch.setattr(discovery, "discover", fake_discover)
    sim = simulated(rtsp)
    async with camera_rig(tmp_path, broker.port, {"cam": sim}, [camera_yaml("cam", sim)]) as rig:
        answer = await rig.as_role(
            Role.TECHNICIAN, "POST", "/api/v1/cameras/discover", json={"timeout_s": 1.5}
        )
        assert [(d["address"], d["known_id"]) for d in answer.json()] == [
            ("127.0.0.1", "cam"),
            ("127.0.0.2", None),
        ]
        assert (
            await rig.as_role(Role.LEADER, "POST", "/api/v1/cameras/discover", json={})
        ).status_code == 403
