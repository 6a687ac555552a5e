"""Microseconds per iteration of the single-loop bilevel solvers, eager and
compiled, on every smooth problem (printed, not a test).

    taskset -c 0 .venv/bin/python benchmarks/bilevel_speed.py [--solvers soba saba]
        [--problems quadratic simulated datacleaning ijcnn1] [--devices cpu cuda]
        [--repeats 10] [--unroll 4] [--warm-cache] [--reference PATH]

One line per measurement, ``name: value unit``; lines starting with ``#`` are
notes. The problems are the benchmark's datasets with their default
parameters: ``quadratic`` (20 inner and 10 outer variables, 1,024 samples
each), ``simulated`` (logistic regression with one regularization per
feature on ijcnn1's shape: 49,990 training and 91,701 validation samples, 22
features), ``datacleaning`` (digits: 800 training and 400 validation
images, 64 features, 10 classes, 800 sample weights) and, not by default,
``ijcnn1`` (the same logistic problem on the LIBSVM files, through
libsvmdata; when its cache lacks them and ../shared/data/libsvm/ beside the
repository holds ijcnn1.trn.bz2 and ijcnn1.tst.bz2, they are converted into a
temporary LIBSVMDATA_HOME); batch 64, float32.

The solvers are the benchmark's own solver classes, driven as benchopt drives
them: ``set_objective``, ``warm_up`` (untimed by benchopt; reported here as
``<solver>_<problem>_<device>_compile``: it compiles the ``compiled``
implementation), then ``run`` with a callback that reads the clock at each
evaluation, after the solver's loop has synchronized the device. Time per
iteration is the median over ``--repeats`` evaluation intervals of
``eval_freq`` (1024) iterations, divided by 1024 (MRBO: 128 iterations of
12 mini-batches each; SUSTAIN and TTSA: 128). Implementations (the solvers' ``implementation``
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
torch runs on one thread, as the benchmark's objective sets it, and with the
objective's allocator of small CPU blocks
(``solvers_common.small_block_allocator``; the header line says whether it
is installed): every solver, eager or compiled, is timed under it
(``LEARNOPT_SMALL_BLOCK_ALLOCATOR=0``: under torch's allocator).

The JAX reference (``--reference PATH``, default: the environment variable
BILEVEL_REFERENCE; a checkout of benchopt/benchmark_bilevel, the code of
Dagréou, Ablin, Vaiter and Moreau, NeurIPS 2022): with jax and jaxopt
installed (``pip install jax jaxopt``; optional, not a requirement of the
project), its SOBA and SABA are timed in the same run, on the CPU, on the
logistic problems (``simulated``, ``ijcnn1``): ``jax_<solver>_<problem>_cpu``,
``..._compile`` (their ``set_objective``: the jit compilation of
``eval_freq`` iterations, and the one interval their warm-up runs) and
``<solver>_<problem>_cpu_compiled_over_jax`` (ours compiled over theirs).
Their own code runs: the modules solvers/soba.py, solvers/saba.py (through
benchmark_utils/stochastic_jax_solver.py: their samplers, step-size
schedules and ``jax.lax.scan`` of ``eval_freq`` iterations under
``jax.jit``), objective.py and datasets/ijcnn1.py, imported from their
files (their ``benchmark_utils`` package for that moment only, ours being
the one of the same name), driven as benchopt drives them (``get_instance``,
``set_objective``, ``run`` with a callback). Their ijcnn1 dataset gets our
problem's training and validation arrays in place of its libsvmdata
download (its ``fetch_libsvm`` replaced), so that both implementations see
the same samples in the same order; its loss is ours (logistic loss plus
1/2 sum_k exp(lmbd_k) theta_k^2); their initial point (their objective's
random one) is theirs. The callback waits for the interval's iterations
(``jax.block_until_ready``) before reading the clock. XLA runs on one
thread (``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false``, set before jax is
imported; the ``intra_op_parallelism_threads=1`` often written beside it is
no XLA flag, a word without leading dashes that XLA ignores). Steps: the
reference's tuned ones for ijcnn1 (config/ijcnn1_best_params.yml; SOBA's
step decays as 1/sqrt(t+1) in both implementations, SABA's is constant) for
both implementations, on every logistic problem; when the reference's
iterates stop being finite with them, both are measured with ``STEPS``
instead, and when only ours do, ours is measured again with ``STEPS``; a
note says so.
"""
import argparse
import atexit
import bz2
import contextlib
import importlib.util
import io
import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

BENCHMARK = Path(__file__).parents[1] / "benchmark_bilevel"
SHARED_LIBSVM = Path(__file__).parents[2] / "shared" / "data" / "libsvm"
EVAL_FREQ = 1024
SOLVERS = ["soba", "saba", "srba", "fsla", "mrbo", "sustain", "ttsa"]
PROBLEMS = ["quadratic", "simulated", "datacleaning"]
# Accepted beside the defaults: the real data, whose files may be missing.
EXTRA_PROBLEMS = ["ijcnn1"]
# Fewer iterations per evaluation for the solvers with many oracle calls per
# iteration (MRBO: 12 inner batches each; SUSTAIN and TTSA up to 11).
EVAL_FREQS = {"mrbo": 128, "sustain": 128, "ttsa": 128}
# Steps that keep every solver finite on every problem over the measurement.
STEPS = dict(step_size=0.01, outer_ratio=1.0)
# The targets on the CPU.
COMPILE_TARGET_S = 30.0
RATIO_TO_SOBA_TARGET = 2.0
DATACLEANING_SPEEDUP_TARGET = 5.0

# The JAX reference: our solver name -> its solver module and its name in the
# reference's configs.
REFERENCE_SOLVERS = {"soba": ("solvers/soba.py", "SOBA"), "saba": ("solvers/saba.py", "SABA")}
REFERENCE_MODULES = {"objective": "objective.py", "ijcnn1": "datasets/ijcnn1.py"}
REFERENCE_STEPS_CONFIG = "config/ijcnn1_best_params.yml"
# Our problems that are the reference ijcnn1 dataset's problem (logistic
# regression, one exp-parametrized l2 regularization per feature).
REFERENCE_PROBLEMS = ("simulated", "ijcnn1")
# Their random_state of the mini-batch sampler (their default).
REFERENCE_SEED = 1
# XLA's CPU backend on one thread; read when jax is imported.
XLA_SINGLE_THREAD_FLAG = "--xla_cpu_multi_thread_eigen=false"
# libsvmdata's names of the two ijcnn1 sets -> the shared files.
IJCNN1_FILES = {"ijcnn1": "ijcnn1.trn.bz2", "ijcnn1_test": "ijcnn1.tst.bz2"}
IJCNN1_FEATURES = 22


def make_objective(benchmark, problem):
    """The benchmark's objective set on ``problem``'s data, or the one-line
    reason the data set is unavailable."""
    from benchopt.utils.run_context import RunContext
    dataset_class = next(d for d in benchmark.get_datasets() if d.name == problem)
    dataset = dataset_class.get_instance()
    objective = benchmark.get_benchmark_objective().get_instance()
    RunContext().set_run_context(objective, dataset, "speed", repetition=0, base_seed=0)
    data = dataset.get_data()
    if "unavailable" in data:
        return data["unavailable"]
    objective.set_data(**data)
    return objective


def provide_ijcnn1_files():
    """Point libsvmdata at ijcnn1 files converted from the shared bz2 files
    when its cache lacks them (as the tests do); a note saying what was done,
    or None when nothing was needed or possible."""
    from solvers_common.data.libsvm import libsvm_home
    home = libsvm_home()

    def cached(name):
        return any((home / f"{name}_X{suffix}").exists() for suffix in (".npy", ".npz"))
    if all(cached(name) for name in IJCNN1_FILES):
        return None
    sources = {name: SHARED_LIBSVM / file for name, file in IJCNN1_FILES.items()}
    if not all(path.exists() for path in sources.values()):
        return None
    import numpy as np
    from sklearn.datasets import load_svmlight_file
    converted = Path(tempfile.mkdtemp(prefix="libsvmdata_"))
    # 25 MB of arrays, needed only by this run.
    atexit.register(shutil.rmtree, converted, ignore_errors=True)
    (converted / "libsvm").mkdir()
    for name, path in sources.items():
        with bz2.open(path) as file:
            X, y = load_svmlight_file(file, n_features=IJCNN1_FEATURES)
        np.save(converted / "libsvm" / f"{name}_X.npy", X.toarray())
        np.save(converted / "libsvm" / f"{name}_y.npy", y)
    os.environ["LIBSVMDATA_HOME"] = str(converted)
    return f"ijcnn1 read from {SHARED_LIBSVM} (converted into LIBSVMDATA_HOME={converted})"


def cpu_seconds():
    """CPU time of this process and of its finished children (the C++
    compiler that inductor runs)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def median_per_iteration(reads, eval_freq):
    """Median over the intervals between consecutive clock reads, per
    iteration."""
    intervals = [later - earlier for earlier, later in zip(reads[:-1], reads[1:])]
    return statistics.median(intervals) / eval_freq


class Diverged(RuntimeError):
    """The iterates stopped being finite during a measurement."""


def measure(benchmark, objective, name, implementation, device, repeats, unroll, steps):
    """(wall-clock and CPU seconds per iteration, warm_up wall-clock and CPU
    seconds)."""
    from benchopt.utils.run_context import RunContext
    solver_class = next(s for s in benchmark.get_solvers() if s.name == name)
    if unroll is not None:
        solver_class.compiled_unroll = unroll
    eval_freq = EVAL_FREQS.get(name, EVAL_FREQ)
    solver = solver_class.get_instance(implementation=implementation, device=device,
                                       batch_size=64, eval_freq=eval_freq, epochs=10 ** 6,
                                       **steps)
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
    if not (bool(torch.isfinite(solver.lmbd).all()) and bool(torch.isfinite(solver.theta).all())):
        raise Diverged(f"{name}[{implementation}] diverged during the measurement "
                       f"(steps {steps}).")
    return (median_per_iteration(reads, eval_freq), median_per_iteration(cpu_reads, eval_freq),
            warm_up)


def reference_unavailable(path):
    """Why the JAX reference cannot be timed (a sentence), or None."""
    if path is None:
        return "no --reference (nor BILEVEL_REFERENCE) given"
    for package in ("jax", "jaxopt"):
        if importlib.util.find_spec(package) is None:
            return (f"{package} is not installed (pip install jax jaxopt; the reference's "
                    "ijcnn1 dataset imports jaxopt)")
    return None


def check_reference_path(path):
    """The reference checkout as a Path; ValueError naming ``--reference``
    when it lacks a file this script drives."""
    path = Path(path).expanduser().resolve()
    files = ([file for file, _ in REFERENCE_SOLVERS.values()] + list(REFERENCE_MODULES.values())
             + ["benchmark_utils/stochastic_jax_solver.py", REFERENCE_STEPS_CONFIG])
    missing = [file for file in files if not (path / file).is_file()]
    if missing:
        raise ValueError(f"--reference (or BILEVEL_REFERENCE)={str(path)!r} lacks "
                         f"{', '.join(missing)}; expected a checkout of "
                         "benchopt/benchmark_bilevel.")
    return path


def reference_tuned_steps(path):
    """{solver name: dict(step_size, outer_ratio)} of the reference's tuned
    parameters for ijcnn1 (its config/ijcnn1_best_params.yml, solver entries
    written ``SOBA[...,outer_ratio=0.01,step_size=0.03125,...]``)."""
    import yaml
    config = yaml.safe_load((path / REFERENCE_STEPS_CONFIG).read_text())
    tuned = {}
    for entry in config.get("solver", []):
        match = re.fullmatch(r"\s*([^\[\s]+)\[(.*)\]\s*", entry)
        if match is None:
            continue
        parameters = dict(re.findall(r"(step_size|outer_ratio)=([0-9.eE+-]+)", match[2]))
        if set(parameters) == {"step_size", "outer_ratio"}:
            tuned[match[1]] = {key: float(value) for key, value in parameters.items()}
    return tuned


@contextlib.contextmanager
def reference_package_namespace(path):
    """Imports made inside see the reference's ``benchmark_utils`` package,
    which has the name of ours: ours leaves sys.modules for that moment and
    comes back after (the reference's modules keep the objects they bound)."""
    def own_modules():
        return [key for key in sys.modules
                if key == "benchmark_utils" or key.startswith("benchmark_utils.")]
    ours = {key: sys.modules.pop(key) for key in own_modules()}
    sys.path.insert(0, str(path))
    try:
        yield
    finally:
        sys.path.remove(str(path))
        for key in own_modules():
            del sys.modules[key]
        sys.modules.update(ours)


class JaxReference:
    """SOBA and SABA of benchopt/benchmark_bilevel (JAX; Dagréou, Ablin,
    Vaiter and Moreau, "A framework for bilevel optimization that enables
    stochastic and global variance reduction algorithms", NeurIPS 2022,
    Algorithms 1 and 2), their own modules driven as benchopt drives them."""

    def __init__(self, path):
        self.path = path
        self.tuned_steps = reference_tuned_steps(path)
        # Their benchmark_utils/constants.py prints the seed when imported:
        # kept off this script's ``name: value`` lines.
        with reference_package_namespace(path), contextlib.redirect_stdout(io.StringIO()):
            self.modules = {key: self._load(file, key) for key, file in REFERENCE_MODULES.items()}
            for name, (file, _) in REFERENCE_SOLVERS.items():
                self.modules[name] = self._load(file, name)

    def _load(self, file, key):
        spec = importlib.util.spec_from_file_location(f"bilevel_reference_{key}",
                                                      self.path / file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def steps(self, name):
        """Their tuned steps for ijcnn1 (None when their config has none)."""
        return self.tuned_steps.get(REFERENCE_SOLVERS[name][1])

    def objective(self, problem):
        """Their objective, set on their ijcnn1 dataset fed with ``problem``'s
        arrays (our LogisticRegressionProblem: training set inner, validation
        set outer)."""
        arrays = {"ijcnn1": (problem.X_inner, problem.y_inner),
                  "ijcnn1_test": (problem.X_outer, problem.y_outer)}

        def fetch_our_arrays(name):
            X, y = arrays[name]
            return X.cpu().numpy(), y.cpu().numpy()
        dataset_module = self.modules["ijcnn1"]
        dataset_module.fetch_libsvm = fetch_our_arrays
        dataset = dataset_module.Dataset.get_instance(reg_parametrization="exp")
        objective = self.modules["objective"].Objective.get_instance()
        objective.set_data(**dataset.get_data())
        return objective

    def measure(self, objective, name, steps, repeats):
        """(wall-clock and CPU seconds per iteration, set_objective wall-clock
        and CPU seconds, whether the iterates stayed finite)."""
        import jax
        import jax.numpy as jnp
        eval_freq = EVAL_FREQS.get(name, EVAL_FREQ)
        solver = self.modules[name].Solver.get_instance(
            batch_size=64, eval_freq=eval_freq, random_state=REFERENCE_SEED, **steps)
        start, start_cpu = time.perf_counter(), cpu_seconds()
        # Their warm-up: jit compilation and one interval (run_once(2)).
        solver.set_objective(**objective.get_objective())
        set_objective = (time.perf_counter() - start, cpu_seconds() - start_cpu)
        reads, cpu_reads = [], []

        def callback():
            # jax dispatches asynchronously: wait for the interval's iterations.
            jax.block_until_ready((solver.inner_var, solver.outer_var))
            reads.append(time.perf_counter())
            cpu_reads.append(time.process_time())
            return len(reads) <= repeats
        solver.run(callback)
        finite = bool(jnp.isfinite(solver.inner_var).all() & jnp.isfinite(solver.outer_var).all())
        return (median_per_iteration(reads, eval_freq),
                median_per_iteration(cpu_reads, eval_freq), set_objective, finite)


def describe(seconds, cpu):
    return f"{seconds * 1e6:.1f} us (process CPU {cpu * 1e6:.1f} us)"


def ratio(numerator, denominator):
    """Ratio of two (wall-clock, CPU) times."""
    return (f"{numerator[0] / denominator[0]:.2f} (CPU time: "
            f"{numerator[1] / denominator[1]:.2f})")


def time_reference(reference, reference_objective, name, problem, repeats):
    """Times the reference's solver ``name``: its tuned steps, or STEPS when
    its iterates stop being finite with them. Returns ((wall-clock, CPU)
    seconds per iteration, the steps used)."""
    tuned = reference.steps(name)
    candidates = ([tuned] if tuned is not None else []) + [STEPS]
    if tuned is None:
        print(f"# jax_{name}: no tuned steps in the reference's {REFERENCE_STEPS_CONFIG}; "
              f"{STEPS}")
    for steps in candidates:
        seconds, cpu, warm_up, finite = reference.measure(reference_objective, name, steps,
                                                          repeats)
        if finite:
            break
        print(f"# jax_{name}_{problem}_cpu: iterates not finite with steps {steps}", flush=True)
    label = f"jax_{name}_{problem}_cpu"
    print(f"{label}: {describe(seconds, cpu)}", flush=True)
    print(f"{label}_compile: {warm_up[0]:.1f} s (CPU {warm_up[1]:.1f} s; set_objective: jit "
          "and one interval)", flush=True)
    print(f"{label}_steps: step_size {steps['step_size']:g}, outer_ratio "
          f"{steps['outer_ratio']:g}{' (tuned for ijcnn1)' if steps is tuned else ''}, "
          f"iterates {'finite' if finite else 'NOT FINITE'}", flush=True)
    return (seconds, cpu), steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+", default=None, choices=["cpu", "cuda"],
                        help="default: cpu, and cuda when available")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--solvers", nargs="+", default=SOLVERS, choices=SOLVERS)
    parser.add_argument("--problems", nargs="+", default=PROBLEMS,
                        choices=PROBLEMS + EXTRA_PROBLEMS)
    parser.add_argument("--unroll", type=int, default=None,
                        help="iterations per turn of the compiled while loop (default: "
                             "each solver's compiled_unroll)")
    parser.add_argument("--warm-cache", action="store_true",
                        help="keep inductor's cache: compile times of a second run")
    parser.add_argument("--reference", default=os.environ.get("BILEVEL_REFERENCE") or None,
                        help="a checkout of benchopt/benchmark_bilevel (JAX) whose SOBA and "
                             "SABA are timed beside (default: $BILEVEL_REFERENCE)")
    arguments = parser.parse_args()
    if arguments.repeats < 1:
        parser.error(f"--repeats={arguments.repeats}; accepted: an integer >= 1")
    if not arguments.warm_cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor_")
    devices = arguments.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    reference = None
    skipped = reference_unavailable(arguments.reference)
    if skipped is None:
        try:
            path = check_reference_path(arguments.reference)
        except ValueError as error:
            parser.error(str(error))
        os.environ["XLA_FLAGS"] = " ".join(
            filter(None, [os.environ.get("XLA_FLAGS"), XLA_SINGLE_THREAD_FLAG]))
        reference = JaxReference(path)
    sys.path.insert(0, str(BENCHMARK))
    from benchopt.benchmark import Benchmark
    benchmark = Benchmark(BENCHMARK)
    from solvers_common.small_block_allocator import install_small_block_allocator
    # (the objective installs it in set_data: every solver is timed under it)
    allocator = "small-block allocator" if install_small_block_allocator() else "default allocator"
    print(f"# torch {torch.__version__} ({allocator} on the CPU), {torch.get_num_threads()} "
          f"thread(s) after the objective's set_data, eval_freq {EVAL_FREQ}, median of "
          f"{arguments.repeats} intervals; targets: compiled within "
          f"{RATIO_TO_SOBA_TARGET:.0f}x of SOBA, compile <= {COMPILE_TARGET_S:.0f} s, "
          f"datacleaning compiled >= "
          f"{DATACLEANING_SPEEDUP_TARGET:.0f}x faster than eager"
          f"{'' if reference is None else ', compiled SOBA <= the JAX reference SOBA'}")
    if reference is None:
        print(f"# JAX reference (benchopt/benchmark_bilevel) not timed: {skipped}")
    else:
        import jax
        print(f"# JAX reference {reference.path} timed: jax {jax.__version__} on "
              f"{jax.devices()[0].platform}, XLA_FLAGS={os.environ['XLA_FLAGS']}")
    if "ijcnn1" in arguments.problems:
        note = provide_ijcnn1_files()
        if note:
            print(f"# {note}")
    for device in devices:
        for problem in arguments.problems:
            objective = make_objective(benchmark, problem)
            if isinstance(objective, str):
                print(f"# {problem} skipped: {objective}", flush=True)
                continue
            with_reference = (reference is not None and device == "cpu"
                              and problem in REFERENCE_PROBLEMS)
            if reference is not None and not with_reference and device == "cpu":
                print(f"# JAX reference not timed on {problem}: its problem is the logistic "
                      f"regression of {', '.join(REFERENCE_PROBLEMS)}")
            reference_objective = (reference.objective(objective.problem) if with_reference
                                   else None)
            compiled_times = {}
            for name in arguments.solvers:
                steps = STEPS
                jax_times = None
                if with_reference and name in REFERENCE_SOLVERS:
                    jax_times, steps = time_reference(reference, reference_objective, name,
                                                      problem, arguments.repeats)
                times = {}
                for implementation in ("oracles", "compiled"):
                    label = f"{name}_{problem}_{device}_{implementation}"
                    try:
                        seconds, cpu, warm_up = measure(
                            benchmark, objective, name, implementation, device,
                            arguments.repeats, arguments.unroll, steps)
                    except Diverged as error:
                        if steps is STEPS:
                            raise
                        print(f"# {label}: {error} Measured again with {STEPS}.", flush=True)
                        seconds, cpu, warm_up = measure(
                            benchmark, objective, name, implementation, device,
                            arguments.repeats, arguments.unroll, STEPS)
                    times[implementation] = (seconds, cpu)
                    print(f"{label}: {describe(seconds, cpu)}", flush=True)
                    if implementation == "compiled":
                        print(f"{name}_{problem}_{device}_compile: {warm_up[0]:.1f} s "
                              f"(CPU {warm_up[1]:.1f} s)", flush=True)
                compiled_times[name] = times["compiled"]
                print(f"{name}_{problem}_{device}_speedup: "
                      f"{ratio(times['oracles'], times['compiled'])}", flush=True)
                if name != "soba" and "soba" in compiled_times:
                    print(f"{name}_{problem}_{device}_compiled_over_soba: "
                          f"{ratio(times['compiled'], compiled_times['soba'])}", flush=True)
                if jax_times is not None:
                    print(f"{name}_{problem}_{device}_compiled_over_jax: "
                          f"{ratio(times['compiled'], jax_times)}", flush=True)
    print(f"load_average: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
