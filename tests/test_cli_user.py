"""`loacam user add`: the way the first admin is made (there is no default password)."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from daemon.auth import verify_password_blocking
from daemon.cli import main
from daemon.store import Store
from daemon.store.schema import audit_log, users
from tests.support import REPO, write_config


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


@pytest.fixture
def service_dir() -> Iterator[Path]:
    """A storage directory owned by a stand-in service user (uid 4242), root running."""
    if os.geteuid() != 0:
        pytest.skip("needs root, as CI and `systemd/install.sh` have")
    # Outside pytest's private (0700) temporary tree, so the service user can reach it.
    base = Path(tempfile.mkdtemp(prefix="loacam-owner-"))
    base.chmod(0o755)
    data = base / "data"
    data.mkdir()
    os.chown(data, 4242, 4243)
    yield data
    shutil.rmtree(base)


def add_as_root(data: Path) -> subprocess.CompletedProcess[str]:
    config = write_config(
        data.parent / "loacam.yaml", {"site": "t", "storage": {"path": str(data)}}
    )
    command = ["user", "add", "admin", "--role", "admin", "--password-stdin", "--config"]
    return subprocess.run(
        [sys.executable, "-m", "daemon", *command, str(config)],
        input="long-enough-pw\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )


def test_root_acts_as_the_service_user(service_dir: Path) -> None:
    result = add_as_root(service_dir)
    assert result.returncode == 0, result.stderr
    db = service_dir / "loacam.db"
    assert (db.stat().st_uid, db.stat().st_gid) == (4242, 4243)


def test_a_link_planted_by_the_service_user_gets_root_nowhere(
    service_dir: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "root-only"
    secret.write_text("root's file")
    (service_dir / "loacam.db").symlink_to(secret)
    result = add_as_root(service_dir)
    assert result.returncode == 73
    assert "cannot open database" in result.stderr
    assert secret.read_text() == "root's file"
    assert secret.stat().st_uid == 0
