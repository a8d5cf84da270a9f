"""Checks for the shipped systemd unit and the install script.

`systemd-analyze verify` checks that ExecStart's binary exists and is
executable, and /opt/loacam/.venv/bin/loacam only exists on an installed host.
Rather than editing the unit, it is verified byte for byte as shipped, inside a
scratch root (`--root=`) laid out like an installed host: the unit at its
install path, an executable placeholder at the ExecStart path, and a copy of
the host's own systemd units (sysinit.target etc.), which `verify` needs to
build the unit's start job. Two control tests run the same harness on broken
inputs to prove it really reports problems rather than passing silently.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "loacam.service"
INSTALL_SH = REPO / "systemd" / "install.sh"

SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze"
SYSTEM_UNIT_DIR = Path("/usr/lib/systemd/system")
UNIT_INSTALL_PATH = Path("etc/systemd/system/loacam.service")
EXPECTED_EXEC_START = "/opt/loacam/.venv/bin/loacam run --config /etc/loacam/loacam.yaml"

Sections = dict[str, list[tuple[str, str]]]


def parse_unit(text: str) -> Sections:
    """Parse a unit file into section -> [(key, value), ...], in order.

    Keeps repeated keys (systemd allows them, e.g. several After= lines), so
    configparser's mapping model does not fit.
    """
    sections: Sections = {}
    current: list[tuple[str, str]] | None = None
    logical = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith(("#", ";"))):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        line, logical = logical + line, ""
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"directive outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(sections: Sections, section: str, key: str) -> list[str]:
    return [v for k, v in sections.get(section, []) if k == key]


def single(sections: Sections, section: str, key: str) -> str:
    found = values(sections, section, key)
    assert len(found) == 1, f"[{section}] {key}= set {len(found)} times: {found}"
    return found[0]


def words(sections: Sections, section: str, key: str) -> set[str]:
    return {w for v in values(sections, section, key) for w in v.split()}


def make_verify_root(root: Path, *, with_executable: bool = True) -> Path:
    """Lay out a scratch root for `systemd-analyze verify --root=`.

    Returns the path of the unit inside it, a byte-for-byte copy of UNIT.
    """
    unit_dir = root / "usr/lib/systemd/system"
    unit_dir.parent.mkdir(parents=True)
    shutil.copytree(SYSTEM_UNIT_DIR, unit_dir, symlinks=True)

    if with_executable:
        exec_start = single(parse_unit(UNIT.read_text()), "Service", "ExecStart")
        binary = root / shlex.split(exec_start)[0].lstrip("/")
        binary.parent.mkdir(parents=True)
        binary.write_text("#!/bin/sh\nexit 0\n")
        binary.chmod(0o755)

    unit = root / UNIT_INSTALL_PATH
    unit.parent.mkdir(parents=True)
    shutil.copyfile(UNIT, unit)
    assert unit.read_bytes() == UNIT.read_bytes()
    return unit


def run_verify(root: Path, unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            SYSTEMD_ANALYZE,
            "verify",
            f"--root={root}",
            # Explicit, so the result does not depend on the default:
            # generators would read the host's /etc/fstab and the like.
            "--generators=no",
            str(unit),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = make_verify_root(tmp_path)
    result = run_verify(tmp_path, unit)
    assert result.returncode == 0, result.stderr
    # verify exits 0 for many problems it only warns about (unknown keys,
    # unparsable values are "ignoring"), so any output at all is a failure.
    assert result.stderr == "", result.stderr
    assert result.stdout == "", result.stdout


def test_verify_harness_detects_missing_executable(tmp_path: Path) -> None:
    """Control: proves ExecStart is resolved inside the scratch root."""
    unit = make_verify_root(tmp_path, with_executable=False)
    result = run_verify(tmp_path, unit)
    assert result.returncode != 0
    assert "/opt/loacam/.venv/bin/loacam" in result.stderr


def test_verify_harness_reports_warnings(tmp_path: Path) -> None:
    """Control: proves the unit that is verified is the copy we wrote."""
    unit = make_verify_root(tmp_path)
    unit.write_text(UNIT.read_text().replace("[Service]\n", "[Service]\nNoSuchDirective=1\n", 1))
    result = run_verify(tmp_path, unit)
    assert "NoSuchDirective" in result.stderr


def test_unit_required_directives() -> None:
    text = UNIT.read_text()
    unit = parse_unit(text)
    assert set(unit) == {"Unit", "Service", "Install"}

    for key in ("After", "Wants"):
        assert {"network-online.target", "mosquitto.service"} <= words(unit, "Unit", key), key
    assert values(unit, "Unit", "Documentation"), "Documentation= missing"

    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "30",
        "ExecStart": EXPECTED_EXEC_START,
        "Restart": "on-failure",
        "RestartSec": "5",
        "RestartPreventExitStatus": "78",
        "TimeoutStopSec": "15",
        "User": "loacam",
        "Group": "loacam",
        "StateDirectory": "loacam",
        "StateDirectoryMode": "0750",
        "ConfigurationDirectory": "loacam",
        "ConfigurationDirectoryMode": "0750",
        "UMask": "0027",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "SystemCallArchitectures": "native",
    }
    for key, value in expected.items():
        assert single(unit, "Service", key) == value, key

    assert words(unit, "Service", "RestrictAddressFamilies") == {
        "AF_UNIX",
        "AF_INET",
        "AF_INET6",
        "AF_NETLINK",
    }
    # Breaks libffi closures (cffi/ctypes callbacks) in CPython.
    assert not values(unit, "Service", "MemoryDenyWriteExecute")
    # Credentials are documented but opt-in.
    assert not values(unit, "Service", "LoadCredential")
    assert "#LoadCredential=mqtt-password:/etc/loacam/credentials/mqtt-password" in text

    assert words(unit, "Install", "WantedBy") == {"multi-user.target"}


def test_parse_unit_keeps_repeats_and_continuations() -> None:
    parsed = parse_unit(
        "[Unit]\n# c\nAfter=a.service\nAfter=b.service \\\n  c.service\n"
        "[Service]\nCapabilityBoundingSet=\n"
    )
    assert words(parsed, "Unit", "After") == {"a.service", "b.service", "c.service"}
    assert single(parsed, "Service", "CapabilityBoundingSet") == ""


def test_install_sh_bash_syntax() -> None:
    result = subprocess.run(
        ["bash", "-n", str(INSTALL_SH)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert INSTALL_SH.stat().st_mode & 0o111, "install.sh is not executable"


def test_shell_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:  # scripts/setup.sh installs it; a bare checkout may lack it
        pytest.skip("shellcheck is not installed (optional lint)")
    scripts = [INSTALL_SH, *sorted((REPO / "scripts").glob("*.sh")), REPO / ".ci" / "run"]
    result = subprocess.run(
        [shellcheck, "--shell=bash", "--severity=style", *map(str, scripts)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
