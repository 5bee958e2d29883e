#!/usr/bin/env bash
# Install everything the tests need, then run lint, types and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
.venv/bin/ruff check agent connectors admin tests bench
.venv/bin/ruff format --check agent connectors admin tests bench
.venv/bin/mypy
.venv/bin/lint-imports --no-cache
exec .venv/bin/python -m pytest -n 2 -p no:cacheprovider "$@"
