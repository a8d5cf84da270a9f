#!/usr/bin/env bash
# The whole test suite, set-up included: lint, strict types, then pytest
# (unit, component against real peers, end to end with the daemon as a process).
# Extra arguments go to pytest, e.g.: bash scripts/test.sh -k config
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest --cov --cov-report=term "$@"
