"""Prometheus metrics, read from the live state at scrape time (no second copy of it)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from daemon.cameras.monitor import CameraStatus
from daemon.speakers.registry import Presence
from daemon.state import AppState
from daemon.supervisor import ChildStatus


class StateCollector(Collector):
    def __init__(self, state: AppState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state
        mqtt = GaugeMetricFamily("loacam_mqtt_connected", "1 while the MQTT link is connected")
        mqtt.add_metric([], 1.0 if state.mqtt.connected else 0.0)
        yield mqtt
        storage = GaugeMetricFamily("loacam_storage_ok", "1 when the last storage check passed")
        storage.add_metric([], 1.0 if state.storage_ok else 0.0)
        yield storage
        up = GaugeMetricFamily("loacam_loop_up", "1 while a supervised loop runs", labels=["loop"])
        restarts = CounterMetricFamily(
            "loacam_loop_restarts", "Restarts of a supervised loop", labels=["loop"]
        )
        for child in state.supervisor.states:
            up.add_metric([child.name], 1.0 if child.status == ChildStatus.RUNNING else 0.0)
            restarts.add_metric([child.name], float(child.restarts))
        yield up
        yield restarts
        yield from _camera_metrics(state)
        yield from _live_metrics(state)
        yield from _speaker_metrics(state)
        started = GaugeMetricFamily("loacam_start_time_seconds", "Daemon start, Unix time")
        started.add_metric([], state.started_at.timestamp())
        yield started


def _camera_metrics(state: AppState) -> Iterator[Metric]:
    status = GaugeMetricFamily(
        "loacam_camera_status",
        "1 for the state each camera is in now",
        labels=["camera", "status"],
    )
    failures = CounterMetricFamily(
        "loacam_camera_failures", "Failed connections or keep-alives", labels=["camera"]
    )
    for camera in state.cameras.cameras():
        current = camera.monitor.state
        for candidate in CameraStatus:
            status.add_metric(
                [camera.config.id, candidate.value], float(candidate == current.status)
            )
        failures.add_metric([camera.config.id], float(current.reconnects))
    yield status
    yield failures


LIVE_GAUGES = (
    ("viewers", "Viewers of a live stream"),
    ("input_fps", "Frames decoded per second"),
    ("output_fps", "Frames published to viewers per second"),
    ("decode_ms", "Milliseconds of CPU to decode a frame"),
    ("encode_ms", "Milliseconds of CPU to JPEG-encode a frame"),
    ("last_frame_age_s", "Seconds since the last decoded frame"),
)
LIVE_COUNTERS = (
    ("bytes_sent", "JPEG bytes handed to viewers"),
    ("reconnects", "Reconnections of a live capture"),
)


def _live_metrics(state: AppState) -> Iterator[Metric]:
    labels = ["camera", "stream"]
    gauges = {f: GaugeMetricFamily(f"loacam_live_{f}", h, labels=labels) for f, h in LIVE_GAUGES}
    counters = {
        f: CounterMetricFamily(f"loacam_live_{f}", h, labels=labels) for f, h in LIVE_COUNTERS
    }
    for key in state.live.running():
        stats = state.live.stats(key)
        families: list[tuple[str, GaugeMetricFamily | CounterMetricFamily]] = [
            *gauges.items(),
            *counters.items(),
        ]
        for family_name, family in families:
            value = getattr(stats, family_name)
            if value is not None:
                family.add_metric([key.camera_id, key.stream], float(value))
    yield from gauges.values()
    yield from counters.values()


def build_registry(state: AppState) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(StateCollector(state))
    return registry


def _speaker_metrics(state: AppState) -> Iterator[Metric]:
    speakers = state.speakers.registry.speakers()
    status = GaugeMetricFamily(
        "loacam_speaker_status",
        "1 for the status each speaker is in now",
        labels=["speaker", "status"],
    )
    alarm = GaugeMetricFamily(
        "loacam_speaker_alarm", "1 while a speaker has an active offline alarm", labels=["speaker"]
    )
    for speaker in speakers:
        for candidate in Presence:
            status.add_metric([speaker.id, candidate.value], float(speaker.status == candidate))
        alarm.add_metric([speaker.id], 1.0 if speaker.alarm_since is not None else 0.0)
    yield status
    yield alarm
    active = GaugeMetricFamily(
        "loacam_speaker_alarms_active", "Speakers with an active offline alarm"
    )
    active.add_metric([], float(sum(1 for s in speakers if s.alarm_since is not None)))
    yield active
    pending = GaugeMetricFamily(
        "loacam_speaker_commands_open",
        "Commands still followed, by delivery state",
        labels=["state"],
    )
    for delivery, count in state.speakers.dispatcher.counts().items():
        if not delivery.terminal:
            pending.add_metric([delivery.value], float(count))
    yield pending
