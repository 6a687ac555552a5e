"""Microseconds per iteration of SOBA and SABA (printed, not a test).

    .venv/bin/python benchmarks/bilevel_speed.py [--devices cpu cuda] [--repeats 20]

One line per measurement, ``name: value unit``; lines starting with ``#`` are
notes. The problem is the benchmark's ``simulated`` dataset: logistic
regression with one regularization per feature on ijcnn1's shape (49,990
training and 91,701 validation samples, 22 features), batch 64, float32.

The solvers are the benchmark's own solver classes, driven as benchopt drives
them: ``set_objective``, ``warm_up`` (untimed by benchopt; reported here as
``<solver>_<device>_compile``: it compiles the ``compiled`` implementation),
then ``run`` with a callback that reads the clock at each evaluation, after
the solver's loop has synchronized the device. Time per iteration is the
median over ``--repeats`` evaluation intervals of ``eval_freq`` (1024)
iterations, divided by 1024. Implementations (the solvers' ``implementation``
parameter):

- ``oracles``: one iteration per Python call, on the problem's generic
  mini-batch oracles (what every other problem uses);
- ``fused``: chunks of 8 iterations of the fused closed forms
  (``solvers_common/bilevel/fused.py``), eager torch;
- ``compiled``: the same iteration through ``torch.compile``: on the CPU a
  ``torch.while_loop`` over each interval of 1024 iterations, 4 iterations
  per turn (the loop in C++ around fused kernels), on CUDA chunks of 8
  replayed as a CUDA graph. Its compile time is measured with an empty inductor cache (a fresh
  ``TORCHINDUCTOR_CACHE_DIR``) unless ``--warm-cache``.

torch runs on one CPU thread, as the benchmark's objective sets it. Each
wall-clock time comes with ``..._process_cpu_time``, the CPU time of this
process over the same intervals: on a machine shared with other jobs the
wall clock also counts the time the process waited for a core, which the CPU
time leaves out (it is what the wall clock would read on an idle machine).
``load_average`` is the machine's 1-minute load when the measurements end.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

BENCHMARK = Path(__file__).parents[1] / "benchmark_bilevel"
EVAL_FREQ = 1024
# The targets on the CPU, microseconds per iteration.
TARGETS_US = {"soba": 10.0, "saba": 40.0}
COMPILE_TARGET_S = 30.0


def make_objective(benchmark):
    from benchopt.utils.run_context import RunContext
    dataset_class = next(d for d in benchmark.get_datasets() if d.name == "simulated")
    dataset = dataset_class.get_instance()
    objective = benchmark.get_benchmark_objective().get_instance()
    RunContext().set_run_context(objective, dataset, "speed", repetition=0, base_seed=0)
    objective.set_data(**dataset.get_data())
    return objective


def measure(benchmark, objective, name, implementation, device, repeats):
    """(wall-clock seconds per iteration, CPU seconds of this process per
    iteration, warm_up wall-clock seconds)."""
    from benchopt.utils.run_context import RunContext
    solver_class = next(s for s in benchmark.get_solvers() if s.name == name)
    solver = solver_class.get_instance(implementation=implementation, device=device,
                                       batch_size=64, eval_freq=EVAL_FREQ, step_size=0.1,
                                       outer_ratio=1.0)
    RunContext().set_run_context(objective, "speed", solver, repetition=0, base_seed=0)
    solver.set_objective(**objective.get_objective())
    start = time.perf_counter()
    solver.warm_up()
    warm_up_seconds = time.perf_counter() - start
    wall_reads, cpu_reads = [], []

    def callback():
        wall_reads.append(time.perf_counter())
        cpu_reads.append(time.process_time())
        return len(wall_reads) <= repeats
    solver.run(callback)
    if not bool(torch.isfinite(solver.lmbd).all()):
        raise RuntimeError(f"{name}[{implementation}] diverged during the measurement.")

    def per_iteration(reads):
        intervals = [later - earlier for earlier, later in zip(reads[:-1], reads[1:])]
        return statistics.median(intervals) / EVAL_FREQ
    return per_iteration(wall_reads), per_iteration(cpu_reads), warm_up_seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+", default=None,
                        help="default: cpu, and cuda when available")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--solvers", nargs="+", default=["soba", "saba"])
    parser.add_argument("--implementations", nargs="+",
                        default=["oracles", "fused", "compiled"])
    parser.add_argument("--warm-cache", action="store_true",
                        help="keep inductor's cache: compile times of a second run")
    arguments = parser.parse_args()
    if not arguments.warm_cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor_")
    devices = arguments.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    sys.path.insert(0, str(BENCHMARK))
    from benchopt.benchmark import Benchmark
    benchmark = Benchmark(BENCHMARK)
    objective = make_objective(benchmark)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"eval_freq {EVAL_FREQ}, median of {arguments.repeats} intervals")
    for device in devices:
        for name in arguments.solvers:
            for implementation in arguments.implementations:
                wall, cpu, warm_up = measure(benchmark, objective, name, implementation, device,
                                             arguments.repeats)
                print(f"{name}_{device}_{implementation}: {wall * 1e6:.1f} us", flush=True)
                print(f"{name}_{device}_{implementation}_process_cpu_time: {cpu * 1e6:.1f} us",
                      flush=True)
                if implementation == "compiled":
                    print(f"{name}_{device}_compile: {warm_up:.1f} s", flush=True)
            if device == "cpu":
                print(f"# target {name}_cpu <= {TARGETS_US[name]:.0f} us, "
                      f"compile <= {COMPILE_TARGET_S:.0f} s")
    print(f"load_average: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
