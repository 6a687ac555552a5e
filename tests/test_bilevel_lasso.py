"""The l1-regularized bilevel problems (solvers_common.bilevel.sparse) and
their hypergradient estimators: the reference inner solver against
scikit-learn, the reference hypergradient against finite differences of h,
ITD forward = backward, truncation K = N = full backpropagation, ITD tends to
the implicit hypergradient, implicit forward = implicit, bad input raises
ValueError before any work; and the benchmark's solvers through benchopt's
API (smooth solvers skipped, the hypergradient study)."""
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from benchopt.benchmark import Benchmark
from benchopt.utils.run_context import RunContext
from sklearn.linear_model import Lasso, LogisticRegression

from solvers_common.bilevel import (
    BacktrackingGradientDescent,
    LassoProblem,
    SparseLogisticRegressionProblem,
    UnrolledCoordinateDescent,
    UnrolledProximalGradient,
    correlated_regression,
    implicit_forward_hypergradient,
    implicit_hypergradient,
    standardize_splits,
)

BENCHMARK = Path(__file__).parents[1] / "benchmark_bilevel"


@pytest.fixture(autouse=True, scope="module")
def restore_thread_count():
    n_threads = torch.get_num_threads()
    yield
    torch.set_num_threads(n_threads)


def make_data(n_inner=40, n_outer=40, n_features=60, seed=0, correlation=0.5, density=0.1):
    X, y, _ = correlated_regression(np.random.default_rng(seed), n_inner + n_outer,
                                    n_features, correlation=correlation, density=density,
                                    snr=3.0)
    X, y = standardize_splits(X, y, n_inner)
    return X[:n_inner], y[:n_inner], X[n_inner:], y[n_inner:]


def lasso(weighted=False, **sizes):
    return LassoProblem(*make_data(**sizes), weighted=weighted)


def logreg():
    X_inner, y_inner, X_outer, y_outer = make_data()
    return SparseLogisticRegressionProblem(X_inner, np.sign(y_inner), X_outer,
                                           np.sign(y_outer))


def lmbd_at(problem, ratio):
    size = problem.n_features if problem.weighted else 1
    return torch.full((size,), problem.lmbd_max() + math.log(ratio), dtype=torch.float64)


@pytest.mark.parametrize("ratio", [0.5, 0.1, 0.02])
def test_reference_inner_solution_matches_scikit_learn_lasso(ratio):
    problem = lasso()
    lmbd = lmbd_at(problem, ratio)
    theta = problem.solve_inner(lmbd)
    assert problem.duality_gap(theta, lmbd)[0] <= 1e-12
    reference = Lasso(alpha=math.exp(float(lmbd)), fit_intercept=False, tol=1e-14,
                      max_iter=1_000_000).fit(problem.X_inner.numpy(), problem.y_inner.numpy())
    np.testing.assert_allclose(theta.numpy(), reference.coef_, atol=1e-9)


def test_reference_inner_solution_matches_scikit_learn_logistic_regression():
    problem = logreg()
    lmbd = lmbd_at(problem, 0.2)
    theta = problem.solve_inner(lmbd)
    assert problem.duality_gap(theta, lmbd)[0] <= 1e-12
    # scikit-learn: C sum_i log(1 + exp(-y_i x_i^T w)) + ||w||_1, C = 1 / (n alpha).
    C = 1.0 / (problem.n_inner_samples * math.exp(float(lmbd)))
    reference = LogisticRegression(C=C, l1_ratio=1.0, solver="liblinear", fit_intercept=False,
                                   tol=1e-12, max_iter=100_000).fit(
        problem.X_inner.numpy(), problem.y_inner.numpy())
    np.testing.assert_allclose(theta.numpy(), reference.coef_[0], atol=1e-5)


def finite_difference(problem, lmbd, direction, eps=1e-6):
    def h(point):
        return float(problem.outer_loss(problem.solve_inner(point), point))
    return (h(lmbd + eps * direction) - h(lmbd - eps * direction)) / (2 * eps)


@pytest.mark.parametrize("make_problem", [lasso, lambda: lasso(weighted=True), logreg],
                         ids=["lasso", "weighted_lasso", "sparse_logreg"])
def test_reference_hypergradient_matches_finite_differences(make_problem):
    problem = make_problem()
    lmbd = lmbd_at(problem, 0.1)
    theta = problem.solve_inner(lmbd)
    gradient, _ = problem.hypergradient(theta, lmbd)
    # The support is stable under a perturbation of 1e-6 (checked here).
    for eps in (1e-6, -1e-6):
        assert torch.equal(problem.solve_inner(lmbd + eps) != 0, theta != 0)
    direction = torch.randn(lmbd.shape, generator=torch.Generator().manual_seed(0),
                            dtype=torch.float64)
    expected = finite_difference(problem, lmbd, direction)
    assert abs(float(gradient @ direction) - expected) <= 1e-6 * max(1.0, abs(expected))
    if problem.weighted:
        assert bool((gradient[theta == 0] == 0).all())


def unrolled(problem, lmbd, n_iterations, **options):
    run = UnrolledProximalGradient(problem, lmbd, torch.zeros(problem.n_features,
                                                              dtype=torch.float64), **options)
    return run.run(n_iterations)


@pytest.mark.parametrize("make_problem", [lasso, lambda: lasso(weighted=True), logreg],
                         ids=["lasso", "weighted_lasso", "sparse_logreg"])
@pytest.mark.parametrize("n_iterations", [1, 7, 60])
def test_forward_and_backward_itd_agree(make_problem, n_iterations):
    problem = make_problem()
    lmbd = lmbd_at(problem, 0.1)
    forward = unrolled(problem, lmbd, n_iterations, forward=True).forward_hypergradient()
    run = unrolled(problem, lmbd, n_iterations, record=True)
    torch.testing.assert_close(run.backward_hypergradient(), forward, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(run.backward_hypergradient(n_iterations), forward,
                               rtol=1e-10, atol=1e-12)
    # Truncated to K < N: a different (biased) estimate.
    if n_iterations > 1:
        truncated = run.backward_hypergradient(1)
        assert float((truncated - forward).abs().max()) > 1e-8


def test_itd_matches_autograd_through_the_iterations():
    problem = lasso(n_features=30)
    lmbd = lmbd_at(problem, 0.1).requires_grad_(True)
    theta = torch.zeros(problem.n_features, dtype=torch.float64)
    step = 1 / problem.lipschitz
    for _ in range(25):
        theta = problem.prox(theta - step * problem.smooth_gradient(theta), step, lmbd)
    expected, = torch.autograd.grad(problem.outer_loss(theta, lmbd), lmbd)
    run = unrolled(problem, lmbd.detach(), 25, forward=True)
    torch.testing.assert_close(run.forward_hypergradient(), expected, rtol=1e-10, atol=1e-12)


def test_itd_tends_to_the_implicit_hypergradient():
    problem = lasso()
    lmbd = lmbd_at(problem, 0.1)
    reference, _ = problem.hypergradient(problem.solve_inner(lmbd), lmbd)
    errors = [float((unrolled(problem, lmbd, n, forward=True).forward_hypergradient()
                     - reference).abs().max()) / float(reference.abs().max())
              for n in (300, 1000, 3000)]
    assert errors[-1] < 1e-8 and errors[-1] < errors[0], errors


@pytest.mark.parametrize("weighted", [False, True])
def test_implicit_forward_equals_implicit_on_the_support(weighted):
    problem = lasso(weighted=weighted)
    lmbd = lmbd_at(problem, 0.1)
    theta = problem.solve_inner(lmbd)
    implicit = implicit_hypergradient(problem, theta, lmbd)
    forward, state = implicit_forward_hypergradient(problem, theta, lmbd, 100_000, tol=1e-13)
    assert state.converged
    torch.testing.assert_close(forward, implicit, rtol=1e-10, atol=1e-12)
    # Warm-started from its own Jacobian, no iteration is needed.
    again, state = implicit_forward_hypergradient(problem, theta, lmbd, 1, jacobian0=state)
    assert state.converged and state.n_iterations == 0
    torch.testing.assert_close(again, implicit, rtol=1e-10, atol=1e-12)
    # At an approximate solution, on the approximate solution's support.
    approximate = unrolled(problem, lmbd, 500).theta
    torch.testing.assert_close(
        implicit_forward_hypergradient(problem, approximate, lmbd, 100_000, tol=1e-13)[0],
        implicit_hypergradient(problem, approximate, lmbd), rtol=1e-10, atol=1e-12)


# -- proximal coordinate descent (the paper's inner solver) ---------------------

def coordinate_descent(problem, lmbd, n_epochs, **options):
    run = UnrolledCoordinateDescent(problem, lmbd, torch.zeros(problem.n_features,
                                                               dtype=torch.float64), **options)
    return run.run(n_epochs)


def autograd_coordinate_descent(problem, lmbd, n_epochs):
    """theta after ``n_epochs`` cyclic epochs written coordinate by coordinate
    in torch (an independent transcription of Bertrand et al.'s update,
    differentiable by autograd in lmbd)."""
    X, y, n = problem.X_inner, problem.y_inner, problem.n_inner_samples
    alpha = torch.exp(lmbd).expand(problem.n_features)
    theta = [torch.zeros((), dtype=torch.float64) for _ in range(problem.n_features)]
    for _ in range(n_epochs):
        for j in range(problem.n_features):
            lipschitz = float(X[:, j] @ X[:, j]) / n
            residual = y - sum(X[:, k] * theta[k] for k in range(problem.n_features))
            z = theta[j] + X[:, j] @ residual / (n * lipschitz)
            theta[j] = torch.sign(z) * torch.relu(z.abs() - alpha[j] / lipschitz)
    return torch.stack(theta)


@pytest.mark.parametrize("weighted", [False, True])
def test_coordinate_descent_iterate_matches_the_reference_solution(weighted):
    problem = lasso(weighted=weighted)
    lmbd = lmbd_at(problem, 0.05)
    run = coordinate_descent(problem, lmbd, 0).solve(1e-14, 100_000)
    assert problem.duality_gap(run.theta, lmbd)[0] <= 1e-14
    torch.testing.assert_close(run.theta, problem.solve_inner(lmbd), rtol=0, atol=1e-10)


def test_coordinate_descent_on_unstandardised_columns_matches_scikit_learn():
    """Columns scaled so that L_j = ||X_j||^2 / n ranges over [0.01, 25]: the
    coordinate step z_j = theta_j + X_j^T r / (n L_j) (Bertrand et al. 2020,
    Algorithm 1) must still reach the Lasso solution, that of scikit-learn's
    Lasso with alpha = exp(lmbd) (whose objective is G's), and the first
    epochs must equal the coordinate-by-coordinate transcription."""
    X_inner, y_inner, X_outer, y_outer = make_data()
    scales = np.logspace(-1, math.log10(5), X_inner.shape[1])
    problem = LassoProblem(X_inner * scales, y_inner, X_outer * scales, y_outer)
    lipschitz = (problem.X_inner ** 2).sum(0) / problem.n_inner_samples
    assert lipschitz.min() < 0.02 and lipschitz.max() > 20
    lmbd = lmbd_at(problem, 0.05)
    run = coordinate_descent(problem, lmbd, 0).solve(1e-14, 100_000)
    assert problem.duality_gap(run.theta, lmbd)[0] <= 1e-14
    reference = Lasso(alpha=math.exp(float(lmbd)), fit_intercept=False, tol=1e-14,
                      max_iter=1_000_000).fit(problem.X_inner.numpy(), problem.y_inner.numpy())
    assert np.count_nonzero(reference.coef_) >= 5
    np.testing.assert_allclose(run.theta.numpy(), reference.coef_, rtol=0, atol=1e-8)
    X_inner, y_inner, X_outer, y_outer = make_data(n_inner=20, n_outer=20, n_features=12)
    scales = np.logspace(-1, math.log10(5), 12)
    small = LassoProblem(X_inner * scales, y_inner, X_outer * scales, y_outer)
    lmbd = lmbd_at(small, 0.1)
    torch.testing.assert_close(coordinate_descent(small, lmbd, 3).theta,
                               autograd_coordinate_descent(small, lmbd, 3), rtol=0, atol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_coordinate_descent_matches_its_torch_transcription_and_autograd(weighted):
    problem = lasso(weighted=weighted, n_inner=20, n_outer=20, n_features=12)
    lmbd = lmbd_at(problem, 0.1).requires_grad_(True)
    theta = autograd_coordinate_descent(problem, lmbd, 4)
    expected, = torch.autograd.grad(problem.outer_loss(theta, lmbd), lmbd)
    forward = coordinate_descent(problem, lmbd.detach(), 4, forward=True)
    torch.testing.assert_close(forward.theta, theta.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(forward.forward_hypergradient(), expected, rtol=1e-10,
                               atol=1e-12)
    backward = coordinate_descent(problem, lmbd.detach(), 4, record=True)
    torch.testing.assert_close(backward.backward_hypergradient(), expected, rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_coordinate_descent_jacobian_matches_finite_differences(weighted):
    problem = lasso(weighted=weighted)
    lmbd = lmbd_at(problem, 0.1)
    direction = torch.randn(lmbd.shape, generator=torch.Generator().manual_seed(1),
                            dtype=torch.float64)
    eps = 1e-6
    for n_epochs in (3, 30):
        plus = coordinate_descent(problem, lmbd + eps * direction, n_epochs).theta
        minus = coordinate_descent(problem, lmbd - eps * direction, n_epochs).theta
        # Finite differences hold where no coordinate crosses zero.
        assert torch.equal(plus != 0, minus != 0)
        jacobian = torch.from_numpy(coordinate_descent(problem, lmbd, n_epochs,
                                                       forward=True).jacobian)
        torch.testing.assert_close(jacobian @ direction, (plus - minus) / (2 * eps),
                                   rtol=0, atol=1e-7)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_epochs", [1, 6, 40])
def test_coordinate_descent_forward_and_backward_agree(weighted, n_epochs):
    problem = lasso(weighted=weighted)
    lmbd = lmbd_at(problem, 0.1)
    forward = coordinate_descent(problem, lmbd, n_epochs, forward=True).forward_hypergradient()
    run = coordinate_descent(problem, lmbd, n_epochs, record=True)
    torch.testing.assert_close(run.backward_hypergradient(), forward, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(run.backward_hypergradient(n_epochs), forward, rtol=1e-10,
                               atol=1e-12)
    if n_epochs > 1:
        assert float((run.backward_hypergradient(1) - forward).abs().max()) > 1e-8
    # Recorded in several calls: the same signs, the same derivative.
    pieces = coordinate_descent(problem, lmbd, 0, record=True)
    for _ in range(n_epochs):
        pieces.run(1)
    torch.testing.assert_close(pieces.backward_hypergradient(), forward, rtol=1e-10,
                               atol=1e-12)


def test_coordinate_descent_itd_tends_to_the_implicit_hypergradient():
    problem = lasso()
    lmbd = lmbd_at(problem, 0.1)
    reference, _ = problem.hypergradient(problem.solve_inner(lmbd), lmbd)
    errors = [relative_error(coordinate_descent(problem, lmbd, n,
                                                forward=True).forward_hypergradient(), reference)
              for n in (5, 30, 300)]
    assert errors[-1] < 1e-10 and errors[0] > 1e-3, errors


def test_coordinate_descent_needs_a_quadratic_datafit():
    problem = logreg()
    with pytest.raises(ValueError, match="inner_solver='ista'"):
        coordinate_descent(problem, lmbd_at(problem, 0.1), 1)
    with pytest.raises(ValueError, match="coordinate_descent"):
        implicit_forward_hypergradient(problem, torch.zeros(problem.n_features,
                                                            dtype=torch.float64),
                                       lmbd_at(problem, 0.1), coordinate_descent=True)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ill_conditioned", [False, True])
def test_implicit_forward_by_coordinate_descent_equals_implicit(weighted, ill_conditioned):
    problem = ill_conditioned_lasso(weighted) if ill_conditioned else lasso(weighted=weighted)
    lmbd = lmbd_at(problem, 0.02 if ill_conditioned else 0.1)
    theta = problem.solve_inner(lmbd)
    implicit = implicit_hypergradient(problem, theta, lmbd)
    forward, state = implicit_forward_hypergradient(problem, theta, lmbd, 1_000_000, tol=1e-8,
                                                    coordinate_descent=True)
    assert state.converged
    assert relative_error(forward, implicit) < 1e-6
    # Fewer epochs than the ISTA iterations it replaces.
    _, ista = implicit_forward_hypergradient(problem, theta, lmbd, 1_000_000, tol=1e-8)
    assert state.n_iterations < ista.n_iterations
    # Off the solution, on the iterate's support.
    approximate = coordinate_descent(problem, lmbd, 20).theta
    torch.testing.assert_close(
        implicit_forward_hypergradient(problem, approximate, lmbd, 1_000_000, tol=1e-12,
                                       coordinate_descent=True)[0],
        implicit_hypergradient(problem, approximate, lmbd), rtol=1e-9, atol=1e-12)


def ill_conditioned_lasso(weighted=False):
    """100 x 300, correlation 0.9 between neighbouring features: at lmbd_max / 50
    the support has 67 features and H_SS a condition number of about 900."""
    return lasso(weighted=weighted, n_inner=100, n_outer=100, n_features=300, correlation=0.9,
                 density=0.05)


def relative_error(estimate, reference):
    return float((estimate - reference).abs().max() / reference.abs().max())


@pytest.mark.parametrize("weighted", [False, True])
def test_implicit_forward_equals_implicit_on_an_ill_conditioned_support(weighted):
    # Stopping when the iterates stop moving (relative change 1e-8) left an
    # error of 8e-2: the Jacobian iterations contract by 1 - 1/kappa only.
    problem = ill_conditioned_lasso(weighted)
    lmbd = lmbd_at(problem, 0.02)
    theta = problem.solve_inner(lmbd)
    hessian = problem.support_hessian(theta, theta != 0)
    eigenvalues = torch.linalg.eigvalsh(hessian)
    assert float(eigenvalues[-1] / eigenvalues[0]) > 500
    implicit = implicit_hypergradient(problem, theta, lmbd)
    forward, state = implicit_forward_hypergradient(problem, theta, lmbd, 1_000_000, tol=1e-8)
    assert relative_error(forward, implicit) < 1e-6
    assert state.converged
    # Warm-started from the Jacobian at a nearby lmbd (another support).
    nearby = lmbd + 0.05
    _, previous = implicit_forward_hypergradient(problem, problem.solve_inner(nearby), nearby,
                                                 1_000_000, tol=1e-8)
    assert not torch.equal(previous.support, theta != 0)
    warm, warm_state = implicit_forward_hypergradient(problem, theta, lmbd, 1_000_000, tol=1e-8,
                                                      jacobian0=previous)
    assert warm_state.converged and warm_state.n_iterations < state.n_iterations
    assert relative_error(warm, implicit) < 1e-6


def test_implicit_forward_solver_defaults_match_implicit_when_ill_conditioned(benchmark):
    objective = make_objective(benchmark, **{"n_inner_samples, n_outer_samples": (100, 100)},
                               n_features=300, correlation=0.9)
    solver, (skip, reason) = make_solver(benchmark, objective, "implicit_forward",
                                         dtype="float64")
    assert not skip, reason
    solver.initialize()
    problem = solver.problem
    for ratio in (0.02, 0.1):
        lmbd = lmbd_at(problem, ratio).to(problem.X_inner.dtype)
        theta = problem.solve_inner(lmbd)
        estimate = solver.estimate(SimpleNamespace(theta=theta, lmbd=lmbd))
        assert relative_error(estimate, implicit_hypergradient(problem, theta, lmbd)) < 1e-6


def test_implicit_forward_warns_once_when_its_budget_runs_out(benchmark):
    objective = make_objective(benchmark, **{"n_inner_samples, n_outer_samples": (100, 100)},
                               n_features=300, correlation=0.9)
    with pytest.warns(RuntimeWarning, match="max_jacobian_steps") as record:
        run_solver(benchmark, objective, "implicit_forward", 5, dtype="float64",
                   max_jacobian_steps=2)
    assert sum("max_jacobian_steps" in str(w.message) for w in record) == 1


def test_backtracking_follows_armijo_rule_by_hand():
    # h(l) = (l - 3)^2 from l = 0, step_size 1: rate 1/6, then doubled after
    # each sufficient decrease and halved (from the accepted point) otherwise.
    descent = BacktrackingGradientDescent(1.0, sufficient_decrease=1e-4)
    lmbd, trials, accepted = torch.tensor([0.0], dtype=torch.float64), [], []
    for _ in range(5):
        value, gradient = float((lmbd - 3) ** 2), 2 * (lmbd - 3)
        lmbd = descent.update(lmbd, gradient, value)
        trials.append(float(lmbd))
        accepted.append(float(descent.accepted[0]))
    l2 = 1 + 4 / 3
    l3 = l2 + 2 / 3 * 2 * (3 - l2)
    expected = [1.0, l2, l3, l3 - 4 / 3 * 2 * (l3 - 3), l3 - 2 / 3 * 2 * (l3 - 3)]
    np.testing.assert_allclose(trials, expected, rtol=1e-12)
    # The fourth trial (2.63: h = 0.137 > 0.049) was rejected.
    np.testing.assert_allclose(accepted, [0.0, 1.0, l2, l3, l3], rtol=1e-12)


def test_backtracking_rejects_a_nan_loss_and_never_goes_up():
    descent = BacktrackingGradientDescent(1.0)
    lmbd = torch.tensor([0.0], dtype=torch.float64)
    first = descent.update(lmbd, torch.tensor([1.0], dtype=torch.float64), 1.0)
    retry = descent.update(first, torch.tensor([1.0], dtype=torch.float64), math.nan)
    assert float(descent.accepted[0]) == 0.0 and float(retry) == pytest.approx(-0.5)
    # A bumpy function: accepted losses never increase, and the accepted
    # point ends stationary.
    descent = BacktrackingGradientDescent(2.0)
    lmbd, values = torch.tensor([2.5], dtype=torch.float64), []
    for _ in range(60):
        value = float(torch.sin(5 * lmbd) + lmbd ** 2)
        lmbd = descent.update(lmbd, 5 * torch.cos(5 * lmbd) + 2 * lmbd, value)
        values.append(descent.accepted[1])
    assert all(b <= a for a, b in zip(values, values[1:])) and values[-1] < values[0]
    point = descent.accepted[0]
    assert abs(float(5 * torch.cos(5 * point) + 2 * point)) < 1e-6


@pytest.mark.parametrize("arguments, message", [
    (dict(X_inner=np.zeros((5, 3)), y_inner=np.zeros(4)), "y_inner"),
    (dict(X_outer=np.zeros((5, 4))), "X_outer"),
    (dict(y_outer=np.zeros((6, 1))), "y_outer"),
    (dict(X_inner=np.zeros(5)), "X_inner"),
])
def test_mismatched_shapes_raise_value_error(arguments, message):
    data = dict(X_inner=np.zeros((5, 3)), y_inner=np.zeros(5), X_outer=np.zeros((6, 3)),
                y_outer=np.zeros(6))
    with pytest.raises(ValueError, match=message):
        LassoProblem(**{**data, **arguments})


# -- through benchopt ----------------------------------------------------------

@pytest.fixture(scope="module")
def benchmark():
    return Benchmark(BENCHMARK)


TINY = dict(n_inner_samples=30, n_outer_samples=30, n_features=40)


def make_objective(benchmark, dataset="lasso_simulated", study_lmbd_ratio=None, study_stride=10,
                   **parameters):
    dataset_class = next(d for d in benchmark.get_datasets() if d.name == dataset)
    data_instance = dataset_class.get_instance(**parameters)
    objective = benchmark.get_benchmark_objective().get_instance(
        study_lmbd_ratio=study_lmbd_ratio, study_stride=study_stride)
    RunContext().set_run_context(objective, data_instance, "dummy", repetition=0, base_seed=0)
    objective.set_data(**data_instance.get_data())
    return objective


def make_solver(benchmark, objective, name, **parameters):
    solver_class = next(s for s in benchmark.get_solvers() if s.name == name)
    solver = solver_class.get_instance(**parameters)
    RunContext().set_run_context(objective, "dummy", solver, repetition=0, base_seed=0)
    return solver, solver._set_objective(objective)


def run_solver(benchmark, objective, name, n_evaluations, **parameters):
    solver, (skip, reason) = make_solver(benchmark, objective, name, **parameters)
    assert not skip, reason
    curve = []

    def callback():
        curve.append(objective.evaluate_result(**solver.get_result()))
        return len(curve) <= n_evaluations
    solver.run(callback)
    return curve


@pytest.mark.parametrize("name, parameters, message", [
    ("itd_backward", dict(truncation=-1), "truncation"),
    ("itd_backward", dict(n_inner_steps=10, truncation=11), "truncation"),
    ("itd_forward", dict(n_inner_steps=0), "n_inner_steps"),
    ("itd_backward", dict(n_inner_steps=-3), "n_inner_steps"),
    ("implicit", dict(max_inner_steps=0), "max_inner_steps"),
    ("implicit_forward", dict(max_jacobian_steps=0), "max_jacobian_steps"),
    ("implicit_forward", dict(jacobian_tolerance=1.0), "jacobian_tolerance"),
    ("implicit_forward", dict(jacobian_tolerance=0.0), "jacobian_tolerance"),
    ("implicit", dict(step_size=0.0), "step_size"),
    ("implicit", dict(inner_solver="newton"), "inner_solver"),
])
def test_bad_solver_parameters_raise_value_error(benchmark, name, parameters, message):
    objective = make_objective(benchmark, **TINY)
    with pytest.raises(ValueError, match=message):
        make_solver(benchmark, objective, name, **parameters)


@pytest.mark.parametrize("name", ["soba", "saba", "aid_cg", "itd", "stocbio", "mrbo"])
def test_smooth_solvers_are_skipped_with_a_reason(benchmark, name):
    objective = make_objective(benchmark, **TINY)
    _, (skip, reason) = make_solver(benchmark, objective, name)
    assert skip and "twice-differentiable" in reason and "\n" not in reason


def test_coordinate_descent_solvers_are_skipped_on_sparse_logistic_regression(benchmark):
    objective = make_objective(benchmark, problem="sparse_logreg", **TINY)
    _, (skip, reason) = make_solver(benchmark, objective, "itd_forward", inner_solver="cd")
    assert skip and "inner_solver=ista" in reason and "\n" not in reason
    solver, (skip, _) = make_solver(benchmark, objective, "itd_forward", dtype="float64")
    assert not skip and solver.inner == "ista"
    solver, _ = make_solver(benchmark, make_objective(benchmark, **TINY), "itd_forward",
                            dtype="float64")
    assert solver.inner == "cd"


def test_hypergradient_solvers_are_skipped_on_smooth_problems(benchmark):
    dataset_class = next(d for d in benchmark.get_datasets() if d.name == "breast_cancer")
    data = dataset_class.get_instance()
    objective = benchmark.get_benchmark_objective().get_instance()
    RunContext().set_run_context(objective, data, "dummy", repetition=0, base_seed=0)
    objective.set_data(**data.get_data())
    _, (skip, reason) = make_solver(benchmark, objective, "implicit")
    assert skip and "l1-regularized" in reason


@pytest.mark.parametrize("name, parameters", [
    ("itd_forward", dict(n_inner_steps=200)),
    ("itd_backward", dict(n_inner_steps=200)),
    ("implicit", dict(inner_tolerance=1e-10)),
    ("implicit_forward", dict(inner_tolerance=1e-10)),
    ("grid_search", dict(grid_size=10, lmbd_min=-6.0, lmbd_max=0.0)),
])
def test_each_solver_decreases_the_validation_loss(benchmark, name, parameters):
    objective = make_objective(benchmark, "diabetes")
    curve = run_solver(benchmark, objective, name, 8, dtype="float64", **parameters)
    values = [point["value"] for point in curve]
    assert all(math.isfinite(v) for v in values)
    assert min(values[1:]) < values[0] - 1e-3, values
    if name.startswith("implicit"):
        # The reported point is the line search's last accepted one: h never
        # goes up (inner problems solved to 1e-10).
        assert all(b <= a + 1e-9 for a, b in zip(values, values[1:])), values


def test_black_box_ranges_relative_to_lmbd_max(benchmark):
    """With relative_to_lmbd_max the candidates are offsets from log
    lmbd_max: the grid's top point gives theta* = 0, its next one does not;
    random candidates stay in the shifted range; on a problem without
    lmbd_max the solvers are skipped, with the reason."""
    objective = make_objective(benchmark, **TINY)
    log_lmbd_max = objective.problem.lmbd_max()
    assert log_lmbd_max > 0.5  # lasso_simulated is not standardized: [-9.2, 0] would miss it
    grid, _ = make_solver(benchmark, objective, "grid_search", dtype="float64", grid_size=3,
                          lmbd_min=-1.0, lmbd_max=0.0, relative_to_lmbd_max=True)
    grid.theta, grid.lmbd = grid.problem.initial_point()
    grid.initialize()
    assert grid.grid == pytest.approx([log_lmbd_max - 1, log_lmbd_max - 0.5, log_lmbd_max])
    top = grid.problem.solve_inner(grid.candidate(2), tol=1e-12)
    below = grid.problem.solve_inner(grid.candidate(1), tol=1e-12)
    assert float(top.abs().max()) == 0.0 and float(below.abs().max()) > 0.0
    absolute, _ = make_solver(benchmark, objective, "grid_search", dtype="float64",
                              grid_size=3, lmbd_min=-1.0, lmbd_max=0.0)
    absolute.theta, absolute.lmbd = absolute.problem.initial_point()
    absolute.initialize()
    assert absolute.grid == [-1.0, -0.5, 0.0]
    search, _ = make_solver(benchmark, objective, "random_search", dtype="float64",
                            lmbd_min=-2.0, lmbd_max=-1.0, relative_to_lmbd_max=True)
    search.theta, search.lmbd = search.problem.initial_point()
    search.initialize()
    search.generator = torch.Generator().manual_seed(0)
    candidates = torch.stack([search.candidate(k) for k in range(50)])
    assert float(candidates.min()) >= log_lmbd_max - 2 and float(candidates.max()) <= (
        log_lmbd_max - 1)
    smooth = next(d for d in benchmark.get_datasets() if d.name == "breast_cancer")
    smooth_objective = make_objective(benchmark, dataset=smooth.name)
    for name in ("grid_search", "random_search"):
        _, (skip, reason) = make_solver(benchmark, smooth_objective, name,
                                        relative_to_lmbd_max=True)
        assert skip and "relative_to_lmbd_max" in reason
        _, (skip, _) = make_solver(benchmark, smooth_objective, name)
        assert not skip


def test_the_study_evaluates_after_every_round(benchmark):
    study = make_objective(benchmark, study_lmbd_ratio=0.1, **TINY)
    solver, _ = make_solver(benchmark, study, "implicit", dtype="float64")
    assert solver.get_next(1) == 2 and solver.get_next(13) == 14
    solver._set_objective(make_objective(benchmark, **TINY))
    assert not hasattr(solver, "get_next")


@pytest.mark.parametrize("inner_solver, plateau", [("ista", 1e-4), ("cd", 1e-6)])
def test_hypergradient_study_reports_the_error_against_the_reference(benchmark, inner_solver,
                                                                     plateau):
    objective = make_objective(benchmark, study_lmbd_ratio=0.1, study_stride=50, **TINY)
    curves = {name: run_solver(benchmark, objective, name, 30, dtype="float64",
                               inner_solver=inner_solver, **parameters)
              for name, parameters in [("itd_forward", {}), ("implicit", {}),
                                       ("implicit_forward", {}),
                                       ("itd_backward", dict(truncation=5))]}
    for name, curve in curves.items():
        assert [p["n_inner_iterations"] for p in curve[:3]] == [0, 50, 100], name
        assert curve[-1]["support_identified"] == 1.0, name
    assert curves["itd_forward"][-1]["hypergradient_error"] < 1e-8
    assert curves["implicit"][-1]["hypergradient_error"] < 1e-8
    assert curves["implicit_forward"][-1]["hypergradient_error"] < 1e-8
    # Truncated backpropagation plateaus above full ITD (K = 5 epochs of
    # coordinate descent contract more than 5 ISTA iterations: a lower plateau).
    assert curves["itd_backward"][-1]["hypergradient_error"] > plateau
    # Grid search has no hypergradient to report in the study.
    _, (skip, reason) = make_solver(benchmark, objective, "grid_search")
    assert skip and "hypergradient" in reason


def test_study_is_skipped_on_smooth_problems(benchmark):
    dataset_class = next(d for d in benchmark.get_datasets() if d.name == "breast_cancer")
    data = dataset_class.get_instance()
    objective = benchmark.get_benchmark_objective().get_instance(study_lmbd_ratio=0.1)
    RunContext().set_run_context(objective, data, "dummy", repetition=0, base_seed=0)
    skip, reason = objective.skip(**data.get_data())
    assert skip and "l1-regularized" in reason


# -- evidence C6 (ci/claims_bilevel.py) on hand-built result tables -------------

def study_table(itd_before, truncated_plateau=0.3, implicit_after=1e-9):
    """A study result as benchopt writes it: N = 0, 30, ..., 2,970, support
    identified from N* = 600; ITD's error ``itd_before(N)`` before N* and
    linear after (0.4 decades per 100 iterations); truncated runs K = 5, 20
    at 0.9 before N* and ``truncated_plateau`` after; implicit and implicit
    forward at 0.5 before and ``implicit_after`` after; time = N / 1000 s
    (implicit half of that)."""
    n = np.arange(0, 3000, 30, dtype=float)
    identified = (n >= 600).astype(float)
    itd = np.where(n < 600, [itd_before(v) for v in n],
                   0.5 * 10 ** (-0.4 * (n - 600) / 100))
    itd[0] = 1.0
    curves = [("itd_forward", None, itd, 1.0), ("itd_backward", None, itd, 3.0)]
    for K in (5, 20):
        curves.append(("itd_backward", K, np.where(n < 600, 0.9, truncated_plateau), 1.0))
    for name in ("implicit", "implicit_forward"):
        curves.append((name, None, np.where(n < 600, 0.5, implicit_after), 0.5))
    rows = []
    for name, K, error, cost in curves:
        label = name + ("" if K is None else f"[truncation={K}]")
        for step, (v, e, s) in enumerate(zip(n, error, identified)):
            rows.append(dict(solver_name=label, p_solver_truncation=np.nan if K is None
                             else float(K), objective_n_inner_iterations=v,
                             objective_hypergradient_error=e, objective_support_identified=s,
                             time=cost * v / 1000, idx_rep=0, stop_val=step))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def claims_bilevel():
    sys.path.insert(0, str(Path(__file__).parents[1] / "ci"))
    import claims_bilevel
    return claims_bilevel


def test_lasso_evidence_holds_on_a_table_that_shows_the_claim(claims_bilevel):
    finding = claims_bilevel.lasso_hypergradient(study_table(lambda n: 1.5))
    assert finding.holds is True, finding.numbers
    assert "N*=600" in finding.numbers and "K=5: early max 0.9, plateau 0.3" in finding.numbers
    assert "-0.40 after" in finding.numbers  # the fitted decay rate


@pytest.mark.parametrize("table, failed", [
    # ITD decays by 3 decades before the support is found: not flat.
    (lambda: study_table(lambda n: 10 ** (-3 * n / 600)), "flat_or_grows"),
    # The truncated runs reach full ITD's accuracy: no plateau above it.
    (lambda: study_table(lambda n: 1.5, truncated_plateau=1e-12), "truncation"),
    # Implicit differentiation stays at 1e-3: not exact.
    (lambda: study_table(lambda n: 1.5, implicit_after=1e-3), "implicit"),
])
def test_lasso_evidence_fails_on_tables_that_contradict_it(claims_bilevel, table, failed):
    finding = claims_bilevel.lasso_hypergradient(table())
    assert finding.holds is False and f"fails: {failed}" in finding.numbers, finding.numbers


def test_lasso_evidence_cannot_tell_without_its_solvers(claims_bilevel):
    table = study_table(lambda n: 1.5)
    finding = claims_bilevel.lasso_hypergradient(table[table.solver_name != "implicit"])
    assert finding.holds is None and "implicit" in finding.numbers
    never = study_table(lambda n: 1.5).assign(objective_support_identified=0.0)
    assert claims_bilevel.lasso_hypergradient(never).holds is False


def test_implicit_forward_is_nan_where_the_support_hessian_is_singular():
    # 40 training samples, an iterate with more than 40 non-zeros: H_SS has
    # rank <= 40 and no Jacobian on S exists.
    problem = lasso(n_inner=20, n_outer=20, n_features=60)
    lmbd = lmbd_at(problem, 0.001)
    theta = coordinate_descent(problem, lmbd, 1).theta
    assert int((theta != 0).sum()) > problem.n_inner_samples
    gradient, state = implicit_forward_hypergradient(problem, theta, lmbd,
                                                     coordinate_descent=True)
    assert state.singular and not state.converged and state.n_iterations == 0
    assert bool(torch.isnan(gradient).all())
    # implicit's direct solve takes the minimum-norm least-squares solution.
    assert bool(torch.isfinite(implicit_hypergradient(problem, theta, lmbd)).all())
