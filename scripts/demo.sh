#!/usr/bin/env bash
# Set-up, then `loacam demo`: a private broker, a throw-away database and a generated
# admin password, printed with the address to open. Ctrl-C stops everything.
# Extra arguments go to `loacam demo`, e.g.: bash scripts/demo.sh --port 8081
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/loacam demo "$@"
