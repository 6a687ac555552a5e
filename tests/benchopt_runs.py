"""Tiny benchopt runs shared by the tests of the site and of the parallel
backends: each runs once per pytest session, in a subprocess with the
environment's ``benchopt``, and returns its result file. Also
:func:`run_with_default_limits`, one run in this process as ``benchopt
run`` drives it."""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BENCHOPT = str(BIN / "benchopt") if (BIN / "benchopt").exists() else shutil.which("benchopt")

# A few seconds each, on generated data; seed 0.
TINY = {
    "unrolling": ("benchmark_unrolling", [
        "-d", "simulated[n_features=8,n_atoms=16,n_train=64,n_test=32]",
        "-o", "Unrolled sparse coding[n_layers=3]",
        "-s", "ista", "-s", "slista[batch_size=16]", "-n", "2",
    ]),
    "bilevel": ("benchmark_bilevel", [
        "-d", "quadratic[dim_inner=5,dim_outer=3,n_inner_samples=64,n_outer_samples=64]",
        "-s", "soba[batch_size=16,eval_freq=8]", "-s", "aid_cg", "-n", "3",
    ]),
    "sparse_training": ("benchmark_sparse_training", [
        "-d", "simulated[n_train=64,n_test=32]",
        "-s", "sgd[epochs=2,batch_size=32]", "-s", "linbreg[epochs=2,batch_size=32]", "-n", "3",
    ]),
}
TIMEOUT = 300  # seconds, for one benchopt run on loaded shared cores
# benchopt's defaults for `benchopt run`.
DEFAULT_MAX_RUNS, DEFAULT_TIMEOUT = 100, 100

_done = {}  # name: result file
_running = {}  # name: (command, result file, process, deadline)
_folder = None


def _output_folder():
    global _folder
    if _folder is None:
        _folder = Path(tempfile.mkdtemp(prefix="learnopt-tiny-runs-"))
    return _folder


def benchopt_command(benchmark, args, output, *extra):
    """``benchopt run`` of ``ROOT/benchmark`` (an absolute path: dask's
    scheduler loads the benchmark by the path it is given), seed 0, no cache
    (a cached result would make two runs trivially equal), no plot."""
    if BENCHOPT is None:
        raise RuntimeError(f"no benchopt executable beside {sys.executable} nor on PATH")
    return [BENCHOPT, "run", str(ROOT / benchmark), *args, "--seed", "0", "--no-cache",
            "--no-plot", "--no-html", "--no-display", "--output", str(output), *extra]


def check_finished(command, returncode, output_text, output):
    assert returncode == 0, (
        f"benchopt failed (exit code {returncode}): {' '.join(command)}\n{output_text[-4000:]}")
    assert output.is_file(), (
        f"benchopt wrote no result file {output}: {' '.join(command)}\n{output_text[-4000:]}")


def start_tiny_runs(*names):
    """Start the named tiny runs (keys of TINY) that are neither done nor
    running, in the background."""
    for name in names:
        if name in _done or name in _running:
            continue
        benchmark, args = TINY[name]
        output = _output_folder() / f"{name}.parquet"
        command = benchopt_command(benchmark, args, output)
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        _running[name] = (command, output, process, time.monotonic() + TIMEOUT)


def tiny_runs(*names):
    """Result files of the named tiny runs, running the missing ones side by
    side."""
    start_tiny_runs(*names)
    try:
        for name in names:
            if name in _done:
                continue
            command, output, process, deadline = _running.pop(name)
            try:
                text, _ = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                text, _ = process.communicate()
                raise AssertionError(
                    f"benchopt did not finish in {TIMEOUT} s: {' '.join(command)}\n{text[-4000:]}")
            check_finished(command, process.returncode, text, output)
            _done[name] = output
    except BaseException:
        _stop_running()
        raise
    return [_done[name] for name in names]


def _stop_running():
    while _running:
        _, _, process, _ = _running.popitem()[1]
        if process.poll() is None:
            process.kill()
        process.communicate()


@atexit.register
def _clean_up():
    _stop_running()
    if _folder is not None:
        shutil.rmtree(_folder, ignore_errors=True)


def run_with_default_limits(objective, solver, after_warm_up=None):
    """Run ``solver`` (its objective already set) as ``benchopt run`` does
    with its default ``--max-runs 100 --timeout 100``: warm-up, then the
    timed run with benchopt's callback. ``after_warm_up()`` is called
    between the two. Returns (curve, status)."""
    from benchopt.callback import _Callback

    criterion = solver._stopping_criterion.get_runner_instance(
        solver=solver, max_runs=DEFAULT_MAX_RUNS, timeout=DEFAULT_TIMEOUT)
    solver._warm_up()
    if after_warm_up is not None:
        after_warm_up()
    callback = _Callback(objective, solver, {}, criterion)
    callback.start()
    solver.run(callback)
    curve, status, _ = callback.get_results()
    return curve, status
