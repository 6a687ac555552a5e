#!/usr/bin/env bash
# Build the static results site site/: index.html linking one report page per
# benchmark, each with the benchmark's custom plots as interactive plotly
# figures (plotly.js shipped in the site: no network needed) and PNG exports,
# tables ranking the solvers per dataset, benchopt's HTML report and the
# result file (parquet) for download.
#
# Usage:
#   bash ci/build_site.sh                        run every benchmark's configs/quick.yml, then build
#   bash ci/build_site.sh benchmark_unrolling    the same for the named benchmark(s) only
#   bash ci/build_site.sh --latest [benchmark..] no run: the newest result file under each
#                                                <benchmark>/outputs/
#   bash ci/build_site.sh FILE.parquet [...]     no run: these result files (the benchmark of
#                                                each is the folder it lies in, or else the
#                                                benchmark whose objective wrote it)
#   bash ci/build_site.sh --evidence             run every evidence config (ci/evidence.py
#                                                configs), then build the site with its
#                                                gallery page evidence.html (the claims,
#                                                their numbers, holds or not)
#   bash ci/build_site.sh --evidence --latest    no run: the newest result of each evidence
#                                                config
#   --site DIR                                   write the site to DIR instead of site/
# Publish the folder as it is (see README, "Publishing results").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() { sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

site="$ROOT/site"
latest=0
evidence=0
benchmarks=()
results=()
while [ "$#" -gt 0 ]; do
    case "$1" in
        --site) [ "$#" -ge 2 ] || { echo "error: --site needs a folder" >&2; exit 2; }
                site="$(realpath -m "$2")"; shift 2; continue ;;
        --latest) latest=1 ;;
        --evidence) evidence=1 ;;
        -h|--help) usage; exit 0 ;;
        *.parquet) [ -f "$1" ] || { echo "error: no result file $1" >&2; exit 2; }
                   results+=("$(realpath "$1")") ;;
        *) [ -f "${1%/}/objective.py" ] || {
               echo "error: $1 is neither a result file (.parquet) nor a benchmark folder" >&2
               usage >&2; exit 2; }
           benchmarks+=("$(realpath "$1")") ;;
    esac
    shift
done

cd "$ROOT"
bash ci/setup_env.sh
export PATH="$ROOT/.venv/bin:$PATH"

if [ "$evidence" -eq 1 ]; then
    # Each evidence config once (several claims may share one); its result
    # file is named after it, which is how ci/evidence.py finds it.
    mapfile -t configs < <(python ci/evidence.py configs)
    [ "${#configs[@]}" -gt 0 ] || { echo "error: no evidence config (ci/claims_*.py)" >&2; exit 1; }
    for config in "${configs[@]}"; do
        benchmark="$ROOT/$(dirname "$(dirname "$config")")"
        stem="$(basename "$config" .yml)"
        if [ "$latest" -eq 1 ]; then
            newest="$(ls -t "$benchmark"/outputs/"${stem}"_*.parquet 2>/dev/null | head -n 1 || true)"
            if [ -z "$newest" ]; then
                echo "skip $config: no result file $benchmark/outputs/${stem}_*.parquet"
                continue
            fi
            results+=("$newest")
        else
            output="$benchmark/outputs/${stem}_$(date +%Y-%m-%d_%Hh%Mm%S).parquet"
            echo "=== benchopt run --config $config"
            benchopt run "$benchmark" --config "$ROOT/$config" --no-plot --output "$output"
            results+=("$output")
        fi
    done
    benchmarks=()
    [ "${#results[@]}" -gt 0 ] || { echo "error: no evidence result file" >&2; exit 1; }
    python ci/build_site.py --evidence --site "$site" "${results[@]}"
    python ci/evidence.py table
    exit 0
fi

# Benchmarks to run (or to take the newest result of): the named ones, or all
# of them when no result file and no benchmark is given.
if [ "${#benchmarks[@]}" -eq 0 ] && [ "${#results[@]}" -eq 0 ]; then
    for objective in "$ROOT"/benchmark_*/objective.py; do
        benchmarks+=("$(dirname "$objective")")
    done
fi
for benchmark in "${benchmarks[@]}"; do
    name="$(basename "$benchmark")"
    if [ "$latest" -eq 1 ]; then
        newest="$(ls -t "$benchmark"/outputs/*.parquet 2>/dev/null | head -n 1 || true)"
        if [ -z "$newest" ]; then
            echo "skip $name: no result file under $benchmark/outputs/"
            continue
        fi
        echo "=== $name: newest result $newest"
        results+=("$newest")
    else
        config="$benchmark/configs/quick.yml"
        [ -f "$config" ] || { echo "skip $name: no $config"; continue; }
        output="$benchmark/outputs/quick_$(date +%Y-%m-%d_%Hh%Mm%S).parquet"
        echo "=== $name: benchopt run --config $config"
        benchopt run "$benchmark" --config "$config" --no-plot --output "$output"
        results+=("$output")
    fi
done
if [ "${#results[@]}" -eq 0 ]; then
    echo "error: no result file to build the site from" >&2
    exit 1
fi
python ci/build_site.py --site "$site" "${results[@]}"
