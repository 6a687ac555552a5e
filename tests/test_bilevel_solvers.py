"""benchmark_bilevel's solvers and objective driven through benchopt's API on
tiny problems: each solver decreases h, SABA's inner iterate converges with
lmbd frozen, bad parameters raise ValueError, divergence gives NaN, seeds
reproduce (the clock: tests/test_clock.py)."""
import logging
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from benchopt.benchmark import Benchmark
from benchopt.utils.run_context import RunContext

from solvers_common.bilevel import make_quadratic_problem
from solvers_common.bilevel.problems import RowBatch

BENCHMARK = Path(__file__).parents[1] / "benchmark_bilevel"
TINY = {
    "quadratic": dict(dim_inner=5, dim_outer=3, n_inner_samples=64, n_outer_samples=64),
    "breast_cancer": {},
    "datacleaning": dict(n_inner_samples=100, n_outer_samples=50),
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


# A budget that the tests' callbacks end, not the solver; short enough that
# implementation="auto" runs the oracles (AUTO_COMPILE_MIN_ITERATIONS).
UNBOUNDED = dict(epochs=10 ** 4)


def run_solver(benchmark, objective, name, n_evaluations, **parameters):
    """The objective's metrics at each of the solver's checkpoints."""
    solver = make_solver(benchmark, objective, name, **{**UNBOUNDED, **parameters})
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
    ("soba", dict(epochs=-1), "epochs"),
    ("aid_cg", dict(epochs=2.5), "epochs"),
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
    """(theta, lmbd) after ``n_evaluations`` rounds, and the solver."""
    solver = make_solver(benchmark, objective, name, **{**UNBOUNDED, **parameters})
    calls = []

    def callback():
        calls.append(None)
        return len(calls) <= n_evaluations
    solver.warm_up()
    solver.run(callback)
    return (solver.theta, solver.lmbd), solver


@pytest.mark.parametrize("dataset_name", ["quadratic", "breast_cancer", "datacleaning"])
def test_row_batch_oracles_are_the_slice_oracles(benchmark, dataset_name):
    """A block of b - 1 samples padded to b rows (the last repeated, weight
    0), as the compiled iterations hand it to the oracles, gives the
    oracles of the slice."""
    problem = make_objective(benchmark, dataset_name).problem
    generator = torch.Generator().manual_seed(0)
    theta, lmbd = (torch.randn(x.shape, generator=generator, dtype=torch.float64)
                   for x in problem.initial_point())
    v = torch.randn(theta.shape, generator=generator, dtype=torch.float64)
    block = slice(3, 10)
    index = torch.tensor([3, 4, 5, 6, 7, 8, 9, 9])
    weight = torch.tensor([1 / 7] * 7 + [0.0], dtype=torch.float64)
    rows = RowBatch(index, weight)
    for oracle in (lambda batch: problem.inner_oracles(theta, lmbd, v, batch),
                   lambda batch: problem.outer_gradients(theta, lmbd, batch),
                   lambda batch: problem.inner_gradients(theta, lmbd, batch),
                   lambda batch: (problem.inner_loss(theta, lmbd, batch),
                                  problem.outer_loss(theta, lmbd, batch))):
        for reference, value in zip(oracle(block), oracle(rows)):
            torch.testing.assert_close(value, reference, rtol=1e-12, atol=1e-14)


# Blocks of unequal sizes (padded rows in the compiled path), evaluation
# intervals that cross epochs (a block comes back within a chunk, which
# SABA's memory must handle) and, for SRBA, full passes within the run.
COMPILED_DATASETS = {"quadratic": dict(batch_size=13), "breast_cancer": dict(batch_size=50),
                     "datacleaning": dict(batch_size=16)}
COMPILED_SOLVERS = {"soba": {}, "saba": {}, "srba": {}, "fsla": {},
                    "mrbo": dict(n_neumann_steps=3), "sustain": dict(n_neumann_steps=4),
                    "ttsa": dict(n_neumann_steps=4)}


# Each compile takes 5 to 30 s on 2 cores: every solver on one or two problems,
# every problem (closed-form quadratic, logistic, multinomial datacleaning)
# under three solvers or more.
COMPILED_PAIRS = [("soba", "datacleaning"), ("soba", "quadratic"),
                  ("saba", "breast_cancer"), ("saba", "quadratic"), ("srba", "quadratic"),
                  ("fsla", "breast_cancer"), ("mrbo", "quadratic"),
                  ("sustain", "datacleaning"), ("ttsa", "breast_cancer"),
                  ("srba", "datacleaning")]


@pytest.mark.parametrize("name, dataset_name", COMPILED_PAIRS)
def test_compiled_iterations_are_the_oracle_iterations(benchmark, name, dataset_name):
    """k = 16 iterations, two compiled chunks (torch.compile of a while
    loop on the CPU), equal the oracle path's with the same samples."""
    objective = make_objective(benchmark, dataset_name)
    settings = dict(dtype="float32", step_size=0.05, outer_ratio=0.1, eval_freq=8,
                    **COMPILED_DATASETS[dataset_name], **COMPILED_SOLVERS[name])
    oracles, _ = final_iterates(benchmark, objective, name, 2, implementation="oracles",
                                **settings)
    compiled, solver = final_iterates(benchmark, objective, name, 2,
                                      implementation="compiled", **settings)
    assert solver.compiled and solver.iteration == 16
    assert float((oracles[1] - objective.problem.initial_point()[1]).abs().max()) > 1e-4
    for reference, value in zip(oracles, compiled):
        torch.testing.assert_close(value, reference.to(value.dtype), rtol=1e-6, atol=1e-6)


def test_a_grid_of_step_sizes_compiles_once(benchmark):
    objective = make_objective(benchmark, "quadratic")
    settings = dict(implementation="compiled", outer_ratio=0.1, batch_size=16, eval_freq=8)
    final_iterates(benchmark, objective, "soba", 1, step_size=0.01, **settings)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    results = [final_iterates(benchmark, objective, "soba", 1, step_size=step_size,
                              **settings)[0][1] for step_size in (0.02, 0.05)]
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs
    assert not torch.equal(*results)  # the steps reached the compiled loop


def test_an_unsupported_problem_falls_back_to_the_oracles_with_one_log_line(
        benchmark, caplog):
    objective = make_objective(benchmark, "quadratic")
    settings = dict(step_size=0.05, outer_ratio=0.1, batch_size=16, eval_freq=8)
    reference, _ = final_iterates(benchmark, objective, "saba", 2, implementation="oracles",
                                  **settings)
    objective.problem.row_batches = False  # as the generic autograd oracles
    with caplog.at_level(logging.WARNING, logger="learnopt.bilevel"):
        values, solver = final_iterates(benchmark, objective, "saba", 2,
                                        implementation="compiled", **settings)
    assert not solver.compiled
    assert [record.getMessage() for record in caplog.records] == [
        "saba: no compiled iteration on QuadraticProblem (its oracles take no row batches); "
        "running the oracles."]
    for reference_value, value in zip(reference, values):
        assert torch.equal(value, reference_value)


def test_auto_compiles_when_the_budget_pays_for_it(benchmark):
    objective = make_objective(benchmark, "quadratic")
    solver_class = next(s for s in benchmark.get_solvers() if s.name == "soba")
    # 64 samples, batch 16: 4 iterations per epoch.
    for epochs, compiled in ((10, False),
                             (solver_class.auto_compile_min_iterations // 4, True)):
        solver = make_solver(benchmark, objective, "soba", batch_size=16, epochs=epochs)
        assert solver.implementation == "auto" and solver.compiled == compiled


# -- claim C5's measure (ci/claims_bilevel.py) on hand-built result files ------

def c5_results(saba_rate=1.0, soba_rate=0.05, srba_time_factor=1.0, saba_noise=0.0):
    """A result file of evidence_saba_vs_soba.yml: per solver and seed, h - h*
    = 10 ** -(rate * epoch) at epochs 0..20 (16 iterations per epoch), one
    second per epoch (SRBA ``srba_time_factor`` seconds); full-batch descent
    at 0.1 decade per epoch; ``saba_noise`` multiplies SABA's curve by
    10 ** (+-noise) alternately."""
    rows = []
    epochs = np.arange(21)
    runs = [("saba[batch_size=64]", 64, saba_rate, 1.0),
            ("soba[batch_size=64]", 64, soba_rate, 1.0),
            ("srba[batch_size=64]", 64, saba_rate, srba_time_factor),
            ("soba[batch_size=1024]", 1024, 0.1, 1.0)]
    for name, batch_size, rate, seconds in runs:
        for seed in range(3):
            subopt = 10.0 ** (-rate * epochs)
            if name.startswith("saba"):
                subopt = subopt * 10.0 ** (saba_noise * (-1) ** epochs)
            for epoch, value in zip(epochs, subopt):
                # One evaluation per epoch: every 16 or every iteration.
                rows.append(dict(solver_name=name, idx_rep=seed, dataset_name="quadratic",
                                 objective_name="Bilevel optimization", stop_val=epoch,
                                 p_solver_eval_freq=1024 // batch_size,
                                 p_solver_batch_size=batch_size,
                                 p_dataset_n_inner_samples=1024,
                                 time=seconds * epoch, objective_subopt=value))
    return pd.DataFrame(rows)


def c5_measure():
    sys.path.insert(0, str(Path(__file__).parents[1] / "ci"))
    import claims_bilevel
    return claims_bilevel.saba_vs_soba


def test_c5_holds_when_saba_is_linear_and_first_and_srba_as_fast():
    finding = c5_measure()(c5_results())
    assert finding.holds is True, finding.numbers
    # SABA: 1 decade per epoch, 6 decades reached at epoch 6 (6 s); SOBA never.
    assert "SABA 6 s" in finding.numbers and "SOBA never" in finding.numbers
    assert "1 decades per epoch against 0.1" in finding.numbers


@pytest.mark.parametrize("results, failed", [
    (dict(srba_time_factor=1.5), "srba_as_fast"),
    (dict(soba_rate=2.0), "saba_beats_soba"),
    (dict(saba_noise=1.5), "saba_linear"),
])
def test_c5_fails_when_a_part_fails(results, failed):
    finding = c5_measure()(c5_results(**results))
    assert finding.holds is False and f"fails: {failed}" in finding.numbers, finding.numbers


def test_c5_cannot_tell_without_full_batch_descent():
    results = c5_results()
    finding = c5_measure()(results[results["p_solver_batch_size"] == 64])
    assert finding.holds is None and "full batch" in finding.numbers
