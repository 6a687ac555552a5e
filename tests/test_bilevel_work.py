"""benchmark_bilevel's work counter and selection contracts: the closed-form
counts of per-sample oracle evaluations equal the calls the oracle path
makes (counted by solvers_common.bilevel.CountingProblem), the objective
reports them, the validation metric and the tuning spaces are literals the
tuner can read and use."""
import ast
import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_bilevel_solvers import (
    BENCHMARK,
    UNBOUNDED,
    benchmark,  # noqa: F401 (fixture)
    make_objective,
    make_solver,
    restore_thread_count,  # noqa: F401 (fixture)
    run_solver,
)

from solvers_common.bilevel import CountingProblem, make_quadratic_problem
from solvers_common.bilevel.problems import RowBatch

ROOT = Path(__file__).parents[1]


def tiny_quadratic():
    return make_quadratic_problem(np.random.default_rng(0), dim_inner=5, dim_outer=3,
                                  n_inner_samples=64, n_outer_samples=32)


def test_counting_problem_counts_each_oracle_per_sample():
    problem = CountingProblem(tiny_quadratic())
    theta, lmbd = problem.initial_point()
    v = torch.ones_like(theta)
    problem.inner_oracles(theta, lmbd, v, slice(0, 16))
    assert problem.oracle_calls == 3 * 16
    problem.outer_gradients(theta, lmbd)  # the full batch: 32 outer samples
    assert problem.oracle_calls == 48 + 32
    problem.inner_gradient(theta, lmbd, batch=torch.arange(5))
    problem.inner_cross_vector(theta, lmbd, v, RowBatch(torch.arange(4),
                                                        torch.tensor([.5, .5, 0., 0.],
                                                                     dtype=torch.float64)))
    assert problem.oracle_calls == 80 + 5 + 2
    operator = problem.inner_hessian_operator(theta, lmbd, slice(16, 32))
    assert problem.oracle_calls == 87  # no product yet
    operator(v), operator(v)
    assert problem.oracle_calls == 87 + 2 * 16
    # Methods of the problem run through the view: CG's products count.
    problem.oracle_calls = 0
    problem.solve_linear_system(theta, lmbd, v, tol=1e-30, max_iter=3)
    assert problem.oracle_calls == 3 * 64


# Parameters that keep the runs short; batch 16 divides both sample counts,
# where the closed forms are exact.
CLOSED_FORM_SETTINGS = {
    "soba": dict(batch_size=16, eval_freq=3),
    "saba": dict(batch_size=16, eval_freq=3),
    # period int(0.5 (64 + 64) / 16) = 4: full passes at t = 0, 4, 8.
    "srba": dict(batch_size=16, eval_freq=3),
    "fsla": dict(batch_size=16, eval_freq=3),
    "mrbo": dict(batch_size=16, eval_freq=2, n_neumann_steps=3),
    "vrbo": dict(batch_size=16, eval_freq=2, n_inner_steps=2, n_neumann_steps=3,
                 period_fraction=0.25),
    "amigo": dict(batch_size=16, eval_freq=2, n_inner_steps=3),
    "stocbio": dict(batch_size=16, eval_freq=2, n_inner_steps=3, n_neumann_steps=4),
    "f2sa": dict(batch_size=16, eval_freq=2, n_inner_steps=3),
    "aid_neumann": dict(eval_freq=1, n_inner_steps=3, n_neumann_steps=4),
    "jacobian_free": dict(eval_freq=1, n_inner_steps=3),
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORM_SETTINGS))
def test_closed_form_count_is_the_oracle_calls_made(benchmark, name):  # noqa: F811
    objective = make_objective(benchmark, "quadratic")
    solver = make_solver(benchmark, objective, name, dtype="float64",
                         **{**UNBOUNDED, **CLOSED_FORM_SETTINGS[name]})
    solver.problem = CountingProblem(solver.problem)
    counted, closed_form = [], []

    def callback():
        counted.append(solver.problem.oracle_calls)
        closed_form.append(solver.closed_form_oracle_calls())
        return len(counted) <= 4
    solver.run(callback)
    assert counted[0] == 0 and counted[-1] > counted[1] > 0
    assert closed_form == counted


def test_srba_count_has_its_full_passes(benchmark):  # noqa: F811
    # The numbers by hand: n = m = 64, batch 16, period 4; after 9 iterations
    # 3 full passes (t = 0, 4, 8) of 3 n + m and 6 iterations at two points.
    objective = make_objective(benchmark, "quadratic")
    solver = make_solver(benchmark, objective, "srba", dtype="float64",
                         **{**UNBOUNDED, **CLOSED_FORM_SETTINGS["srba"]})
    calls = []

    def callback():
        calls.append(solver.get_result()["oracle_calls"])
        return len(calls) <= 3
    solver.run(callback)
    assert calls == [0, 256 + 2 * 2 * 64, 2 * 256 + 4 * 2 * 64, 3 * 256 + 6 * 2 * 64]


def test_itd_count_adds_its_backward_pass(benchmark):  # noqa: F811
    # The reverse pass is invisible to the counting view: it sees the K
    # forward gradients and the outer loss; the closed form adds a cross
    # product per step and a Hessian-vector product per step but the first.
    objective = make_objective(benchmark, "quadratic")
    K, n = 4, objective.problem.n_inner_samples
    solver = make_solver(benchmark, objective, "itd", dtype="float64", eval_freq=1,
                         n_inner_steps=K, **UNBOUNDED)
    solver.problem = CountingProblem(solver.problem)
    differences = []

    def callback():
        differences.append(solver.closed_form_oracle_calls() - solver.problem.oracle_calls)
        return len(differences) <= 3
    solver.run(callback)
    assert differences == [k * (2 * K - 1) * n for k in range(4)]


def test_objective_reports_the_count_and_nan_without_one(benchmark):  # noqa: F811
    objective = make_objective(benchmark, "quadratic")
    curve = run_solver(benchmark, objective, "soba", 2, batch_size=16, eval_freq=5)
    # 5 iterations of 3 x 16 inner and 16 outer sample oracles per round.
    assert [c["oracle_calls"] for c in curve] == [0, 320, 640]
    # BSA draws its number of Hessian-vector products: no closed form.
    curve = run_solver(benchmark, objective, "bsa", 1, batch_size=16, eval_freq=2,
                       n_inner_steps=2, n_neumann_steps=2)
    assert all(math.isnan(c["oracle_calls"]) for c in curve)
    assert objective.evaluate_result(**objective.get_one_result())["oracle_calls"] == 0


def test_counted_solvers_restart_their_count_with_each_run(benchmark):  # noqa: F811
    objective = make_objective(benchmark, "quadratic")
    solver = make_solver(benchmark, objective, "aid_cg", dtype="float64", eval_freq=1,
                         **UNBOUNDED)
    solver.warm_up()
    calls = []

    def callback():
        calls.append(solver.get_result()["oracle_calls"])
        return len(calls) <= 2
    solver.run(callback)
    assert calls[0] == 0 and 0 < calls[1] < calls[2]


def test_black_box_searches_count_on_smooth_problems_only(benchmark):  # noqa: F811
    objective = make_objective(benchmark, "breast_cancer")
    curve = run_solver(benchmark, objective, "grid_search", 2, grid_size=3)
    assert curve[0]["oracle_calls"] == 0 and curve[2]["oracle_calls"] > curve[1]["oracle_calls"]


def class_literal(path, class_name, attribute):
    """The literal ``class_name.attribute`` of a file, as the tuner reads it
    (None when absent)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for statement in node.body:
                if (isinstance(statement, ast.Assign)
                        and any(getattr(t, "id", None) == attribute for t in statement.targets)):
                    return ast.literal_eval(statement.value)
    return None


def test_validation_metric_selects_by_work_on_the_quadratic_and_by_h_elsewhere(
        benchmark):  # noqa: F811
    declared = class_literal(BENCHMARK / "objective.py", "Objective", "validation_metric")
    by_work, by_value = declared
    sys.path.insert(0, str(ROOT / "ci"))
    try:
        import claims_bilevel
    finally:
        sys.path.remove(str(ROOT / "ci"))
    # The target of C5's measure.
    assert by_work["reduction"] == 1 / claims_bilevel.TARGET_REDUCTION
    quadratic = run_solver(benchmark, make_objective(benchmark, "quadratic"), "saba", 1,
                           batch_size=16, eval_freq=5)
    assert {by_work["name"], by_work["work"], by_value["name"]} <= set(quadratic[0])
    logistic = run_solver(benchmark, make_objective(benchmark, "breast_cancer"), "saba", 1,
                          batch_size=16, eval_freq=5)
    # h* unknown: no subopt, the tuner falls back to h.
    assert by_work["name"] not in logistic[0] and by_value["name"] in logistic[0]
    assert by_value["name"] == "value"


TUNED = ("soba", "saba", "srba", "amigo", "stocbio", "bsa", "ttsa", "mrbo", "sustain",
         "vrbo", "fsla", "f2sa")


def test_tuning_spaces_are_literal_grids_of_the_solvers_parameters(benchmark):  # noqa: F811
    classes = {s.name: s for s in benchmark.get_solvers()}
    sizes = set()
    for name in TUNED:
        space = class_literal(BENCHMARK / "solvers" / f"{name}.py", "Solver", "tuning_space")
        assert space is not None, name
        assert set(space) <= set(classes[name].parameters), name
        size = len(list(itertools.product(*space.values())))
        assert size >= 4, name
        sizes.add((size, len(space["step_size"])))
        for values in space.values():
            assert len(set(values)) == len(values)
            for value in values:
                # Writable in a solver string, checked before any work.
                assert isinstance(value, (int, float)) and not isinstance(value, bool)
    # No solver gets a finer grid (of steps, or in all) than another.
    assert len(sizes) == 1
