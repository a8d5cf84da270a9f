"""The configuration model: one YAML file, validated by these pydantic models.

Every model forbids unknown keys and describes every field; `docs/configuration.md`
and `config/loacam.example.yaml` explain the same keys for operators.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from daemon.config_audio import AbsolutePath, AudioConfig, BroadcastsConfig, Model

DEFAULT_CONFIG_PATH = Path("/etc/loacam/loacam.yaml")

# Ids end up in MQTT topic levels, URLs and file names: keep them to a safe alphabet.
SLUG = r"^[a-z0-9](?:[a-z0-9_-]{0,62})$"
SLUG_HELP = "use 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit"
_SLUG = re.compile(SLUG)
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_CREDENTIAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class SecretSources:
    """Where `{env: NAME}` and `{credential: NAME}` secret references are looked up."""

    environ: Mapping[str, str]
    credentials_dir: Path | None

    @classmethod
    def from_process(cls) -> SecretSources:
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        return cls(dict(os.environ), Path(creds) if creds else None)


def _resolve_secret(value: object, info: ValidationInfo) -> object:
    """Turn `{env: NAME}` / `{credential: NAME}` into the secret's text.

    Literal strings pass through. `credential` names a file in systemd's
    $CREDENTIALS_DIRECTORY (LoadCredential=), so the secret never sits in the YAML.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        # YAML reads password: 012345 as the number 5349; refuse rather than guess.
        raise ValueError('write the secret in quotes, e.g. password: "012345"')  # noqa: TRY004 - pydantic reports ValueError only
    if not isinstance(value, dict):
        return value
    sources = info.context.get("secrets") if isinstance(info.context, dict) else None
    if not isinstance(sources, SecretSources):
        sources = SecretSources.from_process()
    if set(value) == {"env"} and isinstance(value["env"], str):
        name = value["env"]
        if name not in sources.environ:
            raise ValueError(f"environment variable {name} is not set")
        return sources.environ[name]
    if set(value) == {"credential"} and isinstance(value["credential"], str):
        name = value["credential"]
        if not _CREDENTIAL_NAME.match(name):
            raise ValueError(f"credential name {name!r} must be a plain file name")
        if sources.credentials_dir is None:
            raise ValueError(
                f"credential {name!r} requested but $CREDENTIALS_DIRECTORY is not set "
                "(use LoadCredential= in the systemd unit)"
            )
        try:
            return (sources.credentials_dir / name).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ValueError(f"cannot read credential {name!r}: {exc.strerror}") from exc
    raise ValueError("a secret is a string, {env: NAME} or {credential: NAME}")


def _check_slug(value: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(f"{value!r} is not a valid id: {SLUG_HELP}")
    return value


def _check_topic_level(value: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(
            f"{value!r} is not a valid MQTT topic level: {SLUG_HELP} (no '/', '+', '#' or spaces)"
        )
    return value


def _check_host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOSTNAME.match(value):
            raise ValueError(f"{value!r} is not a host name or an IP address") from None
    return value


def _check_foreign_topic_level(value: str) -> str:
    # Another system's id (a Rhasspy siteId): looser than our ids, but it must stay
    # one MQTT topic level.
    if not value or len(value) > 64 or any(c in value for c in "/+#\0"):
        raise ValueError(f"{value!r} must be 1-64 characters without '/', '+' or '#'")
    return value


Secret = Annotated[SecretStr, BeforeValidator(_resolve_secret)]
Slug = Annotated[str, AfterValidator(_check_slug)]
Host = Annotated[str, AfterValidator(_check_host)]
# strict: YAML `port: true` must not become port 1.
Port = Annotated[int, Field(ge=1, le=65535, strict=True)]
MIN_TOKEN_SECRET = 32


class HttpConfig(Model):
    host: Host = Field("0.0.0.0", description="Address the API and web console listen on.")  # noqa: S104 - the console is meant for the office LAN
    port: Port = Field(8080, description="TCP port of the API and web console.")
    cookie_secure: bool = Field(
        default=False,
        description="Mark the login cookie Secure; turn on when served over HTTPS "
        "(behind a reverse proxy).",
    )
    graceful_timeout_s: int = Field(
        3, ge=1, le=5, description="Seconds open HTTP connections get to finish on shutdown."
    )


class StorageConfig(Model):
    path: AbsolutePath = Field(
        Path("/var/lib/loacam"), description="Directory for the SQLite database and media cache."
    )


def _mqtt_protocol(value: object) -> object:
    # YAML reads `protocol: 5` as a number and `protocol: 3.1.1` as text.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


MqttProtocol = Annotated[Literal["5", "3.1.1"], BeforeValidator(_mqtt_protocol)]


class MqttTlsConfig(Model):
    enabled: bool = Field(
        default=False, description="Connect to the broker over TLS (its port is then usually 8883)."
    )
    ca_file: AbsolutePath | None = Field(
        None,
        description="CA certificate (PEM) the broker's certificate must be signed by; "
        "default: the system's trusted CAs.",
    )
    cert_file: AbsolutePath | None = Field(
        None, description="Client certificate (PEM), for a broker that asks for one."
    )
    key_file: AbsolutePath | None = Field(None, description="Private key (PEM) of cert_file.")
    insecure: bool = Field(
        default=False,
        description="Do not compare the broker's certificate with its host name "
        "(the certificate is still verified against the CA).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> MqttTlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            given, missing = (
                ("cert_file", "key_file") if self.key_file is None else ("key_file", "cert_file")
            )
            raise ValueError(f"{given} is given without {missing}: give both, or neither")
        if not self.enabled:
            # A CA file while TLS is off would let an operator believe the link is encrypted.
            set_keys = {
                "ca_file": self.ca_file is not None,
                "cert_file": self.cert_file is not None,
                "insecure": self.insecure,
            }
            stray = next((name for name, is_set in set_keys.items() if is_set), None)
            if stray is not None:
                raise ValueError(
                    f"{stray} has no effect while enabled is false: set enabled: true, or remove it"
                )
        return self


class MqttConfig(Model):
    host: Host = Field("127.0.0.1", description="MQTT broker host.")
    port: Port = Field(1883, description="MQTT broker port.")
    username: str | None = Field(None, description="MQTT user name, if the broker wants one.")
    password: Secret | None = Field(
        None, description="MQTT password: a string, {env: NAME} or {credential: NAME}."
    )
    client_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="MQTT client id; default loacam-<site>. No '+', '#' or '/'.",
    )
    keepalive_s: int = Field(30, ge=5, le=600, description="MQTT keep-alive interval in seconds.")
    protocol: MqttProtocol = Field(
        "5", description="MQTT version: 5 (message expiry, correlation data) or 3.1.1."
    )
    tls: MqttTlsConfig = Field(
        default_factory=MqttTlsConfig, description="TLS towards the broker (off by default)."
    )


class AuthConfig(Model):
    token_ttl_minutes: int = Field(
        480, ge=5, le=7 * 24 * 60, description="How long a login stays valid (default 8 hours)."
    )
    token_secret: Secret | None = Field(
        None,
        description="Key that signs login tokens. Default: generated on first start and kept "
        "in <storage.path>/token.key. Changing it logs everybody out.",
    )
    max_failed_logins: int = Field(
        5, ge=1, le=100, description="Failed logins per user or client address before a pause."
    )
    lockout_minutes: int = Field(
        5, ge=1, le=24 * 60, description="How long the pause after too many failed logins lasts."
    )

    @field_validator("token_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_TOKEN_SECRET:
            raise ValueError(f"token_secret must have at least {MIN_TOKEN_SECRET} characters")
        return value


class CameraConfig(Model):
    id: Slug = Field(description="Camera id, used in URLs and MQTT topics.")
    name: str = Field(min_length=1, max_length=120, description="Name shown to users.")
    host: Host = Field(description="Camera address (IP or host name).")
    port: Port = Field(80, description="ONVIF HTTP port of the camera.")
    username: str = Field("admin", description="ONVIF user name.")
    password: Secret | None = Field(
        None, description="ONVIF password: a string, {env: NAME} or {credential: NAME}."
    )
    share_with_district: bool = Field(
        default=False, description="Let users with the district role watch this camera."
    )
    share_with_radio: bool = Field(
        default=False, description="Let users with the radio role watch this camera."
    )
    sync_time: bool = Field(
        default=False, description="Set the camera's clock from this server's clock on connect."
    )
    enabled: bool = Field(default=True, description="Watch this camera (false: shown as offline).")
    timeout_s: float = Field(
        5.0, gt=0, le=60, description="Deadline in seconds for each ONVIF call and snapshot."
    )
    keepalive_s: float = Field(
        30.0, ge=1, le=600, description="Seconds between keep-alive checks of a connected camera."
    )
    always_on: bool = Field(
        default=False,
        description="Keep the live capture running without viewers (else it starts on demand).",
    )


class SpeakerConfig(Model):
    id: Slug = Field(description="Speaker cluster id, used in MQTT topics.")
    name: str = Field(min_length=1, max_length=120, description="Name shown to users.")
    driver: Literal["native", "hermes"] = Field(
        "native", description="native (loacam protocol) or hermes (Rhasspy audio server)."
    )
    zone: Slug = Field(description="Zone (village, thôn) the cluster belongs to.")
    site_id: Annotated[str, AfterValidator(_check_foreign_topic_level)] | None = Field(
        None, description="hermes only: the Rhasspy siteId; defaults to the speaker id."
    )


class ZoneConfig(Model):
    id: Slug = Field(description="Zone id (a village, thôn), used in speaker settings and the API.")
    name: str = Field(min_length=1, max_length=120, description="Zone name shown to users.")


class FleetConfig(Model):
    media_base_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="Address speakers download audio from (e.g. https://loa.xa.gov.vn); "
        "default http://<http.host>:<http.port>, with 127.0.0.1 for 0.0.0.0.",
    )
    offline_alarm_after_s: float = Field(
        600.0, ge=1, le=7 * 24 * 3600, description="Seconds offline before a speaker alarm."
    )
    command_expiry_s: float = Field(
        300.0, ge=5, le=24 * 3600, description="Seconds a command stays valid (play, volume...)."
    )
    resend_after_s: float = Field(
        30.0, ge=1, le=3600, description="Seconds without an ack before a command is re-sent."
    )
    hermes_seen_s: float = Field(
        120.0,
        ge=5,
        le=24 * 3600,
        description="Hermes speakers count as online this long after their last message.",
    )
    test_tone_s: float = Field(
        3.0, ge=0.5, le=30, description="Length in seconds of the test tone."
    )


class LiveConfig(Model):
    jpeg_quality: int = Field(80, ge=30, le=95, description="JPEG quality of live frames.")
    linger_s: float = Field(
        10.0, ge=0, le=600, description="Seconds a capture keeps running after its last viewer."
    )
    stall_after_s: float = Field(
        10.0, ge=2, le=120, description="Seconds without a frame before a stream is reconnected."
    )
    hls_idle_s: float = Field(
        30.0, ge=5, le=600, description="Seconds an HLS remux keeps running after its last request."
    )
    hls_dir: AbsolutePath | None = Field(
        None, description="Directory for HLS segments (default <storage.path>/hls; tmpfs is best)."
    )


class LoggingConfig(Model):
    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level of the daemon."
    )


class Config(Model):
    site: Annotated[str, AfterValidator(_check_topic_level)] = Field(
        description="Identifies this commune; the MQTT topic level in loacam/<site>/...",
    )
    http: HttpConfig = Field(default_factory=HttpConfig, description="HTTP API and web console.")
    storage: StorageConfig = Field(default_factory=StorageConfig, description="Where data lives.")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="The MQTT broker.")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="Logins and tokens.")
    live: LiveConfig = Field(default_factory=LiveConfig, description="Live view (MJPEG, HLS).")
    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Logging.")
    cameras: list[CameraConfig] = Field(default_factory=list, description="ONVIF cameras.")
    speakers: list[SpeakerConfig] = Field(default_factory=list, description="Loudspeaker clusters.")
    zones: list[ZoneConfig] = Field(
        default_factory=list,
        description="Zone names; a zone a speaker names without an entry here is named by its id.",
    )
    fleet: FleetConfig = Field(default_factory=FleetConfig, description="Speaker fleet.")
    audio: AudioConfig = Field(
        default_factory=AudioConfig, description="Announcements: text-to-speech, audio, uploads."
    )
    broadcasts: BroadcastsConfig = Field(
        default_factory=BroadcastsConfig, description="Broadcast rules (quiet hours)."
    )

    @property
    def mqtt_client_id(self) -> str:
        return self.mqtt.client_id or f"loacam-{self.site}"

    @property
    def status_topic(self) -> str:
        return f"loacam/{self.site}/daemon/status"


@dataclass(frozen=True)
class Problem:
    """One configuration error before it is tied to a file line."""

    loc: tuple[str | int, ...]
    message: str


def cross_check(config: Config) -> list[Problem]:
    """Checks that span several fields, each pinned to the exact key at fault."""
    problems: list[Problem] = []
    sections = {
        "cameras": [camera.id for camera in config.cameras],
        "speakers": [speaker.id for speaker in config.speakers],
        "zones": [zone.id for zone in config.zones],
    }
    for section, ids in sections.items():
        first_at: dict[str, int] = {}
        for index, item_id in enumerate(ids):
            if item_id in first_at:
                problems.append(
                    Problem(
                        (section, index, "id"),
                        f"duplicate id {item_id!r} (already used by {section} "
                        f"item {first_at[item_id] + 1})",
                    )
                )
            else:
                first_at[item_id] = index
    for index, speaker in enumerate(config.speakers):
        if speaker.site_id is not None and speaker.driver != "hermes":
            problems.append(
                Problem(("speakers", index, "site_id"), "site_id only applies to driver: hermes")
            )
    return problems
