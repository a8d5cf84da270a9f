"""The configuration file: validation, line numbers, secrets, `loacam check-config`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.config import SecretSources
from daemon.config_loader import ConfigError, load_config, parse_config
from tests.support import REPO

CONFIGS = Path(__file__).with_name("configs")
EXAMPLE = REPO / "config" / "loacam.example.yaml"
NO_SECRETS = SecretSources({}, None)


@pytest.mark.parametrize(
    ("name", "line", "path", "message"),
    [
        ("unknown_key.yaml", 4, "http.prot", "unknown key"),
        ("wrong_type.yaml", 4, "mqtt.port", "valid integer"),
        ("missing_key.yaml", 6, "cameras[1].name", "required key is missing"),
        ("duplicate_id.yaml", 9, "speakers[2].id", "duplicate id 'loa-thon-1'"),
        ("bad_site.yaml", 2, "site", "not a valid MQTT topic level"),
        ("malformed.yaml", 4, "(yaml)", "malformed YAML"),
    ],
)
def test_check_config_names_line_and_key(
    name: str, line: int, path: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    file = CONFIGS / name
    assert main(["check-config", str(file)]) == 78
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1, errors
    prefix = f"{file}:{line}: {path}: "
    assert errors[0].startswith(prefix), errors[0]
    assert message in errors[0]


def test_example_config_is_valid_through_the_installed_command() -> None:
    result = subprocess.run(
        [Path(sys.executable).with_name("loacam"), "check-config", str(EXAMPLE)],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_every_error_is_reported_at_once() -> None:
    text = "site: a b\nhttp: {port: 0}\nbogus: 1\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "x.yaml", NO_SECRETS)
    assert [str(i) for i in caught.value.issues] == [
        "x.yaml:1: site: 'a b' is not a valid MQTT topic level: use 1-63 lowercase letters, "
        "digits, '-' or '_', starting with a letter or digit (no '/', '+', '#' or spaces)",
        "x.yaml:2: http.port: Input should be greater than or equal to 1",
        "x.yaml:3: bogus: unknown key (check the spelling; see config/loacam.example.yaml)",
    ]


def test_duplicate_yaml_key_is_an_error_not_a_silent_override() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("site: a\nmqtt:\n  port: 1883\n  port: 1884\n", "x.yaml", NO_SECRETS)
    assert [str(i) for i in caught.value.issues] == [
        "x.yaml:4: mqtt.port: duplicate key (first given on line 3)"
    ]


def test_empty_file_says_site_is_missing() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("", "x.yaml", NO_SECRETS)
    assert [str(i) for i in caught.value.issues] == ["x.yaml:1: site: required key is missing"]


def test_root_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"x.yaml:1: \(root\): the file must be a YAML mapping"):
        parse_config("- a\n- b\n", "x.yaml", NO_SECRETS)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_secret_from_environment_is_kept_secret() -> None:
    text = "site: a\nmqtt:\n  password: {env: MQTT_PW}\n"
    config = parse_config(text, "x.yaml", SecretSources({"MQTT_PW": "s3cret-pw"}, None))
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == "s3cret-pw"
    assert "s3cret-pw" not in repr(config)
    assert "s3cret-pw" not in config.model_dump_json()


def test_secret_from_systemd_credentials(tmp_path: Path) -> None:
    (tmp_path / "cam-1").write_text("camera-pw\n")
    text = "site: a\ncameras:\n  - {id: c1, name: C, host: h, password: {credential: cam-1}}\n"
    config = parse_config(text, "x.yaml", SecretSources({}, tmp_path))
    password = config.cameras[0].password
    assert password is not None
    assert password.get_secret_value() == "camera-pw"


@pytest.mark.parametrize(
    ("value", "sources", "message"),
    [
        ("{env: NOPE}", NO_SECRETS, "environment variable NOPE is not set"),
        ("{credential: pw}", NO_SECRETS, "$CREDENTIALS_DIRECTORY is not set"),
        ("{credential: ../etc/shadow}", SecretSources({}, Path("/")), "must be a plain file name"),
        ("{credential: absent}", SecretSources({}, Path("/nonexistent")), "cannot read credential"),
        (
            "{file: /etc/shadow}",
            NO_SECRETS,
            "a secret is a string, {env: NAME} or {credential: NAME}",
        ),
    ],
)
def test_bad_secret_references(value: str, sources: SecretSources, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"site: a\nmqtt:\n  password: {value}\n", "x.yaml", sources)
    (issue,) = caught.value.issues
    assert issue.line == 3
    assert issue.path == "mqtt.password"
    assert message in issue.message


def test_site_id_only_for_hermes() -> None:
    text = "site: a\nspeakers:\n  - {id: s1, name: S, zone: z, site_id: x}\n"
    with pytest.raises(ConfigError, match=r"x.yaml:3: speakers\[0\].site_id: site_id only applies"):
        parse_config(text, "x.yaml", NO_SECRETS)


def test_defaults_are_sane() -> None:
    config = parse_config("site: phuc-hoa\n", "x.yaml", NO_SECRETS)
    assert (config.http.host, config.http.port) == ("0.0.0.0", 8080)
    assert str(config.storage.path) == "/var/lib/loacam"
    assert (config.mqtt.host, config.mqtt.port) == ("127.0.0.1", 1883)
    assert config.mqtt_client_id == "loacam-phuc-hoa"
    assert config.status_topic == "loacam/phuc-hoa/daemon/status"


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("http: {port: true}", "http.port", "valid integer"),
        ("http: {host: '0.0.0.0 ; rm -rf /'}", "http.host", "not a host name or an IP address"),
        ("mqtt: {host: 'broker/x'}", "mqtt.host", "not a host name"),
        ("storage: {path: var/lib/loacam}", "storage.path", "must be an absolute path"),
        ("auth: {token_secret: abc}", "auth.token_secret", "at least 32 characters"),
        ("mqtt: {password: 012345}", "mqtt.password", "write the secret in quotes"),
        (
            "speakers: [{id: s1, name: S, zone: z, driver: hermes, site_id: 'a/#'}]",
            "speakers[0].site_id",
            "without '/', '+' or '#'",
        ),
    ],
)
def test_unsafe_or_ambiguous_values_are_refused(text: str, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"site: a\n{text}\n", "x.yaml", NO_SECRETS)
    (issue,) = caught.value.issues
    assert (issue.line, issue.path) == (2, path)
    assert message in issue.message


def test_hosts_may_be_names_or_addresses() -> None:
    text = "site: a\nmqtt: {host: broker.thon-1.local}\nhttp: {host: '::'}\n"
    config = parse_config(text, "x.yaml", NO_SECRETS)
    assert (config.mqtt.host, config.http.host) == ("broker.thon-1.local", "::")


def test_an_unclosed_quote_points_at_where_it_opens() -> None:
    text = 'site: a\ncameras:\n  - id: c1\n    name: "Bộ phận một cửa\n    host: 10.0.0.1\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "x.yaml", NO_SECRETS)
    (issue,) = caught.value.issues
    assert issue.line == 4
    assert issue.message.startswith("malformed YAML")


def test_demo_refuses_an_impossible_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["demo", "--port", "70000"])
    assert caught.value.code == 2
    assert "'70000' is not a TCP port (1-65535)" in capsys.readouterr().err
