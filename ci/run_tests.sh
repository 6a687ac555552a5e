#!/usr/bin/env bash
# Test command: set up .venv (reused when present) and, when missing, the
# chromium browser of the results site's browser test, then ruff, the unit
# tests and benchopt's own test suite on every benchmark. Exits non-zero on
# the first failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash ci/setup_env.sh
# tests/test_site.py opens the results site in headless Chromium (Debian's
# chromium package). Install it when missing and apt-get can (as root); else
# the browser test is skipped and says why (LEARNOPT_REQUIRE_BROWSER=1 makes
# that a failure).
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "=== apt-get install chromium (browser test of the results site)"
        { timeout 900 apt-get update -qq \
            && DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq chromium; } \
            || echo "warning: could not install chromium: the browser test will be skipped"
    else
        echo "note: no chromium (Debian package chromium, needs root): the browser test will be skipped"
    fi
fi
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
