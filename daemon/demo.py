"""`loacam demo`: a private broker, simulated cameras and speakers, a throw-away database.

The database starts with an admin account and a day of broadcasts (daemon.demo_day).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.auth import Role, hash_password_blocking
from daemon.cli import setup_logging
from daemon.config import Config
from daemon.demo_day import DemoDay, seed_demo_day
from daemon.schedule.recurrence import LOCAL
from daemon.service import broadcast_rules, run_daemon
from daemon.store import Store
from daemon.store.users import add_user
from drivers.sim.broker import BrokerError, PrivateBroker
from drivers.sim.onvif import CameraFaults, CameraIdentity, SimulatedOnvifCamera
from drivers.sim.rtsp import SimulatedRtsp, SimulatorError
from drivers.sim.speaker import SimSpeakerSpec, SpeakerFleet

DEMO_USER = "admin"
EX_UNAVAILABLE = 69


@dataclass(frozen=True)
class DemoCamera:
    id: str
    name: str
    share_with_district: bool
    faults: CameraFaults
    model: str


def demo_cameras() -> tuple[DemoCamera, ...]:
    """Two counter cameras: a healthy PTZ one, and one an hour off with no PTZ (it still works)."""
    return (
        DemoCamera(
            id="motcua-1",
            name="Bộ phận một cửa 1",
            share_with_district=True,
            faults=CameraFaults(),
            model="SimCam PTZ",
        ),
        DemoCamera(
            id="tiepdan-1",
            name="Bàn tiếp công dân",
            share_with_district=False,
            faults=CameraFaults(clock_skew_s=3600, no_ptz=True),
            model="SimCam 2",
        ),
    )


DEMO_ZONES = (("thon-dong", "Thôn Đông"), ("thon-trung", "Thôn Trung"), ("thon-doai", "Thôn Đoài"))
SPEAKERS_PER_ZONE = 4
DEMO_SITE = "demo"


def demo_speakers() -> tuple[SimSpeakerSpec, ...]:
    """Twelve clusters, four per village, with a spread of 4G signal strengths."""
    return tuple(
        SimSpeakerSpec(
            id=f"loa-{zone_id}-{n}",
            zone=zone_id,
            name=f"Cụm loa {zone_name} {n}",
            signal_dbm=-65 - 7 * n,
        )
        for zone_id, zone_name in DEMO_ZONES
        for n in range(1, SPEAKERS_PER_ZONE + 1)
    )


def demo_config(
    data_dir: Path, *, host: str, port: int, mqtt_port: int, cameras: list[dict[str, Any]]
) -> Config:
    return Config.model_validate(
        {
            "site": DEMO_SITE,
            "http": {"host": host, "port": port},
            "storage": {"path": str(data_dir)},
            "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
            "cameras": cameras,
            "speakers": [
                {"id": s.id, "name": s.name, "zone": s.zone, "driver": "native"}
                for s in demo_speakers()
            ],
            "zones": [{"id": zone_id, "name": name} for zone_id, name in DEMO_ZONES],
            # An alarm within a minute, so the demo shows one when a speaker is unplugged.
            "fleet": {"offline_alarm_after_s": 60},
        }
    )


def run_demo(*, host: str, port: int) -> int:
    setup_logging("info")
    with tempfile.TemporaryDirectory(prefix="loacam-demo-") as tmp, contextlib.ExitStack() as stack:
        # Started from this (main) thread: their parent-death signal follows it.
        try:
            broker = stack.enter_context(PrivateBroker(Path(tmp) / "mosquitto"))
            media = {
                camera.id: stack.enter_context(SimulatedRtsp(label=camera.id, log_dir=Path(tmp)))
                for camera in demo_cameras()
            }
        except (BrokerError, SimulatorError) as exc:
            print(f"loacam demo: {exc}", file=sys.stderr)
            return EX_UNAVAILABLE
        return asyncio.run(_demo(Path(tmp), host, port, broker.port, media))


async def _demo(
    tmp: Path, host: str, port: int, mqtt_port: int, media: dict[str, SimulatedRtsp]
) -> int:
    password = secrets.token_urlsafe(12)
    camera_password = secrets.token_urlsafe(12)
    async with contextlib.AsyncExitStack() as stack:
        cameras: list[dict[str, Any]] = []
        for camera in demo_cameras():
            sim = SimulatedOnvifCamera(
                username="admin",
                password=camera_password,
                rtsp_main=media[camera.id].url("main"),
                rtsp_sub=media[camera.id].url("sub"),
                identity=CameraIdentity(model=camera.model, serial=f"DEMO-{camera.id.upper()}"),
                faults=camera.faults,
            )
            await stack.enter_async_context(sim)
            cameras.append(
                {
                    "id": camera.id,
                    "name": camera.name,
                    "host": sim.host,
                    "port": sim.port,
                    "username": "admin",
                    "password": camera_password,
                    "share_with_district": camera.share_with_district,
                }
            )
        # The speakers connect first, so their retained status is there for the daemon.
        await stack.enter_async_context(
            SpeakerFleet(host="127.0.0.1", port=mqtt_port, site=DEMO_SITE, speakers=demo_speakers())
        )
        config = demo_config(
            tmp / "data", host=host, port=port, mqtt_port=mqtt_port, cameras=cameras
        )
        day = await _prepare(config, password)
        return await run_daemon(config, on_ready=lambda: _announce(config, password, day))


async def _prepare(config: Config, password: str) -> DemoDay:
    """The admin account and a day of broadcasts (daemon.demo_day) in the new database."""
    store = await Store.open(config.storage.path)
    try:
        hashed = await asyncio.to_thread(hash_password_blocking, password)
        await add_user(store, DEMO_USER, Role.ADMIN.value, hashed)
        return await seed_demo_day(store, datetime.now(UTC), broadcast_rules(config))
    finally:
        await store.close()


def _first_look(day: DemoDay) -> str:
    if day.first_look_at is not None:
        return f"phát lúc {day.first_look_at.astimezone(LOCAL):%H:%M} tới mọi cụm loa"
    return f"không xếp lịch — {day.quiet}" if day.quiet is not None else "đã có từ trước"


def _announce(config: Config, password: str, day: DemoDay) -> None:
    shown_host = "127.0.0.1" if config.http.host in {"0.0.0.0", "::"} else config.http.host  # noqa: S104
    url = f"http://{shown_host}:{config.http.port}/"
    print(
        f"\nloacam demo đang chạy / is running\n"
        f"  Mở / open:            {url}\n"
        f"  Đăng nhập / log in:   {DEMO_USER} / {password}\n"
        f"  Camera mô phỏng:      {', '.join(c.id for c in config.cameras)}\n"
        f"  Loa mô phỏng:         {len(config.speakers)} cụm loa trong {len(config.zones)} thôn\n"
        f"  Lịch phát / schedule: {len(day.broadcasts)} chương trình mẫu, "
        'xem mục "Lịch phát" trên giao diện web\n'
        f"  Bản tin thử:          {_first_look(day)}\n"
        f"  API:                  {url}docs\n"
        f"  Dừng / stop:          Ctrl-C\n",
        flush=True,
    )
