#!/usr/bin/env bash
# GPU check: on a machine with CUDA, each benchmark's quick config with
# LEARNOPT_DEVICE=cuda, the speed scripts' GPU measurements and the clock test
# on CUDA; one line per check ("check <name>: ok|FAILED|skipped (<s> s) ..."),
# exit 1 if any check failed. Sized for at most 8 minutes on one GPU (each
# check has its own time limit).
# Without CUDA it runs its CPU fallback: the same checks on the CPU, each
# benchmark on a tiny problem instead of its quick config, the speed scripts
# skipped (they measure the GPU); tests/test_gpu_check.py runs that fallback.
# Usage: bash ci/gpu_check.sh        (full output of each check: $GPU_CHECK_LOGS,
#                                     default a temporary folder, printed;
#                                     GPU_CHECK_ONLY="clock benchmark_bilevel"
#                                     runs only the checks it names)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[ -x "$ROOT/.venv/bin/python" ] && export PATH="$ROOT/.venv/bin:$PATH"
LOGS="${GPU_CHECK_LOGS:-$(mktemp -d -t learnopt-gpu-check-XXXXXX)}"
mkdir -p "$LOGS"
failed=0

# check NAME LIMIT_SECONDS COMMAND...: one line with the status, the time and
# the command's last output line.
check() {
    local name="$1" limit="$2"
    shift 2
    if [ -n "${GPU_CHECK_ONLY:-}" ] && [[ " $GPU_CHECK_ONLY " != *" $name "* ]]; then
        return
    fi
    local start=$SECONDS log="$LOGS/$name.log"
    timeout "$limit" "$@" >"$log" 2>&1
    local status=$?
    local last
    last="$(sed 's/\x1b\[[0-9;]*m//g' "$log" | tr -d '\r' | grep -v '^\s*$' | tail -n 1 \
        | sed 's/\s*$//' | cut -c1-160)"
    if [ "$status" -eq 0 ]; then
        echo "check $name: ok ($((SECONDS - start)) s) $last"
    else
        [ "$status" -eq 124 ] && last="timed out after $limit s"
        echo "check $name: FAILED ($((SECONDS - start)) s, exit $status) $last"
        failed=1
    fi
}

if python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    device=cuda
    echo "check device: $(python -c "import torch; print(torch.cuda.get_device_name(), \
'| CUDA', torch.version.cuda, '| torch', torch.__version__)")"
else
    device=cpu
    echo "check device: no CUDA device: CPU fallback (tiny problems, no speed scripts)"
fi
export LEARNOPT_DEVICE="$device"
run=(benchopt run --no-html --no-plot --no-display --no-cache -n 1)

if [ "$device" = cuda ]; then
    for benchmark in benchmark_unrolling benchmark_sparse_training benchmark_inverse_problems \
            benchmark_bilevel; do
        check "$benchmark" 150 "${run[@]}" "$benchmark" --config "$benchmark/configs/quick.yml" \
            --output "$LOGS/$benchmark.parquet"
    done
    check unrolling_speed 60 python benchmarks/unrolling_speed.py --device cuda --repeats 3 \
        --only forward_small,train_small
    check sparse_training_speed 45 python benchmarks/sparse_training_speed.py --device cuda \
        --repeats 5
    check transformer_speed 45 python benchmarks/transformer_speed.py --device cuda --repeats 3
    check inverse_problems_speed 45 python benchmarks/inverse_problems_speed.py --device cuda \
        --repeats 3
    check bilevel_speed 60 python benchmarks/bilevel_speed.py --devices cuda --repeats 3 \
        --problems quadratic --solvers soba saba
else
    check benchmark_unrolling 120 "${run[@]}" benchmark_unrolling \
        -d "simulated[n_features=8,n_atoms=16,n_train=64,n_test=32,n_validation=32]" \
        -o "Unrolled sparse coding[n_layers=3]" -s "lista[batch_size=16,epochs=2]" \
        --output "$LOGS/benchmark_unrolling.parquet"
    check benchmark_sparse_training 120 "${run[@]}" benchmark_sparse_training \
        -d "simulated[n_train=64,n_test=32]" -s "linbreg[epochs=2,batch_size=32]" \
        --output "$LOGS/benchmark_sparse_training.parquet"
    check benchmark_inverse_problems 120 "${run[@]}" benchmark_inverse_problems \
        -d "images[crop_size=16,n_train=8,n_test=2,n_validation=2]" \
        -o "Image restoration[n_iterations=5,noise_levels='']" \
        -s "unrolled_pgd[n_layers=2,width=4,batch_size=4,epochs=1]" \
        --output "$LOGS/benchmark_inverse_problems.parquet"
    check benchmark_bilevel 120 "${run[@]}" benchmark_bilevel \
        -d "quadratic[dim_inner=5,dim_outer=3,n_inner_samples=64,n_outer_samples=64]" \
        -s "soba[batch_size=16,eval_freq=8,epochs=2]" \
        --output "$LOGS/benchmark_bilevel.parquet"
    echo "check speed scripts: skipped (no CUDA device)"
fi
check clock 180 python -m pytest -q -p no:cacheprovider tests/test_clock.py
echo "logs: $LOGS"
exit "$failed"
