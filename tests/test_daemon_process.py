"""End to end: `loacam run` as a process, a private mosquitto, a socket standing in for systemd."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

from drivers.sim.broker import PrivateBroker
from tests.support import (
    Daemon,
    NotifySocket,
    base_config,
    poll_until,
    refusing_port,
    retained_blocking,
    write_config,
)

STATUS = "loacam/test/daemon/status"


def test_ready_healthy_and_clean_stop(
    tmp_path: Path, broker: PrivateBroker, http_port: int, notify: NotifySocket
) -> None:
    config = write_config(
        tmp_path / "loacam.yaml", base_config(tmp_path, http_port=http_port, mqtt_port=broker.port)
    )
    with Daemon(config, notify, watchdog_usec=200_000) as daemon:
        ready = notify.wait_for("READY=1")
        assert any(field.startswith("STATUS=") and "mqtt connected" in field for field in ready)
        notify.wait_for("WATCHDOG=1")
        assert daemon.get("/healthz").status_code == 200
        readyz = daemon.get("/readyz")
        assert readyz.status_code == 200
        assert readyz.json() == {"ready": True, "missing": []}
        assert retained_blocking(broker.port, STATUS, b"online") == b"online"

        daemon.signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0
        notify.wait_for("STOPPING=1")
        assert retained_blocking(broker.port, STATUS, b"offline") == b"offline"


def test_sigint_stops_cleanly_too(
    tmp_path: Path, broker: PrivateBroker, http_port: int, notify: NotifySocket
) -> None:
    data = base_config(tmp_path, http_port=http_port, mqtt_port=broker.port, site="sigint")
    with Daemon(write_config(tmp_path / "loacam.yaml", data), notify) as daemon:
        notify.wait_for("READY=1")
        daemon.signal(signal.SIGINT)
        assert daemon.wait(timeout=10) == 0
        assert (
            retained_blocking(broker.port, "loacam/sigint/daemon/status", b"offline") == b"offline"
        )


def test_sigkill_leaves_the_will(
    tmp_path: Path, broker: PrivateBroker, http_port: int, notify: NotifySocket
) -> None:
    data = base_config(tmp_path, http_port=http_port, mqtt_port=broker.port, site="killed")
    topic = "loacam/killed/daemon/status"
    with Daemon(write_config(tmp_path / "loacam.yaml", data), notify) as daemon:
        notify.wait_for("READY=1")
        assert retained_blocking(broker.port, topic, b"online") == b"online"
        daemon.signal(signal.SIGKILL)
        assert daemon.wait(timeout=10) == -signal.SIGKILL
        # Nobody published this but the broker, from the will the daemon left at connect.
        assert retained_blocking(broker.port, topic, b"offline") == b"offline"


def test_not_ready_without_broker(tmp_path: Path, http_port: int, notify: NotifySocket) -> None:
    with (
        refusing_port() as nobody,
        Daemon(
            write_config(
                tmp_path / "loacam.yaml",
                base_config(tmp_path, http_port=http_port, mqtt_port=nobody),
            ),
            notify,
        ) as daemon,
    ):
        ready = notify.wait_for("READY=1")
        assert "STATUS=mqtt DISCONNECTED; storage ok; all loops running" in ready
        assert daemon.get("/healthz").status_code == 200
        readyz = daemon.get("/readyz")
        assert readyz.status_code == 503
        assert readyz.json() == {"ready": False, "missing": ["mqtt"]}
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0


def test_broker_restart_is_survived(
    tmp_path: Path, own_broker: PrivateBroker, http_port: int, notify: NotifySocket
) -> None:
    data = base_config(tmp_path, http_port=http_port, mqtt_port=own_broker.port, site="restart")
    with Daemon(write_config(tmp_path / "loacam.yaml", data), notify) as daemon:
        notify.wait_for("READY=1")
        assert daemon.get("/readyz").status_code == 200

        own_broker.stop_blocking()
        poll_until(lambda: daemon.get("/readyz").status_code == 503)
        assert daemon.get("/readyz").json()["missing"] == ["mqtt"]
        notify.wait_for("STATUS=mqtt DISCONNECTED; storage ok; all loops running")

        own_broker.start_blocking()
        poll_until(lambda: daemon.get("/readyz").status_code == 200, timeout=45)
        assert daemon.process.poll() is None
        # The fresh broker kept nothing: `online` is there because the daemon said it again.
        assert (
            retained_blocking(own_broker.port, "loacam/restart/daemon/status", b"online")
            == b"online"
        )
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0


def test_bad_config_exits_78_before_touching_anything(tmp_path: Path, http_port: int) -> None:
    data = base_config(tmp_path, http_port=http_port, mqtt_port=1)
    data["mqtt"]["prot"] = 1883
    with Daemon(write_config(tmp_path / "loacam.yaml", data), None) as daemon:
        assert daemon.wait(timeout=20) == 78
        assert f"{tmp_path / 'loacam.yaml'}:" in daemon.output()
        assert "mqtt.prot: unknown key" in daemon.output()
        assert not (tmp_path / "data").exists()


def test_port_in_use_is_a_plain_error(tmp_path: Path, broker: PrivateBroker) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(
            tmp_path / "loacam.yaml", base_config(tmp_path, http_port=port, mqtt_port=broker.port)
        )
        with Daemon(config, None) as daemon:
            assert daemon.wait(timeout=20) == 69
            assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in daemon.output()
