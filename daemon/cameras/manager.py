"""All cameras: from the YAML file and from the store, each with its monitor task.

The manager is one supervised loop; inside it a TaskGroup holds a task per camera,
so cameras can be added and removed while the daemon runs. Every state change is
published, retained, on `loacam/<site>/camera/<id>/status`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from daemon.cameras.monitor import CameraMonitor, CameraState, endpoint_of
from daemon.config import CameraConfig
from daemon.store import Store
from daemon.store.cameras import (
    CameraExistsError,
    delete_camera,
    insert_camera,
    load_cameras,
    update_camera,
)
from drivers.camera.model import Probe
from drivers.camera.onvif import OnvifCamera
from drivers.mqtt import MqttLink, MqttLinkError

log = logging.getLogger(__name__)

Source = Literal["config", "api"]
STOP_GRACE_S = 1.0


class CameraConflictError(Exception):
    """The change is not possible (duplicate id, or a camera from the config file)."""


@dataclass
class ManagedCamera:
    config: CameraConfig
    source: Source
    monitor: CameraMonitor
    stop: asyncio.Event
    task: asyncio.Task[None] | None = None


class CameraManager:
    def __init__(
        self, site: str, configured: list[CameraConfig], store: Store, mqtt: MqttLink
    ) -> None:
        self._site = site
        self._configured = configured
        self._store = store
        self._mqtt = mqtt
        self._cameras: dict[str, ManagedCamera] = {}
        self._group: asyncio.TaskGroup | None = None
        self._dirty: set[str] = set()
        self._removed: set[str] = set()  # retained statuses still to clear on MQTT
        self._wake = asyncio.Event()
        # add/update/remove change the store and the running monitors together.
        self._changing = asyncio.Lock()

    def cameras(self) -> list[ManagedCamera]:
        return sorted(self._cameras.values(), key=lambda c: c.config.id)

    def get(self, camera_id: str) -> ManagedCamera | None:
        return self._cameras.get(camera_id)

    async def run(self, stop: asyncio.Event) -> None:
        stored = await load_cameras(self._store)
        async with asyncio.TaskGroup() as group:
            self._group = group
            for config in self._configured:
                self._start(config, "config")
            for config in stored:
                if config.id in self._cameras:
                    log.warning(
                        "camera %s: also in the config file; the stored copy is ignored", config.id
                    )
                    continue
                self._start(config, "api")
            helpers = [
                group.create_task(self._publish_loop()),
                group.create_task(self._watch_mqtt()),
            ]
            await stop.wait()
            await asyncio.gather(*(self._stop(c) for c in list(self._cameras.values())))
            for task in helpers:
                task.cancel()
        self._group = None

    async def probe(self, config: CameraConfig) -> Probe:
        """Connect once with these settings, report, disconnect (for `add`)."""
        driver = OnvifCamera(endpoint_of(config))
        try:
            return await driver.connect()
        finally:
            await driver.close()

    async def add(self, config: CameraConfig) -> ManagedCamera:
        async with self._changing:
            if config.id in self._cameras:
                raise CameraConflictError(f"Đã có camera mã {config.id!r} (id already used)")
            try:
                await insert_camera(self._store, config)
            except CameraExistsError as exc:
                raise CameraConflictError(
                    f"Đã có camera mã {config.id!r} (id already used)"
                ) from exc
            self._removed.discard(config.id)
            return self._start(config, "api")

    async def update(self, config: CameraConfig) -> ManagedCamera:
        async with self._changing:
            current = self._editable(config.id)
            await update_camera(self._store, config)
            await self._stop(current)
            return self._start(config, "api")

    async def remove(self, camera_id: str) -> None:
        async with self._changing:
            current = self._editable(camera_id)
            await delete_camera(self._store, camera_id)
            await self._stop(current)
            self._cameras.pop(camera_id, None)
            # An empty retained message deletes the removed camera's retained status;
            # the publisher retries it until the broker has it.
            self._removed.add(camera_id)
            self._dirty.discard(camera_id)
            self._wake.set()

    def _editable(self, camera_id: str) -> ManagedCamera:
        camera = self._cameras.get(camera_id)
        if camera is None:
            raise CameraConflictError(f"Không còn camera mã {camera_id!r} (no longer exists)")
        if camera.source == "config":
            raise CameraConflictError(
                "Camera này khai báo trong tệp cấu hình, hãy sửa ở đó "
                "(defined in the configuration file)"
            )
        return camera

    def _start(self, config: CameraConfig, source: Source) -> ManagedCamera:
        if self._group is None:
            raise RuntimeError("camera manager is not running")
        camera = ManagedCamera(
            config, source, CameraMonitor(config, self._changed), asyncio.Event()
        )
        camera.task = self._group.create_task(
            camera.monitor.run(camera.stop), name=f"camera:{config.id}"
        )
        self._cameras[config.id] = camera
        self._changed(config.id, camera.monitor.state)
        return camera

    async def _stop(self, camera: ManagedCamera) -> None:
        camera.stop.set()
        if camera.task is None:
            return
        # A monitor in the middle of a slow connect notices `stop` only after it: give
        # it a moment, then cancel (its driver is closed in its `finally`).
        await asyncio.wait({camera.task}, timeout=STOP_GRACE_S)
        if not camera.task.done():
            camera.task.cancel()
            await asyncio.gather(camera.task, return_exceptions=True)

    def _changed(self, camera_id: str, _state: CameraState) -> None:
        self._dirty.add(camera_id)
        self._wake.set()

    async def _publish_loop(self) -> None:
        connects = -1
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._mqtt.state.connects != connects and self._mqtt.connected:
                # A new broker session (or a restarted broker): say everything again.
                connects = self._mqtt.state.connects
                self._dirty |= set(self._cameras)
            for camera_id in sorted(self._removed):
                if await self._try_publish(self._topic(camera_id), b""):
                    self._removed.discard(camera_id)
            for camera_id in sorted(self._dirty):
                camera = self._cameras.get(camera_id)
                if camera is None:
                    self._dirty.discard(camera_id)
                    continue
                if await self._try_publish(
                    self._topic(camera_id), status_payload(camera.monitor.state)
                ):
                    self._dirty.discard(camera_id)

    async def _watch_mqtt(self) -> None:
        """Wake the publisher whenever the MQTT link (re)connects."""
        while True:
            await self._mqtt.wait_connected()
            self._wake.set()
            await self._mqtt.wait_disconnected()

    async def _try_publish(self, topic: str, payload: bytes) -> bool:
        try:
            await self._mqtt.publish(topic, payload, qos=1, retain=True)
        except MqttLinkError as exc:
            log.debug("camera status %s not published yet: %s", topic, exc)
            return False
        return True

    def _topic(self, camera_id: str) -> str:
        return f"loacam/{self._site}/camera/{camera_id}/status"


def status_payload(state: CameraState) -> bytes:
    return json.dumps(
        {
            "status": state.status.value,
            "since": state.since.isoformat(),
            "last_error": state.last_error,
            "at": datetime.now(UTC).isoformat(),
        },
        ensure_ascii=False,
    ).encode()
