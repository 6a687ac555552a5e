"""Whole `benchopt run`s on tiny configurations: reproducibility of every
benchmark, and the faults a long run must survive (a diverging solver, a
solver that raises, a dataset whose files are missing, a run killed in the
middle)."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from benchopt.results import read_results

from solvers_common.results import final_evaluations

ROOT = Path(__file__).parents[1]
BENCHOPT = str(Path(sys.executable).with_name("benchopt"))
UNROLLING_DATASET = "simulated[n_features=8,n_atoms=16,n_train=64,n_test=32]"
TINY_RUNS = {
    "benchmark_unrolling": [
        "-d", UNROLLING_DATASET, "-o", "Unrolled sparse coding[n_layers=3]",
        "-s", "ista", "-s", "slista[batch_size=16]"],
    "benchmark_bilevel": [
        "-d", "quadratic[dim_inner=5,dim_outer=3,n_inner_samples=64,n_outer_samples=64]",
        "-s", "soba[batch_size=16,eval_freq=4]"],
    "benchmark_sparse_training": [
        "-d", "simulated[n_train=64,n_test=32]", "-s", "sgd[epochs=2,batch_size=16]"],
}

FAULTY_SOLVERS = '''
from benchmark_utils.trained_solver import TrainedSolver

from solvers_common.unrolled import SLISTA


class Solver(TrainedSolver):
    name = "{name}"
    requirements = []
    parameters = {{**TrainedSolver.common_parameters}}

    def build_network(self, D, lmbd, n_layers, generator):
        return SLISTA(D, lmbd, n_layers)

    def run(self, callback):
        self.build(self.get_seed(use_repetition=True))
        while callback():
            {body}
'''
BODIES = {
    # Its step sizes explode: the iterates, hence the test gap, become NaN.
    "exploding_solver": "self.network.step.data.mul_(1e200)",
    "raising_solver": 'raise RuntimeError("injected failure in raising_solver")',
}


def benchopt_run(benchmark, arguments, output, timeout=240, env=None, **kwargs):
    command = [BENCHOPT, "run", str(ROOT / benchmark), *arguments, "--no-plot",
               "--no-html", "--no-display", "--output", str(output)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env={**os.environ, **(env or {})}, **kwargs)


def metric_table(path):
    df = read_results(path)
    columns = sorted(c for c in df.columns if c.startswith("objective_")
                     and c != "objective_name" and df[c].dtype.kind == "f")
    df = df.sort_values(["solver_name", "idx_rep", "stop_val"])
    return df[["solver_name", "idx_rep", "stop_val"]].reset_index(drop=True), \
        df[columns].to_numpy()


def faulty_solver(tmp_path, name):
    path = tmp_path / f"{name}.py"
    path.write_text(FAULTY_SOLVERS.format(name=name, body=BODIES[name]))
    return str(path)


@pytest.mark.parametrize("benchmark", sorted(TINY_RUNS))
def test_same_seed_gives_identical_metrics_and_repetitions_differ(benchmark, tmp_path):
    arguments = [*TINY_RUNS[benchmark], "-n", "2", "-r", "3", "--seed", "11", "--no-cache"]
    tables = []
    for attempt in range(2):
        result = benchopt_run(benchmark, arguments, tmp_path / f"run{attempt}.parquet")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        tables.append(metric_table(tmp_path / f"run{attempt}.parquet"))
    (keys, first), (keys_again, second) = tables
    assert keys.equals(keys_again)
    np.testing.assert_array_equal(first, second)
    # Three repetitions, each with its own draw: their final values differ.
    final = keys.assign(row=range(len(keys))).groupby(["solver_name", "idx_rep"]).last()
    for solver, rows in final.groupby(level="solver_name"):
        values = first[rows["row"].to_numpy()]
        assert len(values) == 3, solver
        assert len({tuple(v) for v in values}) == 3, f"{solver}: repetitions coincide"


def test_diverging_and_raising_solvers_do_not_lose_other_results(tmp_path):
    arguments = ["-d", UNROLLING_DATASET, "-o", "Unrolled sparse coding[n_layers=3]",
                 "-s", "ista", "-s", "slista[batch_size=16]",
                 "-s", faulty_solver(tmp_path, "exploding_solver") + "[batch_size=16]",
                 "-s", faulty_solver(tmp_path, "raising_solver") + "[batch_size=16]",
                 "-n", "3", "--no-cache"]
    result = benchopt_run("benchmark_unrolling", arguments, tmp_path / "out.parquet")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert any("exploding_solver" in line and "diverged" in line
               for line in output.replace("\r", "\n").splitlines())
    # The error names the solver and the cause.
    assert "raising_solver" in output and "injected failure in raising_solver" in output
    results = read_results(tmp_path / "out.parquet")
    saved = set(results["solver_name"])
    assert "ista" in saved and any(name.startswith("slista") for name in saved)
    # The diverged runs keep their rows, each ending at its first NaN
    # (solvers_common.stopping); the run that raised has none.
    exploded = results[results["solver_name"].str.startswith("exploding_solver")]
    assert len(exploded) == 2  # the initial evaluation, then the first NaN
    assert final_evaluations(exploded)["objective_value"].isna().all()
    assert exploded["objective_value"].isna().sum() == 1
    assert not any(name.startswith("raising_solver") for name in saved)


def test_missing_dataset_is_skipped_with_its_message(tmp_path):
    missing = "patches[source=mnist,dictionary=random_patches,n_train=64,n_test=16]"
    arguments = ["-d", UNROLLING_DATASET, "-d", missing,
                 "-o", "Unrolled sparse coding[n_layers=3]", "-s", "ista", "--no-cache"]
    # An empty data folder and an unreachable proxy: the download fails fast
    # even on a machine with a network.
    blocked = "http://127.0.0.1:9"
    result = benchopt_run("benchmark_unrolling", arguments, tmp_path / "out.parquet",
                          env={"LEARNOPT_DATA": str(tmp_path / "data"), "http_proxy": blocked,
                               "https_proxy": blocked, "HTTP_PROXY": blocked,
                               "HTTPS_PROXY": blocked})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    message = [line for line in output.splitlines() if "MNIST: files not found" in line]
    assert len(message) == 1 and str(tmp_path / "data") in message[0]
    datasets = set(read_results(tmp_path / "out.parquet")["dataset_name"])
    assert len(datasets) == 1 and datasets.pop().startswith("simulated")


# A bilevel solver that appends a line to MARKS each time benchopt runs it (a
# run served from benchopt's cache adds none) and that, with gated=True, waits
# while the file GATE exists (at most two minutes, so that a stray process
# cannot outlive the test for long): the test kills the run while it waits.
# It only hands back the initial point: the test is about the run, not the
# method.
MARKED_SOLVER = '''
import os
import time

from benchopt import BaseSolver

MARKS = {marks!r}
GATE = {gate!r}


class Solver(BaseSolver):
    name = "marked_solver"
    sampling_strategy = "callback"
    requirements = []
    parameters = {{"gated": [False]}}

    def set_objective(self, problem):
        self.theta, self.lmbd = problem.initial_point()

    def run(self, callback):
        with open(MARKS, "a") as marks:
            marks.write(f"gated={{self.gated}}\\n")
        deadline = time.monotonic() + 120
        while self.gated and os.path.exists(GATE) and time.monotonic() < deadline:
            time.sleep(0.05)
        while callback():
            pass

    def get_result(self):
        return dict(theta=self.theta, lmbd=self.lmbd)
'''
KILL_TEST_DEADLINE = 120  # seconds for one benchopt run to reach a point, under load


def marks_count(path, line):
    return path.read_text().splitlines().count(line) if path.exists() else 0


def start_benchopt(command, env, log):
    """``command`` in its own process group (signals reach benchopt and any
    child), its output to the file ``log``: no pipe that could fill up."""
    with open(log, "wb") as output:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=output,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def wait_until(condition, process, log, what, timeout=KILL_TEST_DEADLINE):
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"benchopt exited ({process.returncode}) before {what}:\n"
                                 + log.read_text(errors="replace")[-3000:])
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout} s:\n"
                                 + log.read_text(errors="replace")[-3000:])
        time.sleep(0.1)


def kill_group(process, grace):
    """SIGINT to the process group, then SIGKILL if it still runs after
    ``grace`` seconds; returns whether SIGINT alone ended it."""
    if process.poll() is None and grace is not None:
        try:
            os.killpg(process.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=grace)
            return True
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)
    return False


def check_result_files(folder):
    """Every file benchopt left in the output folder is a whole result file."""
    files = [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []
    for path in files:
        assert path.suffix in (".parquet", ".csv"), f"stray file {path}"
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        assert len(table) > 0, path
    return files


def test_killed_run_leaves_no_corrupt_result_and_rerun_reuses_the_cache(tmp_path):
    """A run killed while its second solver runs (SIGINT, SIGINT then SIGKILL
    if it does not stop, and SIGKILL alone) writes no result file or a whole
    one; the same command then completes, with the first solver's run served
    from benchopt's cache (it is not run again) and the second solver's run,
    never finished, run again."""
    marks, gate = tmp_path / "marks.txt", tmp_path / "gate"
    solver = tmp_path / "marked_solver.py"
    solver.write_text(MARKED_SOLVER.format(marks=str(marks), gate=str(gate)))
    output = tmp_path / "out" / "run.parquet"
    command = [BENCHOPT, "run", str(ROOT / "benchmark_bilevel"),
               "-d", "quadratic[dim_inner=5,dim_outer=3,n_inner_samples=64,n_outer_samples=64]",
               "-s", f"{solver}[gated=False]", "-s", f"{solver}[gated=True]",
               "-n", "2", "--seed", "0", "--no-timeout", "--no-plot", "--no-html",
               "--no-display", "--output", str(output)]
    # The cache in the test's folder, not in the benchmark's __cache__.
    env = {**os.environ, "BENCHOPT_CACHE": str(tmp_path / "cache")}
    fast, gated = "gated=False", "gated=True"
    gate.touch()
    interrupted_by_sigint = None
    for attempt, grace in enumerate([15, None]):  # SIGINT (then SIGKILL); SIGKILL
        log = tmp_path / f"killed{attempt}.log"
        process = start_benchopt(command, env, log)
        try:
            # The gated solver runs after the fast one: once it has started,
            # the fast one's result is in the cache.
            wait_until(lambda: marks_count(marks, gated) == attempt + 1, process, log,
                       "start of the gated solver")
        finally:
            stopped_by_sigint = kill_group(process, grace)
        if grace is not None:
            interrupted_by_sigint = stopped_by_sigint
        assert process.returncode != 0, log.read_text(errors="replace")[-3000:]
        check_result_files(output.parent)
    assert marks_count(marks, fast) == 1, marks.read_text()
    # benchopt handles SIGINT (its status 'interrupted'): it stops by itself.
    assert interrupted_by_sigint, (tmp_path / "killed0.log").read_text(errors="replace")

    gate.unlink()
    log = tmp_path / "rerun.log"
    process = start_benchopt(command, env, log)
    try:
        process.wait(timeout=2 * KILL_TEST_DEADLINE)
    except subprocess.TimeoutExpired:
        pass
    finally:
        kill_group(process, grace=None)
    text = log.read_text(errors="replace")
    assert process.returncode == 0, text[-3000:]
    files = check_result_files(output.parent)
    assert len(files) == 1, files
    solvers = set(read_results(files[0])["solver_name"])
    assert {name for name in solvers if fast in name} and \
        {name for name in solvers if gated in name}, solvers
    # The fast solver was not run again; the gated one, never finished, was.
    assert marks_count(marks, fast) == 1 and marks_count(marks, gated) == 3, \
        marks.read_text()
    status = {kind: [line for line in text.replace("\r", "\n").splitlines()
                     if "marked_solver[" in line and kind in line and "done" in line]
              for kind in (fast, gated)}
    assert status[fast] and all("(cached)" in line for line in status[fast]), text[-3000:]
    assert status[gated] and not any("(cached)" in line for line in status[gated]), \
        text[-3000:]
