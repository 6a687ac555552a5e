#!/usr/bin/env bash
# Test command: set up .venv (reused when present), then ruff, the unit tests
# and benchopt's own test suite on every benchmark. Exits non-zero on the
# first failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash ci/setup_env.sh
# benchopt test runs the pytest of the active environment.
export PATH="$ROOT/.venv/bin:$PATH"

echo "=== ruff check"
ruff check .
echo "=== pytest tests"
python -m pytest tests -q
for benchmark in benchmark_*/; do
    benchmark="${benchmark%/}"
    echo "=== benchopt test $benchmark --skip-install"
    benchopt test "$benchmark" --skip-install -q
done
echo "All tests passed."
