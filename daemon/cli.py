"""The `loacam` command: run, demo, check-config, user add, discover."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from pathlib import Path

from daemon.auth import USERNAME, Role, check_new_password, hash_password_blocking
from daemon.config import DEFAULT_CONFIG_PATH, Config
from daemon.config_loader import EX_CONFIG, ConfigError, load_config
from daemon.store import Store, StoreError
from daemon.store.users import UserExistsError, add_user, record_audit

EX_USAGE = 64
EX_DATAERR = 65
EX_UNAVAILABLE = 69


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loacam", description="Counter cameras and village loudspeakers, one system."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the daemon")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="YAML config file")

    demo = commands.add_parser("demo", help="run with simulated devices and a private broker")
    demo.add_argument("--port", type=_port, default=8080, help="HTTP port (default 8080)")
    demo.add_argument(
        "--host",
        default="127.0.0.1",
        help="HTTP address (default 127.0.0.1; 0.0.0.0 lets other office PCs connect)",
    )

    discover = commands.add_parser("discover", help="find ONVIF cameras on the local network")
    discover.add_argument(
        "--timeout", type=float, default=3.0, help="seconds to wait for answers (default 3)"
    )
    discover.add_argument(
        "--interface",
        metavar="ADDR",
        help="this computer's IPv4 address on the camera network (default: the route's)",
    )

    check = commands.add_parser("check-config", help="validate a config file (exit 0 or 78)")
    check.add_argument("file", type=Path)

    user = commands.add_parser("user", help="manage user accounts")
    user_commands = user.add_subparsers(dest="user_command", required=True)
    add = user_commands.add_parser("add", help="create a user")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[role.value for role in Role])
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    add.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="YAML config file")
    return parser


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return _check_config(args.file)
    if args.command == "demo":
        from daemon.demo import run_demo  # noqa: PLC0415 - only the demo needs the simulators

        return run_demo(host=args.host, port=args.port)
    if args.command == "discover":
        return _discover(args.timeout, args.interface)
    config = _load_or_report(args.config)
    if config is None:
        return EX_CONFIG
    if args.command == "run":
        setup_logging(config.logging.level)
        from daemon.service import run_daemon  # noqa: PLC0415 - keeps check-config light

        return asyncio.run(run_daemon(config))
    return _user_add(config, args.name, Role(args.role), password_stdin=args.password_stdin)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,  # importing `onvif` configures logging itself; ours wins
    )
    # alembic narrates every migration step at INFO; the store logs the revision itself.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _load_or_report(path: Path) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return None


def _check_config(path: Path) -> int:
    config = _load_or_report(path)
    if config is None:
        return EX_CONFIG
    print(
        f"{path}: OK (site {config.site}, {len(config.cameras)} cameras, "
        f"{len(config.speakers)} speakers)"
    )
    return 0


def _discover(timeout_s: float, interface_address: str | None) -> int:
    from drivers.camera.discovery import DiscoveryError, discover  # noqa: PLC0415 - rarely used

    if not 0 < timeout_s <= 60:
        print("loacam: --timeout takes more than 0 and at most 60 seconds", file=sys.stderr)
        return EX_USAGE
    try:
        devices = asyncio.run(discover(timeout_s, interface_address=interface_address))
    except DiscoveryError as exc:
        print(f"loacam: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    if not devices:
        print("Không tìm thấy camera ONVIF nào.")
        return 0
    print(f"Tìm thấy {len(devices)} camera ONVIF:")
    rows = [
        (d.address, d.model or "-", d.name or "-", d.xaddrs[0] if d.xaddrs else "-")
        for d in devices
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for *padded, xaddr in rows:
        cells = [cell.ljust(width) for cell, width in zip(padded, widths, strict=True)]
        print("", *cells, xaddr, sep="  ")
    return 0


def _read_password(*, from_stdin: bool) -> str | None:
    if from_stdin:
        # One line: a trailing newline from `echo` or a here-string is not part of it.
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        print("loacam: give the password with --password-stdin", file=sys.stderr)
        return None
    first = getpass.getpass("Mật khẩu / password: ")
    if getpass.getpass("Nhập lại / again: ") != first:
        print("loacam: the two passwords differ", file=sys.stderr)
        return None
    return first


def _user_add(config: Config, name: str, role: Role, *, password_stdin: bool) -> int:
    if not USERNAME.match(name):
        print(
            f"loacam: user name {name!r}: use 2-32 lowercase letters, digits, '.', '_' or '-'",
            file=sys.stderr,
        )
        return EX_USAGE
    password = _read_password(from_stdin=password_stdin)
    if password is None:
        return EX_USAGE
    if (reason := check_new_password(password)) is not None:
        print(f"loacam: {reason}", file=sys.stderr)
        return EX_DATAERR
    if os.geteuid() == 0:
        _become_owner_of(config.storage.path)
    return asyncio.run(_store_user(config, name, role, password))


def _become_owner_of(directory: Path) -> None:
    """Run as the owner of the storage directory (the `loacam` service user).

    Root would otherwise leave a database the service cannot write, and would follow
    any link planted in that directory. Before the service is installed the directory
    may not exist yet: then root creates it and keeps it.
    """
    try:
        owner = directory.stat()
    except FileNotFoundError:
        return
    if owner.st_uid != 0:
        os.setgroups([])
        os.setgid(owner.st_gid)
        os.setuid(owner.st_uid)


async def _store_user(config: Config, name: str, role: Role, password: str) -> int:
    try:
        store = await Store.open(config.storage.path)
    except StoreError as exc:
        print(f"loacam: {exc}", file=sys.stderr)
        return 73
    try:
        await add_user(
            store, name, role.value, await asyncio.to_thread(hash_password_blocking, password)
        )
        await record_audit(store, actor="cli", action="user.add", target=name, detail=role.value)
    except UserExistsError:
        print(f"loacam: user {name!r} already exists", file=sys.stderr)
        return EX_DATAERR
    finally:
        await store.close()
    print(f"user {name} ({role.value}) created")
    return 0
