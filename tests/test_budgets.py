"""Every trained solver stops on its own: with its default training budget
(``epochs``) and benchopt's default limits (``--max-runs 100``, ``--timeout
100``), a run ends because the budget is spent (status ``done``), not
because benchopt cut it (``max_runs``, ``timeout``), and its last evaluation
scores the last epoch. Tiny datasets; only the batch size is changed, to fit
them. benchmark_bilevel: every solver, on a tiny quadratic problem or, for
the hypergradient solvers of the l1-regularized problems, a tiny Lasso."""
from pathlib import Path

import pytest
from benchopt.benchmark import Benchmark
from benchopt.utils.run_context import RunContext
from benchopt_runs import run_with_default_limits

ROOT = Path(__file__).parents[1]

SETUPS = {
    "benchmark_unrolling": (
        ("simulated", dict(n_features=8, n_atoms=16, n_train=32, n_test=16)),
        dict(n_layers=2), dict(batch_size=16)),
    "benchmark_sparse_training": (
        ("simulated", dict(n_train=32, n_test=16)), dict(model="mlp"),
        dict(batch_size=16)),
    "benchmark_bilevel": (
        ("quadratic", dict(dim_inner=5, dim_outer=3, n_inner_samples=64,
                           n_outer_samples=64)),
        {}, dict(batch_size=16)),
}
# Solvers skipped on the quadratic problem run on this one.
BILEVEL_LASSO = ("lasso_simulated", dict(n_inner_samples=30, n_outer_samples=30,
                                         n_features=50))


def trained_solvers(name):
    benchmark = Benchmark(ROOT / name)
    return [(benchmark, solver) for solver in benchmark.get_solvers()
            if "epochs" in solver.parameters]


CASES = [(name, solver.name) for name in SETUPS for _, solver in trained_solvers(name)]


@pytest.fixture(scope="module")
def benchmarks():
    return {name: Benchmark(ROOT / name) for name in SETUPS}


@pytest.mark.parametrize("name, solver_name", CASES)
def test_default_budget_ends_the_run(benchmarks, name, solver_name):
    benchmark = benchmarks[name]
    (dataset_name, dataset_parameters), objective_parameters, solver_parameters = SETUPS[name]
    solver_class = next(s for s in benchmark.get_solvers() if s.name == solver_name)
    solver_parameters = {key: value for key, value in solver_parameters.items()
                         if key in solver_class.parameters}
    for dataset_name, dataset_parameters in ((dataset_name, dataset_parameters),
                                             BILEVEL_LASSO):
        dataset = next(d for d in benchmark.get_datasets() if d.name == dataset_name
                       ).get_instance(**dataset_parameters)
        objective = benchmark.get_benchmark_objective().get_instance(**objective_parameters)
        RunContext().set_run_context(objective, dataset, "dummy", repetition=0, base_seed=0)
        objective._set_dataset(dataset)
        solver = solver_class.get_instance(**solver_parameters)
        RunContext().set_run_context(objective, dataset, solver, repetition=0, base_seed=0)
        skip, reason = solver._set_objective(objective)
        if not skip or name != "benchmark_bilevel":
            break
    assert not skip, reason
    curve, status = run_with_default_limits(objective, solver)
    assert status == "done", (solver_name, status, len(curve))
    if name == "benchmark_bilevel":
        # The budget, rounded up to whole rounds, is spent and scored last.
        budget = solver.epochs * solver.iterations_per_epoch()
        assert solver.iteration >= budget > solver.iteration - solver.eval_freq
        # (benchopt numbers the evaluation after the loop one past the last call)
        assert curve[-1]["stop_val"] >= solver.n_rounds()
    else:
        assert solver.trainer.epochs_done == solver.epochs
