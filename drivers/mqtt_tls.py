"""TLS towards the MQTT broker: the settings and the context they make."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MqttTls:
    """TLS towards the broker. The broker's certificate is always verified.

    `ca_file` None: against the system's trust store. `cert_file`/`key_file`: a client
    certificate, for a broker that asks for one. `insecure` skips only the host-name
    check (a broker reached by an address its certificate does not name).
    """

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False


def ssl_context_blocking(tls: MqttTls) -> ssl.SSLContext:
    """The TLS context for `tls` (reads certificate files: call it from a thread)."""
    # With a CA file, that CA alone is trusted; without, the system's store. OSError
    # (ssl.SSLError included) for a missing file or one that is not PEM.
    context = ssl.create_default_context(cafile=tls.ca_file)
    if tls.cert_file is not None:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    # Still CERT_REQUIRED: the chain is verified, only the name is not compared.
    context.check_hostname = not tls.insecure
    return context
