"""`loacam demo`: a private broker, a throw-away database, a generated admin login."""

from __future__ import annotations

import asyncio
import secrets
import sys
import tempfile
from pathlib import Path

from daemon.auth import Role, hash_password_blocking
from daemon.cli import setup_logging
from daemon.config import Config
from daemon.service import run_daemon
from daemon.store import Store
from daemon.store.users import add_user
from drivers.sim.broker import BrokerError, PrivateBroker

DEMO_USER = "admin"


def demo_config(data_dir: Path, *, host: str, port: int, mqtt_port: int) -> Config:
    return Config.model_validate(
        {
            "site": "demo",
            "http": {"host": host, "port": port},
            "storage": {"path": str(data_dir)},
            "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
        }
    )


def run_demo(*, host: str, port: int) -> int:
    setup_logging("info")
    with tempfile.TemporaryDirectory(prefix="loacam-demo-") as tmp:
        broker = PrivateBroker(Path(tmp) / "mosquitto")
        try:
            broker.start_blocking()
        except BrokerError as exc:
            print(f"loacam demo: {exc}", file=sys.stderr)
            return 69
        try:
            config = demo_config(Path(tmp) / "data", host=host, port=port, mqtt_port=broker.port)
            password = secrets.token_urlsafe(12)
            return asyncio.run(_demo(config, password))
        finally:
            broker.stop_blocking()


async def _demo(config: Config, password: str) -> int:
    store = await Store.open(config.storage.path)
    try:
        await add_user(
            store,
            DEMO_USER,
            Role.ADMIN.value,
            await asyncio.to_thread(hash_password_blocking, password),
        )
    finally:
        await store.close()
    shown_host = "127.0.0.1" if config.http.host in {"0.0.0.0", "::"} else config.http.host  # noqa: S104
    url = f"http://{shown_host}:{config.http.port}/"

    def announce() -> None:
        print(
            f"\nloacam demo đang chạy / is running\n"
            f"  Mở / open:            {url}\n"
            f"  Đăng nhập / log in:   {DEMO_USER} / {password}\n"
            f"  API:                  {url}docs\n"
            f"  Dừng / stop:          Ctrl-C\n",
            flush=True,
        )

    return await run_daemon(config, on_ready=announce)
