"""benchmark_bilevel's solvers and objective driven through benchopt's API on
tiny problems: each solver decreases h, SABA's inner iterate converges with
lmbd frozen, bad parameters raise ValueError, divergence gives NaN, seeds
reproduce (the clock: tests/test_clock.py)."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from benchopt.benchmark import Benchmark
from benchopt.utils.run_context import RunContext

from solvers_common.bilevel import make_quadratic_problem

BENCHMARK = Path(__file__).parents[1] / "benchmark_bilevel"
TINY = {
    "quadratic": dict(dim_inner=5, dim_outer=3, n_inner_samples=64, n_outer_samples=64),
    "breast_cancer": {},
}


@pytest.fixture(scope="module")
def benchmark():
    return Benchmark(BENCHMARK)


@pytest.fixture(autouse=True, scope="module")
def restore_thread_count():
    """The objective sets torch to one thread for the run; give the other
    test modules of the session their thread count back."""
    n_threads = torch.get_num_threads()
    yield
    torch.set_num_threads(n_threads)


def make_objective(benchmark, dataset_name):
    dataset_class = next(d for d in benchmark.get_datasets() if d.name == dataset_name)
    dataset = dataset_class.get_instance(**TINY[dataset_name])
    objective = benchmark.get_benchmark_objective().get_instance()
    RunContext().set_run_context(objective, dataset, "dummy", repetition=0, base_seed=0)
    data = dataset.get_data()
    if dataset_name == "quadratic":
        # A fixed draw whose optimum is far from the start (h(0) - h* = 5.0,
        # ||lmbd*|| = 9.6), so that progress is measurable.
        data = dict(problem=make_quadratic_problem(np.random.default_rng(0), **TINY[
            "quadratic"]))
    objective.set_data(**data)
    return objective


def make_solver(benchmark, objective, name, base_seed=0, repetition=0, **parameters):
    """The solver in the context of a benchopt run with ``--seed base_seed``,
    at repetition ``repetition``."""
    solver_class = next(s for s in benchmark.get_solvers() if s.name == name)
    solver = solver_class.get_instance(**parameters)
    RunContext().set_run_context(objective, "dummy", solver, repetition=repetition,
                                 base_seed=base_seed)
    solver.set_objective(**objective.get_objective())
    return solver


def run_solver(benchmark, objective, name, n_evaluations, **parameters):
    """The objective's metrics at each of the solver's checkpoints."""
    solver = make_solver(benchmark, objective, name, **parameters)
    curve = []

    def callback():
        curve.append(objective.evaluate_result(**solver.get_result()))
        return len(curve) <= n_evaluations
    solver.run(callback)
    return curve


# The inner problem has curvatures in [0.1, 1] and h in [0.1, 1]: inner steps
# 0.5, and outer steps ten times smaller (two time scales), so that the inner
# and linear-system iterates track their targets as lmbd moves.
SOLVER_SETTINGS = {
    "soba": dict(step_size=0.5, outer_ratio=10.0, batch_size=16, eval_freq=250),
    "saba": dict(step_size=0.5, outer_ratio=10.0, batch_size=16, eval_freq=100),
    "amigo": dict(step_size=0.5, outer_ratio=10.0, batch_size=16, eval_freq=20,
                  n_inner_steps=5),
    "stocbio": dict(step_size=0.5, outer_ratio=10.0, batch_size=16, eval_freq=20,
                    n_inner_steps=5, n_neumann_steps=20),
    "aid_cg": dict(step_size=1.0, eval_freq=5),
    # ITD differentiates K = 50 steps: with contraction 1 - 0.5 * 0.1 per step,
    # K = 10 leaves dtheta_K/dlmbd at 40% of dtheta*/dlmbd and h increases.
    "itd": dict(step_size=0.5, outer_ratio=10.0, eval_freq=20, n_inner_steps=50),
    "ttsa": dict(step_size=0.5, outer_ratio=10.0, batch_size=16, eval_freq=1000,
                 n_neumann_steps=20),
    "bsa": dict(step_size=0.5, outer_ratio=10.0, batch_size=16, eval_freq=20,
                n_inner_steps=5, n_neumann_steps=20),
    "aid_neumann": dict(step_size=0.5, outer_ratio=10.0, eval_freq=20, n_inner_steps=10,
                        n_neumann_steps=50),
    "srba": dict(step_size=0.5, outer_ratio=10.0, batch_size=16, eval_freq=50),
    # The Neumann estimators need about 50 terms at step 0.5 on curvatures down
    # to 0.1 (0.95^50 = 8% bias): with 10, the hypergradient's slow component
    # is mostly lost and h increases.
    "mrbo": dict(step_size=0.5, outer_ratio=10.0, batch_size=16, eval_freq=50,
                 n_neumann_steps=50),
    "sustain": dict(step_size=0.5, outer_ratio=10.0, batch_size=16, eval_freq=50,
                    n_neumann_steps=50),
    "vrbo": dict(step_size=0.5, outer_ratio=10.0, batch_size=16, eval_freq=15,
                 n_neumann_steps=30),
    "fsla": dict(step_size=0.5, outer_ratio=10.0, batch_size=16, eval_freq=250,
                 momentum=0.5),
    # F2SA's outer step is alpha_k / outer_ratio, already small.
    "f2sa": dict(step_size=0.5, outer_ratio=1.0, batch_size=16, eval_freq=100),
}
# Jacobian-free backpropagation replaces [d2_theta G]^{-1} (eigenvalues in
# [1, 10] on the quadratic) by alpha I: its direction is not a descent
# direction there and h increases; the black-box baselines search lmbd = log
# regularizations. These three are checked on logistic regression.
LOGISTIC_SOLVER_SETTINGS = {
    "jacobian_free": dict(step_size=0.5, outer_ratio=0.1, eval_freq=20, n_inner_steps=10),
    "grid_search": dict(eval_freq=5, grid_size=20),
    "random_search": dict(eval_freq=5),
}


@pytest.mark.parametrize("name", sorted(SOLVER_SETTINGS))
def test_each_solver_decreases_h(benchmark, name):
    objective = make_objective(benchmark, "quadratic")
    curve = run_solver(benchmark, objective, name, 4, dtype="float64",
                       **SOLVER_SETTINGS[name])
    values = [point["value"] for point in curve]
    assert all(math.isfinite(v) for v in values)
    # At least a fifth of the initial suboptimality is gone.
    assert curve[-1]["subopt"] < 0.8 * curve[0]["subopt"], values


@pytest.mark.parametrize("name", sorted(LOGISTIC_SOLVER_SETTINGS))
def test_each_solver_decreases_h_on_logistic_regression(benchmark, name):
    objective = make_objective(benchmark, "breast_cancer")
    curve = run_solver(benchmark, objective, name, 4, dtype="float64",
                       **LOGISTIC_SOLVER_SETTINGS[name])
    values = [point["value"] for point in curve]
    assert values[-1] < values[0] - 0.01, values


def test_saba_inner_iterate_converges_to_theta_star_with_lmbd_frozen(benchmark):
    objective = make_objective(benchmark, "quadratic")
    # gamma = step_size / outer_ratio = 1e-13: lmbd does not move.
    curve = run_solver(benchmark, objective, "saba", 8, dtype="float64", step_size=0.3,
                       outer_ratio=1e12, batch_size=8, eval_freq=200)
    distances = [point["inner_distance"] for point in curve]
    assert distances[-1] < 1e-6 * distances[0], distances


LINEAR_RATE_SETTINGS = dict(dtype="float64", step_size=0.5, outer_ratio=10.0, batch_size=8,
                            eval_freq=400)


def contraction_factors(curve):
    """h - h* of each evaluation divided by that of the previous one (400
    iterations apart), from the first evaluation on: the start is a transient,
    and the end would reach float64's precision."""
    subopt = [point["subopt"] for point in curve[1:]]
    return [later / earlier for earlier, later in zip(subopt[:-1], subopt[1:])]


@pytest.mark.parametrize("name", ["saba", "srba"])
def test_variance_reduced_solvers_converge_linearly_on_quadratic(benchmark, name):
    """With constant steps, SABA and SRBA (Dagréou et al. 2022, 2023) divide
    h - h* by the same factor on every chunk of iterations."""
    objective = make_objective(benchmark, "quadratic")
    curve = run_solver(benchmark, objective, name, 5, **LINEAR_RATE_SETTINGS)
    factors = contraction_factors(curve)
    assert len(factors) == 4 and max(factors) < 1e-2, factors
    assert curve[-1]["subopt"] < 1e-8


def test_soba_converges_sublinearly_on_quadratic(benchmark):
    """Same steps, SOBA (decreasing steps, no variance reduction) removes
    only a small share of h - h* per chunk, where SABA and SRBA divide it by
    more than 100."""
    objective = make_objective(benchmark, "quadratic")
    factors = contraction_factors(run_solver(benchmark, objective, "soba", 5,
                                             **LINEAR_RATE_SETTINGS))
    assert min(factors) > 0.5, factors


@pytest.mark.parametrize("name, parameters, message", [
    ("soba", dict(step_size=0.0), "step_size"),
    ("saba", dict(outer_ratio=-1.0), "outer_ratio"),
    ("soba", dict(batch_size=1000), "batch_size"),
    ("amigo", dict(batch_size=0), "batch_size"),
    ("stocbio", dict(n_neumann_steps=0), "n_neumann_steps"),
    ("mrbo", dict(momentum=1.5), "momentum"),
    ("fsla", dict(momentum=0.0), "momentum"),
    ("srba", dict(period_fraction=0.0), "period_fraction"),
    ("vrbo", dict(n_inner_steps=0), "n_inner_steps"),
    ("f2sa", dict(penalty_initial=-1.0), "penalty_initial"),
    ("soba", dict(implementation="jit"), "implementation"),
    ("aid_cg", dict(tolerance_decrease="linear"), "tolerance_decrease"),
    ("itd", dict(eval_freq=0), "eval_freq"),
    ("soba", dict(device="gpu"), "device"),
    ("soba", dict(dtype="float16"), "dtype"),
])
def test_bad_parameters_raise_value_error(benchmark, name, parameters, message):
    objective = make_objective(benchmark, "quadratic")
    with pytest.raises(ValueError, match=message):
        make_solver(benchmark, objective, name, **parameters)


def test_a_diverging_solver_gives_nan_not_an_exception(benchmark):
    objective = make_objective(benchmark, "breast_cancer")
    curve = run_solver(benchmark, objective, "saba", 3, step_size=1e4, batch_size=16,
                       eval_freq=50)
    assert math.isnan(curve[-1]["value"])


def test_same_seed_same_numbers_and_another_seed_other_numbers(benchmark):
    """The mini-batches follow benchopt's seed (``--seed``) and repetition
    (``-r``): the same pair gives the same curve, another one another curve
    from the same start (the data is a fixed draw here)."""
    objective = make_objective(benchmark, "quadratic")

    def values(**seed):
        curve = run_solver(benchmark, objective, "soba", 2, batch_size=8, eval_freq=20, **seed)
        return [point["value"] for point in curve]
    first = values()
    assert values() == first
    for other in (values(base_seed=1), values(repetition=1)):
        assert other[0] == first[0]  # the same starting point
        assert other[1] != first[1] and other[2] != first[2], (first, other)


def test_objective_returns_nan_metrics_for_non_finite_iterates(benchmark):
    objective = make_objective(benchmark, "breast_cancer")
    theta, lmbd = objective.problem.initial_point()
    metrics = objective.evaluate_result(theta=theta, lmbd=lmbd * float("nan"))
    assert metrics.keys() == objective.evaluate_result(theta=theta, lmbd=lmbd).keys()
    assert all(math.isnan(value) for value in metrics.values())
    assert {"validation_accuracy", "test_accuracy", "grad_norm", "inner_gap"} <= metrics.keys()


def final_iterates(benchmark, objective, name, n_evaluations, **parameters):
    solver = make_solver(benchmark, objective, name, **parameters)
    calls = []

    def callback():
        calls.append(None)
        return len(calls) <= n_evaluations
    solver.run(callback)
    return solver.theta, solver.v, solver.lmbd


# Batch 64 on breast_cancer's 285 training samples: 5 blocks, so chunks of
# 16 iterations cross epochs and a block can come back within a chunk, which
# SABA's fused memory must handle.
FUSED_SETTINGS = dict(dtype="float64", step_size=0.05, outer_ratio=0.1, batch_size=64,
                      eval_freq=16)


@pytest.mark.parametrize("name", ["soba", "saba"])
def test_fused_iterations_are_the_oracle_iterations(benchmark, name):
    objective = make_objective(benchmark, "breast_cancer")
    oracles = final_iterates(benchmark, objective, name, 3, implementation="oracles",
                             **FUSED_SETTINGS)
    fused = final_iterates(benchmark, objective, name, 3, implementation="fused",
                           **FUSED_SETTINGS)
    assert float(oracles[2].abs().max()) > 1e-3  # lmbd moved
    for reference, value in zip(oracles, fused):
        torch.testing.assert_close(value, reference, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ["soba", "saba"])
def test_compiled_chunks_are_the_fused_iterations(benchmark, name):
    """torch.compile of the chunk: on the CPU a while loop over a whole
    evaluation interval, here 8 iterations over 5 blocks, so that a block
    comes back within one compiled chunk."""
    objective = make_objective(benchmark, "breast_cancer")
    settings = dict(FUSED_SETTINGS, eval_freq=8)
    fused = final_iterates(benchmark, objective, name, 3, implementation="fused",
                           **settings)
    compiled = final_iterates(benchmark, objective, name, 3, implementation="compiled",
                              **settings)
    for reference, value in zip(fused, compiled):
        torch.testing.assert_close(value, reference, rtol=1e-10, atol=1e-12)


def test_fused_implementations_are_skipped_on_other_problems(benchmark):
    objective = make_objective(benchmark, "quadratic")
    solver_class = next(s for s in benchmark.get_solvers() if s.name == "saba")
    skip, reason = solver_class.get_instance(implementation="fused").skip(
        **objective.get_objective())
    assert skip and "logistic regression" in reason
