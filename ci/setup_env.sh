#!/usr/bin/env bash
# Create (or reuse) the virtual environment .venv at the repository root and
# install learnopt-bench into it in editable mode, with the test tools and the
# cluster backends (dask, submitit) that the tests of configs/parallel_*.yml use.
# Usage: source ci/setup_env.sh   (or bash ci/setup_env.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
EXTRAS="test,dask,slurm"
if [ ! -x "$ROOT/.venv/bin/python" ]; then
    echo "Creating the virtual environment $ROOT/.venv"
    "$PYTHON" -m venv "$ROOT/.venv"
fi
# Reinstall only when pyproject.toml changed since the last install, or when
# the last install had other extras (the stamp holds them).
STAMP="$ROOT/.venv/.learnopt-installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ] \
        || [ "$(cat "$STAMP")" != "$EXTRAS" ]; then
    "$ROOT/.venv/bin/python" -m pip install --quiet --upgrade pip
    "$ROOT/.venv/bin/python" -m pip install --quiet -e "$ROOT[$EXTRAS]"
    echo "$EXTRAS" > "$STAMP"
fi
