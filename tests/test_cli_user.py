"""`loacam user add`: the way the first admin is made (there is no default password)."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from daemon.auth import verify_password_blocking
from daemon.cli import main
from daemon.store import Store
from daemon.store.schema import audit_log, users
from tests.support import write_config


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "loacam.yaml", {"site": "t", "storage": {"path": str(tmp_path / "data")}}
    )


def add(config: Path, name: str, role: str, stdin: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["user", "add", name, "--role", role, "--password-stdin", "--config", str(config)])


async def read_back(config: Path) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    store = await Store.open(config.parent / "data")
    try:
        async with store.engine.connect() as conn:
            found = await conn.execute(
                sa.select(users.c.username, users.c.role, users.c.password_hash)
            )
            audit = await conn.execute(sa.select(audit_log.c.action, audit_log.c.target))
            return [tuple(r) for r in found.all()], [tuple(r) for r in audit.all()]
    finally:
        await store.close()


def test_user_add_stores_an_argon2id_hash(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert add(config, "chutich", "leader", "Mat-khau-dai-1\n", monkeypatch) == 0
    accounts, audit = asyncio.run(read_back(config))
    ((name, role, password_hash),) = accounts
    assert (name, role) == ("chutich", "leader")
    assert password_hash.startswith("$argon2id$")
    assert verify_password_blocking(password_hash, "Mat-khau-dai-1")  # newline not part of it
    assert audit == [("user.add", "chutich")]


@pytest.mark.parametrize(
    ("name", "password", "code", "message"),
    [
        ("ab", "short", 65, "at least 10 characters"),
        ("Bad Name", "long-enough-pw", 64, "user name 'Bad Name'"),
        ("ok", " padded-password ", 65, "must not start or end with spaces"),
    ],
)
def test_bad_names_and_passwords_are_refused(
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    password: str,
    code: int,
    message: str,
) -> None:
    assert add(config, name, "admin", password + "\n", monkeypatch) == code
    assert message in capsys.readouterr().err


def test_existing_user_is_not_overwritten(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert add(config, "kythuat", "technician", "first-password\n", monkeypatch) == 0
    assert add(config, "kythuat", "admin", "second-password\n", monkeypatch) == 65
    assert "already exists" in capsys.readouterr().err


def test_unknown_role_is_a_usage_error(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit) as caught:
        add(config, "x1", "mayor", "long-enough-pw\n", monkeypatch)
    assert caught.value.code == 2


def test_bad_config_is_78(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: [\n")
    assert add(bad, "x1", "admin", "long-enough-pw\n", monkeypatch) == 78


def test_root_leaves_the_database_to_the_service_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root, as CI and `systemd/install.sh` have")
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 4242, 4243)  # stands in for the `loacam` system user
    config = write_config(tmp_path / "loacam.yaml", {"site": "t", "storage": {"path": str(data)}})
    assert add(config, "admin", "admin", "long-enough-pw\n", monkeypatch) == 0
    owners = {(f.stat().st_uid, f.stat().st_gid) for f in data.glob("loacam.db*")}
    assert owners == {(4242, 4243)}
