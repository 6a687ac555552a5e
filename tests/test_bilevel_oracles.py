"""Oracles of the bilevel problems: closed forms against torch autograd (the
generic path of BilevelProblem) and against finite differences of the
losses; the value function against the quadratic's closed form; the linear
and inner solvers."""
import numpy as np
import pytest
import torch

from solvers_common.bilevel import (
    FULL_BATCH,
    BilevelProblem,
    DataCleaningProblem,
    HypergradientBatches,
    LogisticRegressionProblem,
    ValueFunction,
    conjugate_gradient,
    make_quadratic_problem,
    neumann_hypergradient,
    neumann_series,
    newton_cg,
)


def quadratic():
    return make_quadratic_problem(np.random.default_rng(0), dim_inner=6, dim_outer=4,
                                  n_inner_samples=20, n_outer_samples=15, noise=0.3)


def logistic():
    rng = np.random.default_rng(1)
    X, X_val = rng.standard_normal((30, 5)), rng.standard_normal((20, 5))
    return LogisticRegressionProblem(X, np.sign(rng.standard_normal(30)),
                                     X_val, np.sign(rng.standard_normal(20)))


def datacleaning():
    rng = np.random.default_rng(2)
    return DataCleaningProblem(rng.standard_normal((25, 4)), rng.integers(0, 3, 25),
                               rng.standard_normal((12, 4)), rng.integers(0, 3, 12),
                               n_classes=3, l2_regularization=0.1)


PROBLEMS = [quadratic, logistic, datacleaning]
BATCHES = [FULL_BATCH, slice(3, 11), torch.tensor([0, 4, 7, 9])]


def random_point(problem, seed=0):
    generator = torch.Generator().manual_seed(seed)
    theta0, lmbd0 = problem.initial_point()

    def like(x):
        return torch.randn(x.shape, generator=generator, dtype=torch.float64)
    return like(theta0), 0.5 * like(lmbd0), like(theta0)


@pytest.mark.parametrize("make_problem", PROBLEMS)
@pytest.mark.parametrize("batch", BATCHES, ids=["full", "slice", "indices"])
def test_closed_forms_match_autograd(make_problem, batch):
    problem = make_problem()
    theta, lmbd, v = random_point(problem)
    generic = BilevelProblem
    pairs = [
        (problem.inner_gradient(theta, lmbd, batch),
         generic.inner_gradient(problem, theta, lmbd, batch)),
        (problem.inner_hessian_vector(theta, lmbd, v, batch),
         generic.inner_hessian_vector(problem, theta, lmbd, v, batch)),
        (problem.inner_hessian_operator(theta, lmbd, batch)(v),
         generic.inner_hessian_vector(problem, theta, lmbd, v, batch)),
        (problem.inner_cross_vector(theta, lmbd, v, batch),
         generic.inner_cross_vector(problem, theta, lmbd, v, batch)),
        *zip(problem.outer_gradients(theta, lmbd, batch),
             generic.outer_gradients(problem, theta, lmbd, batch)),
        *zip(problem.inner_oracles(theta, lmbd, v, batch),
             generic.inner_oracles(problem, theta, lmbd, v, batch)),
        *zip(problem.inner_gradients(theta, lmbd, batch),
             generic.inner_gradients(problem, theta, lmbd, batch)),
    ]
    for closed_form, autograd in pairs:
        torch.testing.assert_close(closed_form, autograd, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("make_problem", PROBLEMS)
def test_oracles_match_finite_differences(make_problem):
    problem = make_problem()
    theta, lmbd, v = random_point(problem, seed=3)
    u_theta, u_lmbd, _ = random_point(problem, seed=4)
    batch, eps = slice(2, 9), 1e-6

    def central(function, x, direction):
        return (function(x + eps * direction) - function(x - eps * direction)) / (2 * eps)

    # <grad G, u> = dG/du
    derivative = central(lambda t: problem.inner_loss(t, lmbd, batch), theta, u_theta)
    assert float((problem.inner_gradient(theta, lmbd, batch) * u_theta).sum()) == \
        pytest.approx(float(derivative), rel=1e-6, abs=1e-9)
    # d2_theta G v = d/dv grad_theta G
    hessian_v = central(lambda t: problem.inner_gradient(t, lmbd, batch), theta, v)
    torch.testing.assert_close(problem.inner_hessian_vector(theta, lmbd, v, batch),
                               hessian_v, rtol=1e-5, atol=1e-7)
    # <d2_(lmbd,theta) G v, u> = d/du <grad_theta G, v>
    cross = central(lambda lm: (problem.inner_gradient(theta, lm, batch) * v).sum(),
                    lmbd, u_lmbd)
    assert float((problem.inner_cross_vector(theta, lmbd, v, batch) * u_lmbd).sum()) == \
        pytest.approx(float(cross), rel=1e-5, abs=1e-8)
    # grad_lmbd G, and grad_theta G again through inner_gradients
    grad_theta, grad_lmbd = problem.inner_gradients(theta, lmbd, batch)
    torch.testing.assert_close(grad_theta, problem.inner_gradient(theta, lmbd, batch))
    assert float((grad_lmbd * u_lmbd).sum()) == pytest.approx(float(central(
        lambda lm: problem.inner_loss(theta, lm, batch), lmbd, u_lmbd)), rel=1e-6, abs=1e-9)
    # outer gradients
    grad_theta, grad_lmbd = problem.outer_gradients(theta, lmbd, batch)
    assert float((grad_theta * u_theta).sum()) == pytest.approx(float(central(
        lambda t: problem.outer_loss(t, lmbd, batch), theta, u_theta)), rel=1e-6, abs=1e-9)
    assert float((grad_lmbd * u_lmbd).sum()) == pytest.approx(float(central(
        lambda lm: problem.outer_loss(theta, lm, batch), lmbd, u_lmbd)), rel=1e-6, abs=1e-9)


def test_full_batch_is_the_average_of_the_sample_losses():
    problem = logistic()
    theta, lmbd, _ = random_point(problem)
    per_sample = torch.stack([problem.inner_loss(theta, lmbd, slice(i, i + 1))
                              for i in range(problem.n_inner_samples)])
    torch.testing.assert_close(per_sample.mean(), problem.inner_loss(theta, lmbd))


def test_value_function_matches_the_quadratic_closed_form():
    problem = quadratic()
    M, m, c = problem.value_function()
    value_function = ValueFunction(problem)
    for seed in range(3):
        lmbd = random_point(problem, seed)[1]
        value, gradient, theta_star = value_function.value_and_gradient(lmbd)
        assert float(value) == pytest.approx(float(0.5 * lmbd @ M @ lmbd + m @ lmbd + c),
                                             rel=1e-10)
        torch.testing.assert_close(gradient, M @ lmbd + m, rtol=1e-8, atol=1e-10)
        # theta* from the closed form minimizes G.
        assert torch.linalg.vector_norm(problem.inner_gradient(theta_star, lmbd)) < 1e-10
    lmbd_star, h_star = problem.optimum()
    assert torch.linalg.vector_norm(value_function.value_and_gradient(lmbd_star)[1]) < 1e-8
    # h is strongly convex, so h* is below h anywhere else.
    assert float(h_star) < float(value_function.value_and_gradient(lmbd_star + 0.1)[0])
    # The conditioning asked for: curvatures of h in [mu_outer, L_outer].
    eigenvalues = torch.linalg.eigvalsh(M)
    assert float(eigenvalues[0]) == pytest.approx(0.1)
    assert float(eigenvalues[-1]) == pytest.approx(1.0)


@pytest.mark.parametrize("make_problem", [logistic, datacleaning])
def test_newton_cg_reaches_the_tolerance(make_problem):
    problem = make_problem()
    lmbd = random_point(problem)[1]
    theta0 = problem.initial_point()[0]
    theta_star = newton_cg(problem, lmbd, theta0, tol=1e-11)
    assert torch.linalg.vector_norm(problem.inner_gradient(theta_star, lmbd)) <= 1e-11
    # Generic hypergradient against finite differences of h.
    value_function = ValueFunction(problem)
    _, gradient, _ = value_function.value_and_gradient(lmbd)
    direction = random_point(problem, seed=5)[1]
    eps = 1e-4

    def h(lm):
        # theta* to machine precision: an error delta in theta* moves h by
        # about ||grad_theta F|| delta, divided by 2 eps in the quotient.
        return float(problem.outer_loss(newton_cg(problem, lm, theta0, tol=1e-15), lm))
    derivative = (h(lmbd + eps * direction) - h(lmbd - eps * direction)) / (2 * eps)
    assert float((gradient * direction).sum()) == pytest.approx(derivative, rel=1e-5,
                                                                abs=1e-9)


def test_conjugate_gradient_and_neumann_series_solve_spd_systems():
    generator = torch.Generator().manual_seed(0)
    root = torch.randn(8, 8, generator=generator, dtype=torch.float64)
    H = root @ root.T / 8 + 0.5 * torch.eye(8, dtype=torch.float64)
    b = torch.randn(8, generator=generator, dtype=torch.float64)
    exact = torch.linalg.solve(H, b)
    torch.testing.assert_close(conjugate_gradient(lambda v: H @ v, b, tol=1e-12), exact)
    step = 1 / float(torch.linalg.eigvalsh(H)[-1])
    torch.testing.assert_close(neumann_series(lambda v: H @ v, b, step, 2000), exact)
    # Truncated series: a partial sum, short of the solution.
    assert not torch.allclose(neumann_series(lambda v: H @ v, b, step, 3), exact, atol=1e-3)


def test_neumann_hypergradients_on_full_batches_tend_to_the_exact_hypergradient():
    problem = quadratic()
    lmbd = random_point(problem)[1]
    theta_star = problem.solve_inner(lmbd)
    exact, _ = problem.hypergradient(theta_star, lmbd)
    step = 1 / float(torch.linalg.eigvalsh(problem.A.mean(0))[-1])

    def estimate(n_products, **options):
        batches = HypergradientBatches(FULL_BATCH, FULL_BATCH, [FULL_BATCH] * n_products)
        return neumann_hypergradient(problem, theta_star, lmbd, batches, step, **options)
    torch.testing.assert_close(estimate(3000), exact)
    short_error = float(torch.linalg.vector_norm(estimate(5) - exact))
    assert short_error > 1e-3 * float(torch.linalg.vector_norm(exact))
    # Ghadimi and Wang: Q eta prod_{k<p} (I - eta H) averaged over p uniform in
    # {0, ..., Q - 1} is eta sum_{p<Q} (I - eta H)^p, the Neumann series.
    n_steps = 40
    averaged = sum(estimate(p, truncation_scale=n_steps * step)
                   for p in range(n_steps)) / n_steps
    torch.testing.assert_close(averaged, estimate(n_steps - 1))


def test_neumann_hypergradient_uses_each_batch_for_its_own_term():
    """One Hessian product: outer, cross and Hessian batches each enter only
    their own factor, against a direct computation on the closed forms."""
    problem = quadratic()
    theta, lmbd, _ = random_point(problem)
    outer, cross, hessian = slice(0, 5), slice(5, 9), [slice(2, 7)]
    step = 0.3
    H, C = problem.H[outer].mean(0), problem.C[outer].mean(0)
    grad_theta_outer = H @ theta + C @ lmbd + problem.b[outer].mean(0)
    v = step * (grad_theta_outer + (grad_theta_outer - step * problem.A[hessian[0]].mean(0)
                                    @ grad_theta_outer))
    expected = C.T @ theta + problem.E @ lmbd - problem.B[cross].mean(0).T @ v
    batches = HypergradientBatches(outer, cross, hessian)
    torch.testing.assert_close(neumann_hypergradient(problem, theta, lmbd, batches, step),
                               expected)
