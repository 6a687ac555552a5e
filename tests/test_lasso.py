"""Lasso objective, gradient, duality gap and reference solver."""
import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso

from solvers_common.lasso import (
    check_dictionary,
    duality_gap,
    lasso_gradient,
    lasso_objective,
    lipschitz_constant,
    lmbd_max,
    proximal_gradient_mapping,
    proximal_gradient_step,
    solve_lasso,
    solve_lasso_cached,
)


def _exact_lipschitz(D):
    return torch.linalg.matrix_norm(D, ord=2) ** 2


def test_objective_and_gradient_hand_computed():
    D = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    z = torch.tensor([[1.0, 0.0, -1.0]], dtype=torch.float64)
    # D z = (0, -1), x - D z = (1, 3): 1/2 * 10 + 0.5 * ||z||_1 = 5 + 1
    torch.testing.assert_close(lasso_objective(z, x, D, 0.5),
                               torch.tensor([6.0], dtype=torch.float64))
    # D^T (D z - x) = D^T (-1, -3) = (-1, -3, -4)
    torch.testing.assert_close(lasso_gradient(z, x, D),
                               torch.tensor([[-1.0, -3.0, -4.0]],
                                            dtype=torch.float64))


def test_objective_per_signal_matches_numpy(make_problem):
    D, X = make_problem(6, 9, 5, seed=1)
    Z = torch.randn(5, 9, generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    lmbd = 0.3
    out = lasso_objective(Z, X, D, lmbd)
    assert out.shape == (5,)
    Dn, Xn, Zn = D.numpy(), X.numpy(), Z.numpy()
    for i in range(5):
        expected = (0.5 * np.sum((Xn[i] - Dn @ Zn[i]) ** 2)
                    + lmbd * np.sum(np.abs(Zn[i])))
        assert out[i].item() == pytest.approx(expected, rel=1e-14)


def test_gradient_matches_autograd_batched(make_problem):
    D, X = make_problem(7, 11, 4, seed=2)
    Z = torch.randn(3, 4, 11, generator=torch.Generator().manual_seed(2),
                    dtype=torch.float64, requires_grad=True)
    smooth = lasso_objective(Z, X, D, 0.0)
    assert smooth.shape == (3, 4)
    (grad,) = torch.autograd.grad(smooth.sum(), Z)
    torch.testing.assert_close(lasso_gradient(Z.detach(), X, D), grad,
                               rtol=1e-12, atol=1e-12)
    # and the full objective's gradient where no coordinate is 0
    Z0 = Z.detach().clone().requires_grad_(True)
    (grad_full,) = torch.autograd.grad(lasso_objective(Z0, X, D, 0.7).sum(), Z0)
    torch.testing.assert_close(grad_full, grad + 0.7 * torch.sign(Z0.detach()),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(20, 50), (10, 20), (8, 16), (30, 15)])
def test_lipschitz_constant_matches_spectral_norm(shape):
    """Relative error <= 1e-8 on the first 20 seeds of Gaussian dictionaries
    with unit-norm columns."""
    errors = {}
    for seed in range(20):
        generator = torch.Generator().manual_seed(seed)
        D = torch.randn(*shape, generator=generator, dtype=torch.float64)
        D /= torch.linalg.vector_norm(D, dim=0)
        exact = _exact_lipschitz(D)
        errors[seed] = (abs(lipschitz_constant(D) - exact) / exact).item()
    bad = {seed: f"{error:.1e}" for seed, error in errors.items() if error > 1e-8}
    assert not bad, f"relative errors above 1e-8 (seed: error): {bad}"


def test_lipschitz_constant_known_spectrum():
    # D = U diag(s) V^T with chosen singular values
    generator = torch.Generator().manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(6, 6, generator=generator,
                                       dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(9, 9, generator=generator,
                                       dtype=torch.float64))
    s = torch.tensor([3.0, 1.5, 1.0, 0.5, 0.2, 0.1], dtype=torch.float64)
    D = U @ torch.diag(s) @ V[:6]
    assert lipschitz_constant(D).item() == pytest.approx(9.0, rel=1e-10)


def test_lmbd_max_matches_numpy(make_problem):
    D, X = make_problem(20, 50, 10, seed=3)
    expected = np.max(np.abs(X.numpy() @ D.numpy()))
    assert lmbd_max(X, D).item() == pytest.approx(expected, rel=1e-14)


def test_zero_is_optimal_at_lmbd_max_only(make_problem):
    D, X = make_problem(20, 50, 10, seed=3)
    lmax = lmbd_max(X, D)
    Z0 = torch.zeros(10, 50, dtype=torch.float64)
    gap, primal = duality_gap(Z0, X, D, lmax)
    torch.testing.assert_close(gap, torch.zeros_like(gap), rtol=0, atol=1e-12)
    step = 1 / _exact_lipschitz(D)
    mapping = proximal_gradient_mapping(Z0, X, D, lmax, step)
    torch.testing.assert_close(mapping, torch.zeros_like(mapping), rtol=0,
                               atol=1e-12)
    # below lmbd_max, z = 0 is not optimal for the signal that attains the max
    argmax = (X @ D).abs().amax(-1).argmax()
    gap, primal = duality_gap(Z0, X, D, 0.9 * lmax)
    assert gap[argmax] > 1e-3 * primal[argmax]
    mapping = proximal_gradient_mapping(Z0, X, D, 0.9 * lmax, step)
    assert torch.linalg.vector_norm(mapping[argmax]) > 1e-3
    # and the solver moves away from 0 for that signal
    Z, _ = solve_lasso(X, D, 0.9 * lmax)
    assert Z[argmax].abs().sum() > 0
    assert lasso_objective(Z, X, D, 0.9 * lmax)[argmax] < primal[argmax]


@pytest.fixture(scope="module")
def solved_problem():
    generator = torch.Generator().manual_seed(0)
    D = torch.randn(20, 50, generator=generator, dtype=torch.float64)
    D /= torch.linalg.vector_norm(D, dim=0)
    X = torch.randn(6, 20, generator=generator, dtype=torch.float64)
    lmax = lmbd_max(X, D).item()
    solutions = {}
    for ratio in (0.1, 0.5):
        lmbd = ratio * lmax
        solutions[ratio] = (lmbd, *solve_lasso(X, D, lmbd))
    return D, X, solutions


@pytest.mark.parametrize("ratio", [0.1, 0.5])
def test_solve_lasso_reaches_tolerance(solved_problem, ratio):
    D, X, solutions = solved_problem
    lmbd, Z, relative_gap = solutions[ratio]
    assert Z.shape == (6, 50) and Z.dtype == torch.float64
    assert relative_gap.shape == (6,)
    assert torch.all(relative_gap <= 1e-10)
    # recompute the gap from the returned codes
    gap, primal = duality_gap(Z, X, D, lmbd)
    assert torch.all(gap >= -1e-12)
    assert torch.all(gap <= 1e-10 * primal)
    torch.testing.assert_close(primal, lasso_objective(Z, X, D, lmbd),
                               rtol=1e-14, atol=0)


@pytest.mark.parametrize("ratio", [0.1, 0.5])
def test_solve_lasso_matches_sklearn(solved_problem, ratio):
    D, X, solutions = solved_problem
    lmbd, Z, _ = solutions[ratio]
    n_samples = D.shape[0]
    ours = lasso_objective(Z, X, D, lmbd).numpy()
    for i in range(X.shape[0]):
        model = Lasso(alpha=lmbd / n_samples, fit_intercept=False, tol=1e-14,
                      max_iter=1_000_000)
        model.fit(D.numpy(), X[i].numpy())
        w = model.coef_
        theirs = 0.5 * np.sum((X[i].numpy() - D.numpy() @ w) ** 2) \
            + lmbd * np.abs(w).sum()
        assert ours[i] == pytest.approx(theirs, rel=1e-8)
        # both are minimizers: ours is no worse than sklearn's
        assert ours[i] <= theirs * (1 + 1e-10)


def test_solve_lasso_cached_is_the_solution_of_its_own_data(solved_problem, monkeypatch):
    import solvers_common.lasso as lasso

    D, X, solutions = solved_problem
    lmbd, Z, _ = solutions[0.1]
    calls = []
    monkeypatch.setattr(lasso, "_SOLUTIONS", type(lasso._SOLUTIONS)())
    monkeypatch.setattr(lasso, "solve_lasso",
                        lambda *args, **kwargs: calls.append(1) or solve_lasso(*args, **kwargs))
    first, _ = solve_lasso_cached(X, D, lmbd)
    torch.testing.assert_close(first, Z, rtol=0, atol=0)
    first.fill_(7.0)  # a caller's change does not reach the remembered solution
    again, _ = solve_lasso_cached(X.clone(), D.clone(), lmbd)
    torch.testing.assert_close(again, Z, rtol=0, atol=0)
    assert len(calls) == 1
    # Other signals, another lmbd or another dictionary: solved anew.
    other, _ = solve_lasso_cached(X[:3] * 2, D, lmbd)
    torch.testing.assert_close(other, solve_lasso(X[:3] * 2, D, lmbd)[0], rtol=0, atol=0)
    solve_lasso_cached(X, D, solutions[0.5][0])
    solve_lasso_cached(X, -D, lmbd)
    assert len(calls) == 4


@pytest.mark.parametrize("ratio", [0.1, 0.5])
def test_gradient_mapping_zero_at_solution_only(solved_problem, ratio):
    D, X, solutions = solved_problem
    lmbd, Z, _ = solutions[ratio]
    step = 1 / _exact_lipschitz(D)
    mapping = proximal_gradient_mapping(Z, X, D, lmbd, step)
    assert torch.linalg.vector_norm(mapping, dim=-1).max() < 1e-7
    # the mapping is (z - ISTA step) / step
    torch.testing.assert_close(
        mapping, (Z - proximal_gradient_step(Z, X, D, lmbd, step)) / step)
    # elsewhere it is not zero: at z = 0 for the signals whose solution is not
    # 0 (at 0.5 lmbd_max some signals have z* = 0), at a perturbed solution
    nonzero_solution = Z.abs().sum(-1) > 0
    assert nonzero_solution.sum() >= 3
    mapping = proximal_gradient_mapping(torch.zeros_like(Z), X, D, lmbd, step)
    norms = torch.linalg.vector_norm(mapping, dim=-1)
    assert torch.all(norms[nonzero_solution] > 1e-3)
    assert torch.all(norms[~nonzero_solution] < 1e-12)
    mapping = proximal_gradient_mapping(Z + 1e-2, X, D, lmbd, step)
    assert torch.all(torch.linalg.vector_norm(mapping, dim=-1) > 1e-3)


def test_duality_gap_nonnegative_and_weak_duality(solved_problem):
    D, X, solutions = solved_problem
    lmbd, Z_star, _ = solutions[0.1]
    generator = torch.Generator().manual_seed(4)
    F_star = lasso_objective(Z_star, X, D, lmbd)
    for scale in (1e-4, 1e-1, 1.0, 10.0):
        Z = Z_star + scale * torch.randn(Z_star.shape, generator=generator,
                                         dtype=torch.float64)
        gap, primal = duality_gap(Z, X, D, lmbd)
        torch.testing.assert_close(primal, lasso_objective(Z, X, D, lmbd))
        assert torch.all(gap >= 0)
        # the dual value primal - gap is a lower bound of F(z*)
        assert torch.all(primal - gap <= F_star * (1 + 1e-10))
        assert torch.all(gap >= primal - F_star - 1e-10 * F_star)


def test_duality_gap_hand_computed():
    # one signal, D = I: primal at z = 0 is 1/2 ||x||^2; the residual x is
    # rescaled by max(1, ||x||_inf / lmbd) = 4 / 2 = 2
    D = torch.eye(2, dtype=torch.float64)
    x = torch.tensor([[4.0, 1.0]], dtype=torch.float64)
    gap, primal = duality_gap(torch.zeros(1, 2, dtype=torch.float64), x, D, 2.0)
    theta = x / 2
    dual = 0.5 * (x**2).sum() - 0.5 * ((x - theta) ** 2).sum()
    torch.testing.assert_close(primal, torch.tensor([8.5], dtype=torch.float64))
    torch.testing.assert_close(gap, 8.5 - dual.reshape(1))
    # at the solution, soft-thresholding of x with D = I, the gap vanishes
    z = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
    gap, _ = duality_gap(z, x, D, 2.0)
    torch.testing.assert_close(gap, torch.zeros(1, dtype=torch.float64))


def test_check_dictionary_raises_on_mismatch():
    X = torch.zeros(5, 4)
    check_dictionary(X, torch.zeros(4, 7))  # fine
    with pytest.raises(ValueError):
        check_dictionary(X, torch.zeros(7, 4))
    with pytest.raises(ValueError):
        check_dictionary(X, torch.zeros(4))
    with pytest.raises(ValueError):
        check_dictionary(X, torch.zeros(2, 4, 7))
    with pytest.raises(ValueError):
        solve_lasso(X, torch.zeros(7, 4), 0.1)
