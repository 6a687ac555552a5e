"""Microseconds per iteration of the single-loop bilevel solvers, eager and
compiled, on every smooth problem (printed, not a test).

    taskset -c 0 .venv/bin/python benchmarks/bilevel_speed.py [--solvers soba saba]
        [--problems quadratic simulated datacleaning] [--devices cpu cuda]
        [--repeats 10] [--unroll 4] [--warm-cache]

One line per measurement, ``name: value unit``; lines starting with ``#`` are
notes. The problems are the benchmark's datasets with their default
parameters: ``quadratic`` (20 inner and 10 outer variables, 1,024 samples
each), ``simulated`` (logistic regression with one regularization per
feature on ijcnn1's shape: 49,990 training and 91,701 validation samples, 22
features) and ``datacleaning`` (digits: 800 training and 400 validation
images, 64 features, 10 classes, 800 sample weights); batch 64, float32.

The solvers are the benchmark's own solver classes, driven as benchopt drives
them: ``set_objective``, ``warm_up`` (untimed by benchopt; reported here as
``<solver>_<problem>_<device>_compile``: it compiles the ``compiled``
implementation), then ``run`` with a callback that reads the clock at each
evaluation, after the solver's loop has synchronized the device. Time per
iteration is the median over ``--repeats`` evaluation intervals of
``eval_freq`` (1024) iterations, divided by 1024 (MRBO: 128 iterations of
12 mini-batches each). Implementations (the solvers' ``implementation``
parameter): ``oracles``, one iteration per Python call on the problem's
oracles; ``compiled``, the iteration of ``solvers_common/bilevel/fused.py``
through ``torch.compile`` (on the CPU a ``torch.while_loop`` over each
interval, ``--unroll`` iterations per turn, in C++ around fused kernels; on
CUDA chunks of 8 replayed as a CUDA graph). Compile times are measured with
an empty inductor cache (a fresh ``TORCHINDUCTOR_CACHE_DIR``) unless
``--warm-cache``.

Each compiled solver's time is also given as a ratio to compiled SOBA's on
the same problem (``..._over_soba``), and each problem's compiled speed-up
(``..._speedup``, eager over compiled), ratios of measurements of the same
run, which a loaded machine disturbs less than the times themselves.
Each time comes with the CPU time it took (this process's, and for the
compilation also that of the compiler processes it ran): on a machine shared
with other jobs the wall clock also counts the time the process waited for a
core, which the CPU time leaves out. ``load_average`` is the machine's
1-minute load when the measurements end.
torch runs on one thread, as the benchmark's objective sets it. The JAX
reference (benchopt/benchmark_bilevel) is not timed by this script: a note
says whether jax is installed to time it beside.
"""
import argparse
import importlib.util
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

BENCHMARK = Path(__file__).parents[1] / "benchmark_bilevel"
EVAL_FREQ = 1024
SOLVERS = ["soba", "saba", "srba", "fsla", "mrbo"]
PROBLEMS = ["quadratic", "simulated", "datacleaning"]
# Fewer iterations per evaluation for the solvers with many oracle calls per
# iteration (MRBO: 12 inner batches each).
EVAL_FREQS = {"mrbo": 128}
# Steps that keep every solver finite on every problem over the measurement.
STEPS = dict(step_size=0.01, outer_ratio=1.0)
# The targets on the CPU.
COMPILE_TARGET_S = 30.0
RATIO_TO_SOBA_TARGET = 2.0
DATACLEANING_SPEEDUP_TARGET = 5.0


def make_objective(benchmark, problem):
    from benchopt.utils.run_context import RunContext
    dataset_class = next(d for d in benchmark.get_datasets() if d.name == problem)
    dataset = dataset_class.get_instance()
    objective = benchmark.get_benchmark_objective().get_instance()
    RunContext().set_run_context(objective, dataset, "speed", repetition=0, base_seed=0)
    objective.set_data(**dataset.get_data())
    return objective


def cpu_seconds():
    """CPU time of this process and of its finished children (the C++
    compiler that inductor runs)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def measure(benchmark, objective, name, implementation, device, repeats, unroll):
    """(wall-clock and CPU seconds per iteration, warm_up wall-clock and CPU
    seconds)."""
    from benchopt.utils.run_context import RunContext
    solver_class = next(s for s in benchmark.get_solvers() if s.name == name)
    if unroll is not None:
        solver_class.compiled_unroll = unroll
    eval_freq = EVAL_FREQS.get(name, EVAL_FREQ)
    solver = solver_class.get_instance(implementation=implementation, device=device,
                                       batch_size=64, eval_freq=eval_freq, epochs=10 ** 6,
                                       **STEPS)
    RunContext().set_run_context(objective, "speed", solver, repetition=0, base_seed=0)
    solver.set_objective(**objective.get_objective())
    assert solver.compiled == (implementation == "compiled"), (name, implementation)
    start, start_cpu = time.perf_counter(), cpu_seconds()
    solver.warm_up()
    warm_up = (time.perf_counter() - start, cpu_seconds() - start_cpu)
    reads, cpu_reads = [], []

    def callback():
        reads.append(time.perf_counter())
        cpu_reads.append(time.process_time())
        return len(reads) <= repeats
    solver.run(callback)
    if not bool(torch.isfinite(solver.lmbd).all()):
        raise RuntimeError(f"{name}[{implementation}] diverged during the measurement.")

    def per_iteration(reads):
        intervals = [later - earlier for earlier, later in zip(reads[:-1], reads[1:])]
        return statistics.median(intervals) / eval_freq
    return per_iteration(reads), per_iteration(cpu_reads), warm_up


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+", default=None,
                        help="default: cpu, and cuda when available")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--solvers", nargs="+", default=SOLVERS)
    parser.add_argument("--problems", nargs="+", default=PROBLEMS)
    parser.add_argument("--unroll", type=int, default=None,
                        help="iterations per turn of the compiled while loop (default: "
                             "each solver's compiled_unroll)")
    parser.add_argument("--warm-cache", action="store_true",
                        help="keep inductor's cache: compile times of a second run")
    arguments = parser.parse_args()
    if not arguments.warm_cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor_")
    devices = arguments.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    sys.path.insert(0, str(BENCHMARK))
    from benchopt.benchmark import Benchmark
    benchmark = Benchmark(BENCHMARK)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} thread(s) after the "
          f"objective's set_data, eval_freq {EVAL_FREQ}, median of {arguments.repeats} "
          f"intervals; targets: compiled within {RATIO_TO_SOBA_TARGET:.0f}x of SOBA, "
          f"compile <= {COMPILE_TARGET_S:.0f} s, datacleaning compiled >= "
          f"{DATACLEANING_SPEEDUP_TARGET:.0f}x faster than eager")
    if importlib.util.find_spec("jax") is None:
        print("# JAX reference (benchopt/benchmark_bilevel) not timed: jax is not installed")
    else:
        print("# JAX reference not timed: run benchopt/benchmark_bilevel's soba beside "
              "this script (taskset -c 0, XLA on one thread) and compare")
    for device in devices:
        for problem in arguments.problems:
            objective = make_objective(benchmark, problem)
            compiled_times = {}
            for name in arguments.solvers:
                times = {}
                for implementation in ("oracles", "compiled"):
                    seconds, cpu, warm_up = measure(benchmark, objective, name, implementation,
                                                    device, arguments.repeats, arguments.unroll)
                    times[implementation] = (seconds, cpu)
                    label = f"{name}_{problem}_{device}_{implementation}"
                    print(f"{label}: {seconds * 1e6:.1f} us (process CPU {cpu * 1e6:.1f} us)",
                          flush=True)
                    if implementation == "compiled":
                        print(f"{name}_{problem}_{device}_compile: {warm_up[0]:.1f} s "
                              f"(CPU {warm_up[1]:.1f} s)", flush=True)
                compiled_times[name] = times["compiled"]

                def ratio(numerator, denominator):
                    return (f"{numerator[0] / denominator[0]:.2f} (CPU time: "
                            f"{numerator[1] / denominator[1]:.2f})")
                print(f"{name}_{problem}_{device}_speedup: "
                      f"{ratio(times['oracles'], times['compiled'])}", flush=True)
                if name != "soba" and "soba" in compiled_times:
                    print(f"{name}_{problem}_{device}_compiled_over_soba: "
                          f"{ratio(times['compiled'], compiled_times['soba'])}", flush=True)
    print(f"load_average: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
