#!/usr/bin/env bash
# Create (or reuse) the virtual environment .venv at the repository root and
# install learnopt-bench into it in editable mode, with the test tools.
# Usage: source ci/setup_env.sh   (or bash ci/setup_env.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
    echo "Creating the virtual environment $ROOT/.venv"
    "$PYTHON" -m venv "$ROOT/.venv"
fi
# Reinstall only when pyproject.toml changed since the last install.
STAMP="$ROOT/.venv/.learnopt-installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
    "$ROOT/.venv/bin/python" -m pip install --quiet --upgrade pip
    "$ROOT/.venv/bin/python" -m pip install --quiet -e "$ROOT[test]"
    touch "$STAMP"
fi
