#!/usr/bin/env bash
# Set-up for development, the demo and the tests on Debian 12, run as root (or with the
# Debian packages already installed). Safe to run again: it only does what is missing.
#   - Debian packages the daemon and its tests need
#   - a virtual environment in .venv with loacam (editable) and its dev tools
set -euo pipefail
cd "$(dirname "$0")/.."

# mosquitto: the private test/demo broker. systemd: systemd-analyze for the unit test.
# python3-venv makes the virtual environment; the shell scripts are linted with shellcheck.
# GStreamer's RTSP server (run by Debian's own python3 through python3-gi) gives the camera
# simulator real H.264 media; iproute2 builds the private network for the discovery test.
# ffmpeg remuxes H.264 to HLS for slow links; fonts-dejavu-core draws Vietnamese text;
# chromium runs the web console's browser tests (through Playwright). openssl makes the
# certificates of the MQTT TLS tests. espeak-ng speaks Vietnamese offline (the TTS fallback).
packages=(python3 python3-venv mosquitto systemd shellcheck openssl
    python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-x iproute2
    ffmpeg fonts-dejavu-core chromium espeak-ng)

missing=()
for package in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing Debian packages: ${missing[*]}" >&2
        echo "setup: run as root, or: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Debian starts the packaged broker on 127.0.0.1:1883; loacam's tests never use it.

# Debian's own Python 3.11, the one the production install uses too.
if ! .venv/bin/python -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    rm -rf .venv
    /usr/bin/python3 -m venv .venv
fi
# Within the versions the suite last passed with (requirements/constraints.txt), so a
# new release elsewhere cannot change a fresh clone's results.
stamp=.venv/.loacam-installed
wanted=$(cat pyproject.toml requirements/constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -c requirements/constraints.txt -e ".[dev]"
    echo "$wanted" > "$stamp"
fi
