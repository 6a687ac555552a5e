#!/usr/bin/env bash
# Main job: set up .venv, run every benchmark on its offline quick config,
# write the results (parquet), benchopt's HTML report and the custom plots as
# PNG files, print which methods trained (ci/training_report.py), and print
# where they are.
# Usage: bash ci/run_benchmarks.sh [benchmark_dir ...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash ci/setup_env.sh
export PATH="$ROOT/.venv/bin:$PATH"

if [ "$#" -gt 0 ]; then benchmarks=("$@"); else benchmarks=(benchmark_*/); fi
summary=()
for benchmark in "${benchmarks[@]}"; do
    benchmark="${benchmark%/}"
    config="$benchmark/configs/quick.yml"
    [ -f "$config" ] || { echo "skip $benchmark: no $config"; continue; }
    stamp="$(date +%Y-%m-%d_%Hh%Mm%S)"
    output="$ROOT/$benchmark/outputs/quick_$stamp"
    echo "=== $benchmark: benchopt run --config $config"
    start=$SECONDS
    benchopt run "$benchmark" --config "$config" --no-display --output "$output.parquet"
    html="$(ls -t "$benchmark"/outputs/*quick_"$stamp"*.html | head -n 1)"
    python ci/render_plots.py "$benchmark" "$output.parquet" "${output}_png"
    # Which methods trained (validation metric, first -> final evaluation).
    python ci/training_report.py "$benchmark" "$output.parquet" | tee "${output}_training.txt"
    summary+=("$benchmark ($((SECONDS - start)) s):
    results: $output.parquet
    report:  $ROOT/$html
    plots:   ${output}_png/
    trained: ${output}_training.txt")
done
echo
echo "=== Results"
printf '%s\n' "${summary[@]}"
