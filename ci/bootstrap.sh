#!/usr/bin/env bash
# Create .venv and install the asya distribution with the extras a target needs.
# Usage: ci/bootstrap.sh [extras]   (default: the full test + dev + bench set)
# Idempotent: re-runs pip only when pyproject.toml changed since the last install.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
EXTRAS=${1:-test,dev,bench,operator,gateway}
VENV=$ROOT/.venv
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
STAMP=$VENV/.asya-installed-$(echo "$EXTRAS" | tr ',' '-')
if [ ! -f "$STAMP" ] || [ "$ROOT/python/pyproject.toml" -nt "$STAMP" ]; then
  "$VENV/bin/pip" install -q -e "$ROOT/python[$EXTRAS]"
  touch "$STAMP"
fi
