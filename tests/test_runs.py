"""Whole `benchopt run`s on tiny configurations: reproducibility of every
benchmark, and the faults a long run must survive (a diverging solver, a
solver that raises, a dataset whose files are missing)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from benchopt.results import read_results

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
    saved = set(read_results(tmp_path / "out.parquet")["solver_name"])
    assert "ista" in saved and any(name.startswith("slista") for name in saved)


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
