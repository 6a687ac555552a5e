"""Unrolled networks and their training loops."""
import math

import numpy as np
import pytest
import torch

from solvers_common.lasso import (
    lasso_objective,
    lipschitz_constant,
    lmbd_max,
    solve_lasso,
)
from solvers_common.unrolled import (
    ALISTA,
    FISTA,
    ISTA,
    LISTA,
    LISTACP,
    SLISTA,
    ConstrainedUnrolledTrainer,
    LISTATied,
    UnrolledNetwork,
    UnrolledTrainer,
)
from solvers_common.unrolled.networks import analytic_weight_matrix

ALL_NETWORKS = (ISTA, FISTA, LISTA, LISTACP, ALISTA, SLISTA)


def _st(v, t):
    return np.sign(v) * np.maximum(np.abs(v) - t, 0)


def _ista_by_hand(D, X, lmbd, n_layers, step, hook=None):
    """ISTA in numpy, iterates (L+1, N, m); ``hook(l, z)`` as the networks'."""
    D, X = np.asarray(D), np.asarray(X)
    z = np.zeros((X.shape[0], D.shape[1]))
    iterates = [z]
    for layer in range(1, n_layers + 1):
        z = _st(z - step * (z @ D.T - X) @ D, step * lmbd)
        if hook is not None:
            z = hook(layer, z)
        iterates.append(z)
    return np.stack(iterates)


def _fista_by_hand(D, X, lmbd, n_layers, step, hook=None):
    """FISTA of Beck & Teboulle (2009), eq. (4.1)-(4.3), with x_0 = 0:
    y_1 = x_0, t_1 = 1, x_k = p_L(y_k), t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2,
    y_{k+1} = x_k + (t_k - 1) / t_{k+1} (x_k - x_{k-1})."""
    D, X = np.asarray(D), np.asarray(X)
    x_previous = np.zeros((X.shape[0], D.shape[1]))
    y, t = x_previous, 1.0
    iterates = [x_previous]
    for k in range(1, n_layers + 1):
        x = _st(y - step * (y @ D.T - X) @ D, step * lmbd)
        if hook is not None:
            x = hook(k, x)
        t_next = (1 + math.sqrt(1 + 4 * t**2)) / 2
        y = x + (t - 1) / t_next * (x - x_previous)
        x_previous, t = x, t_next
        iterates.append(x)
    return np.stack(iterates)


@pytest.fixture(scope="module")
def problem():
    """n = 20, m = 50, 30 Gaussian signals, lmbd = 0.1 lmbd_max, float64."""
    generator = torch.Generator().manual_seed(0)
    D = torch.randn(20, 50, generator=generator, dtype=torch.float64)
    D /= torch.linalg.vector_norm(D, dim=0)
    X = torch.randn(30, 20, generator=generator, dtype=torch.float64)
    lmbd = 0.1 * lmbd_max(X, D).item()
    z_star, gap = solve_lasso(X, D, lmbd)
    assert torch.all(gap <= 1e-10)
    return D, X, lmbd, z_star


# ---------------------------------------------------------------------------
# Classical networks
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("network_class", ALL_NETWORKS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_output_shape_and_zero_start(problem, network_class, dtype):
    D, X, lmbd, _ = problem
    network = network_class(D.to(dtype), lmbd, 7)
    with torch.no_grad():
        iterates = network(X.to(dtype))
    assert iterates.shape == (8, 30, 50)
    assert iterates.dtype == dtype
    assert torch.all(iterates[0] == 0)
    assert torch.all(torch.isfinite(iterates))
    assert iterates[1:].abs().sum() > 0


@pytest.mark.parametrize("network_class", ALL_NETWORKS)
def test_inference_path_equals_autograd_path(problem, network_class):
    """Without autograd the soft-thresholding is one softshrink kernel; the
    values must be those of the recorded path."""
    D, X, lmbd, _ = problem
    network = network_class(D, lmbd, 6)
    with torch.no_grad():
        # perturb every weight, so that no layer equals its neighbor
        for parameter in network.parameters():
            parameter.mul_(1 + 0.1 * torch.rand(parameter.shape, dtype=parameter.dtype))
        inference = network(X)
    recorded = network(X.clone().requires_grad_())
    assert recorded.requires_grad
    torch.testing.assert_close(inference, recorded.detach(), rtol=1e-12, atol=1e-14)


def test_diverged_network_is_not_in_the_inference_path(problem):
    """An infinite step (a diverged training) must give NaN iterates, which
    benchopt records as a divergence, with or without autograd: soft-
    thresholding by an infinite threshold must not turn them into zeros."""
    D, X, lmbd, _ = problem
    network = SLISTA(D, lmbd, 3)
    with torch.no_grad():
        network.step.fill_(math.inf)
        inference = network(X)
    recorded = network(X.clone().requires_grad_()).detach()
    assert torch.isnan(inference[-1]).any()
    assert torch.equal(torch.isnan(inference), torch.isnan(recorded))


class _HalfStepISTA(ISTA):
    """A network as a user writes one, layer 0 not special-cased."""

    def preactivation(self, index, z, z_previous, terms):
        return z - 0.5 * (z - torch.addmm(terms, z, self.W_z.T))


def test_user_written_network(problem):
    D, X, lmbd, _ = problem
    network = _HalfStepISTA(D, lmbd, 5)
    step = 1 / lipschitz_constant(D).item()
    z, expected = torch.zeros(30, 50, dtype=torch.float64), [torch.zeros(30, 50)]
    for _ in range(5):
        u = z - 0.5 * step * (z @ D.T - X) @ D
        z = torch.sign(u) * torch.clamp(u.abs() - step * lmbd, min=0)
        expected.append(z)
    with torch.no_grad():
        inference = network(X)
    recorded = network(X.clone().requires_grad_())
    torch.testing.assert_close(inference, torch.stack(expected).to(inference),
                               rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(recorded.detach(), inference, rtol=1e-12, atol=1e-14)


def test_ista_objective_decreases_monotonically(problem):
    D, X, lmbd, z_star = problem
    with torch.no_grad():
        iterates = ISTA(D, lmbd, 50)(X)
    F = lasso_objective(iterates, X, D, lmbd)  # (51, N)
    increases = F[1:] - F[:-1]
    assert increases.max() <= 1e-12, increases.max()
    # and it approaches F*, without going below it
    F_star = lasso_objective(z_star, X, D, lmbd)
    assert torch.all(F[-1] >= F_star * (1 - 1e-12))
    assert torch.all(F[-1] - F_star < 0.1 * (F[0] - F_star))


def test_ista_matches_hand_written_loop(problem):
    D, X, lmbd, _ = problem
    step = 1 / torch.linalg.matrix_norm(D, ord=2).item() ** 2
    with torch.no_grad():
        iterates = ISTA(D, lmbd, 30)(X)
    expected = _ista_by_hand(D, X, lmbd, 30, step)
    # the network's step comes from lipschitz_constant, accurate to ~1e-10 on
    # this dictionary
    np.testing.assert_allclose(iterates.numpy(), expected, rtol=0, atol=1e-8)


def test_fista_matches_beck_teboulle_loop(problem):
    D, X, lmbd, _ = problem
    # same step as the network, so that this checks the momentum only
    step = 1 / lipschitz_constant(D).item()
    with torch.no_grad():
        iterates = FISTA(D, lmbd, 50)(X)
    expected = _fista_by_hand(D, X, lmbd, 50, step)
    np.testing.assert_allclose(iterates.numpy(), expected, rtol=0, atol=1e-10)


def test_fista_converges_faster_than_ista(problem):
    D, X, lmbd, z_star = problem
    F_star = lasso_objective(z_star, X, D, lmbd)
    with torch.no_grad():
        gap_ista = lasso_objective(ISTA(D, lmbd, 50)(X)[-1], X, D, lmbd) - F_star
        gap_fista = lasso_objective(FISTA(D, lmbd, 50)(X)[-1], X, D, lmbd) - F_star
    assert torch.all(gap_ista >= -1e-12) and torch.all(gap_fista >= -1e-12)
    assert gap_fista.mean() < 0.5 * gap_ista.mean()
    assert (gap_fista < gap_ista).double().mean() >= 0.8


@pytest.mark.parametrize("make_network", [
    lambda D, lmbd, L: LISTA(D, lmbd, L, init="ista"),
    LISTACP,
    SLISTA,
], ids=["LISTA", "LISTACP", "SLISTA"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6),
                                       (torch.float64, 1e-10)])
def test_untrained_networks_equal_ista(problem, make_network, dtype, tol):
    D, X, lmbd, _ = problem
    D, X = D.to(dtype), X.to(dtype)
    with torch.no_grad():
        expected = ISTA(D, lmbd, 20)(X)
        iterates = make_network(D, lmbd, 20)(X)
    assert iterates.shape == expected.shape
    # the networks compute the same step in a different order: in float32 the
    # iterates (of magnitude up to ~3) agree to a few ulps
    torch.testing.assert_close(iterates, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("grad", [False, True], ids=["inference", "autograd"])
def test_untied_lista_matches_gregor_lecun_layer_loop(problem, grad):
    """Untied LISTA with different random weights in every layer against the
    layer of Gregor & LeCun (2010), z_{l+1} = ST(W_z^l z_l + W_x^l x, theta^l),
    written in numpy: layer l must use its own W_z^l, W_x^l and theta^l."""
    D, X, lmbd, _ = problem
    n_layers = 5
    network = LISTA(D, lmbd, n_layers, init="random", random_scale=0.3,
                    generator=torch.Generator().manual_seed(11))
    # the thresholds must be non-negative for ST to be a shrinkage, and the
    # layers must differ, or a layer reusing another's weights goes unseen
    with torch.no_grad():
        network.threshold.abs_()
    W_z, W_x = network.W_z.detach().numpy(), network.W_x.detach().numpy()
    theta = network.threshold.detach().numpy()
    assert min(np.abs(W_z[k] - W_z[0]).max() for k in range(1, n_layers)) > 0.1
    z = np.zeros((X.shape[0], D.shape[1]))
    expected = [z]
    for layer in range(n_layers):
        z = _st(z @ W_z[layer].T + X.numpy() @ W_x[layer].T, theta[layer])
        expected.append(z)
    expected = np.stack(expected)
    assert np.abs(expected[-1]).max() > 0.1  # the thresholds do not zero everything
    if grad:
        iterates = network(X.clone().requires_grad_()).detach()
    else:
        with torch.no_grad():
            iterates = network(X)
    np.testing.assert_allclose(iterates.numpy(), expected, rtol=0, atol=1e-10)


def test_log_gradient_norm_noise_follows_its_law(tiny_problem):
    """noise_scaling="log_gradient_norm": the iterate z_l (l < L) a layer
    passes on is z_l + sigma log ||D^T (D z_l - x)|| n_l, per signal, with
    n_l the standard Gaussian draws of the trainer's generator (the code of
    Hadou et al. 2024). The signals are scaled so that the gradient norms
    range from below 1 (negative log) to far above e, where log ||g|| and
    ||g|| differ."""
    D, X, lmbd, z_star = tiny_problem
    n_layers, sigma, seed = 4, 0.05, 5
    x = X[:16] * torch.logspace(-1, 2, 16, dtype=X.dtype)[:, None]
    for m_columns in (D.shape[1], D.shape[0]):  # m >= 2n (two products), m < 2n (Gram)
        D_used = D[:, :m_columns]
        network = LISTA(D_used, lmbd, n_layers)
        trainer = UnrolledTrainer(network, x, torch.zeros(16, m_columns, dtype=x.dtype),
                                  D_used, lmbd, batch_size=16, noise_level=sigma,
                                  noise_scaling="log_gradient_norm",
                                  generator=torch.Generator().manual_seed(seed))
        noisy = trainer.forward(x).detach()
        draws = torch.Generator().manual_seed(seed)
        norms = []

        def by_hand(layer, z):
            if layer == n_layers:
                return z
            gradient_norm = torch.linalg.vector_norm((z @ D_used.T - x) @ D_used, dim=-1)
            norms.append(gradient_norm.detach())
            noise = torch.randn(z.shape, generator=draws, dtype=z.dtype)
            return z + sigma * torch.log(gradient_norm)[:, None] * noise

        with torch.no_grad():
            expected = network(x, iterate_noise=by_hand)
        norms = torch.cat(norms)
        assert norms.min() < 0.5 and norms.max() > 10
        torch.testing.assert_close(noisy, expected, rtol=1e-9, atol=1e-11)


def test_untrained_alista_matches_hand_written_layers(problem):
    D, X, lmbd, _ = problem
    W = analytic_weight_matrix(D).numpy()
    Dn, Xn = D.numpy(), X.numpy()
    gamma = 1 / np.linalg.norm(W.T @ Dn, 2)
    z = np.zeros((30, 50))
    expected = [z]
    for _ in range(10):
        z = _st(z - gamma * (z @ Dn.T - Xn) @ W, gamma * lmbd)
        expected.append(z)
    with torch.no_grad():
        iterates = ALISTA(D, lmbd, 10)(X)
    np.testing.assert_allclose(iterates.numpy(), np.stack(expected), rtol=0,
                               atol=1e-10)


# ---------------------------------------------------------------------------
# ALISTA's analytic weights
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(20, 50), (30, 15)])
def test_analytic_weights_defining_conditions(shape):
    generator = torch.Generator().manual_seed(1)
    D = torch.randn(*shape, generator=generator, dtype=torch.float64)
    D /= torch.linalg.vector_norm(D, dim=0)
    W = analytic_weight_matrix(D)
    assert W.shape == D.shape and W.dtype == D.dtype
    Dn, Wn = D.numpy(), W.numpy()
    # feasibility: w_i^T d_i = 1
    np.testing.assert_allclose(np.diag(Wn.T @ Dn), 1.0, rtol=0, atol=1e-10)
    G = Dn @ Dn.T
    rng = np.random.default_rng(1)
    for i in range(shape[1]):
        d, w = Dn[:, i], Wn[:, i]
        # KKT: G w = mu d for some mu (G w is parallel to d)
        Gw = G @ w
        parallel = Gw - (d @ Gw) / (d @ d) * d
        assert np.linalg.norm(parallel) <= 1e-10 * np.linalg.norm(Gw)
        # feasible perturbations (d^T p = 0) never decrease ||D^T w||^2
        value = np.sum((Dn.T @ w) ** 2)
        for _ in range(20):
            p = rng.standard_normal(shape[0])
            p -= (d @ p) / (d @ d) * d
            for scale in (1e-3, 1.0):
                assert np.sum((Dn.T @ (w + scale * p)) ** 2) >= value - 1e-12
        # the optimal value, from the KKT system
        # [[2 G, d], [d^T, 0]] [w; nu] = [0; 1] solved by least squares
        kkt = np.block([[2 * G, d[:, None]], [d[None, :], np.zeros((1, 1))]])
        rhs = np.zeros(shape[0] + 1)
        rhs[-1] = 1
        solution = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:-1]
        assert value == pytest.approx(np.sum((Dn.T @ solution) ** 2), rel=1e-8)
        if shape[0] < shape[1]:  # G invertible: the minimizer is unique
            np.testing.assert_allclose(w, solution, rtol=0, atol=1e-8)


def test_analytic_weights_float32_input():
    generator = torch.Generator().manual_seed(2)
    D = torch.randn(10, 20, generator=generator)
    D /= torch.linalg.vector_norm(D, dim=0)
    W = analytic_weight_matrix(D)
    assert W.dtype == torch.float32
    torch.testing.assert_close(torch.diagonal(W.T @ D), torch.ones(20),
                               rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------
# LISTA random initialization
# ---------------------------------------------------------------------------

def _parameters(network):
    return torch.cat([p.detach().reshape(-1) for p in network.parameters()])


def test_lista_random_init_reproducible_and_small(problem):
    D, X, lmbd, _ = problem

    def make(seed, scale=1e-2):
        return LISTA(D, lmbd, 4, init="random", random_scale=scale,
                     generator=torch.Generator().manual_seed(seed))

    first, second, other = make(3), make(3), make(4)
    assert torch.equal(_parameters(first), _parameters(second))
    assert not torch.allclose(_parameters(first), _parameters(other))
    with torch.no_grad():
        assert torch.equal(first(X), second(X))
    for scale in (1e-2, 1e-3):
        weights = _parameters(make(5, scale))
        assert weights.numel() > 1000
        assert abs(weights.std().item() / scale - 1) < 0.1
        assert abs(weights.mean().item()) < 0.1 * scale
        assert weights.abs().max() < 6 * scale
    # far from ISTA's weights
    ista = _parameters(LISTA(D, lmbd, 4, init="ista"))
    assert (ista - _parameters(first)).abs().max() > 0.5


# ---------------------------------------------------------------------------
# Invalid inputs
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("network_class", ALL_NETWORKS)
def test_networks_reject_invalid_parameters(problem, network_class):
    D, X, lmbd, _ = problem
    with pytest.raises(ValueError):
        network_class(D, lmbd, 0)
    with pytest.raises(ValueError):
        network_class(D, lmbd, -3)
    for bad_lmbd in (0.0, -0.1):
        with pytest.raises(ValueError):
            network_class(D, bad_lmbd, 3)
    with pytest.raises(ValueError):
        network_class(D[0], lmbd, 3)
    network = network_class(D, lmbd, 3)
    for bad_X in (X[:, :-1], torch.zeros(4, 50, dtype=torch.float64)):
        with pytest.raises(ValueError):
            network(bad_X)


def test_lista_rejects_unknown_init(problem):
    D, _, lmbd, _ = problem
    with pytest.raises(ValueError):
        LISTA(D, lmbd, 3, init="zeros")


def test_trainers_reject_invalid_arguments(problem):
    D, X, lmbd, z_star = problem
    network = LISTA(D, lmbd, 3)
    args = (network, X, z_star, D, lmbd)
    for trainer_class in (UnrolledTrainer, ConstrainedUnrolledTrainer):
        for kwargs in ({"loss": "l1"}, {"batch_size": X.shape[0] + 1},
                       {"noise_level": -0.1}, {"lr": 0.0}, {"batch_size": 0},
                       {"noise_scaling": "linear"}):
            with pytest.raises(ValueError):
                trainer_class(*args, **kwargs)
        trainer_class(*args, batch_size=X.shape[0])  # the boundary is fine
    for kwargs in ({"constraint": "objective"}, {"dual_update": "step"},
                   {"lr_dual": 0.0}, {"epsilon": 1.0}, {"epsilon": -0.1}):
        with pytest.raises(ValueError):
            ConstrainedUnrolledTrainer(*args, **kwargs)


# ---------------------------------------------------------------------------
# iterate_noise hook
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("network_class,by_hand", [(ISTA, _ista_by_hand),
                                                   (FISTA, _fista_by_hand)])
def test_iterate_noise_hook_is_applied(problem, network_class, by_hand):
    D, X, lmbd, _ = problem
    constant = 0.3
    calls = []

    def hook(layer, z):
        calls.append(layer)
        return z + constant if layer == 2 else z

    network = network_class(D, lmbd, 6)
    with torch.no_grad():
        clean = network(X)
        noisy = network(X, iterate_noise=hook)
    assert calls == [1, 2, 3, 4, 5, 6]
    torch.testing.assert_close(noisy[:2], clean[:2], rtol=0, atol=0)
    torch.testing.assert_close(noisy[2], clean[2] + constant, rtol=0, atol=0)
    assert (noisy[3] - clean[3]).abs().max() > 1e-3
    step = 1 / lipschitz_constant(D).item()
    expected = by_hand(D, X, lmbd, 6, step,
                       hook=lambda k, z: z + constant if k == 2 else z)
    np.testing.assert_allclose(noisy.numpy(), expected, rtol=0, atol=1e-10)


def test_iterate_noise_hook_on_learned_network(problem):
    D, X, lmbd, _ = problem
    network = LISTA(D, lmbd, 4, init="random",
                    generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        clean = network(X)
        noisy = network(X, iterate_noise=lambda k, z: z + 1.0 if k == 2 else z)
    torch.testing.assert_close(noisy[:2], clean[:2], rtol=0, atol=0)
    torch.testing.assert_close(noisy[2], clean[2] + 1.0, rtol=0, atol=0)
    assert not torch.allclose(noisy[3], clean[3])


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------



def _supervised_loss(network, X, z_star):
    with torch.no_grad():
        return 0.5 * ((network(X)[-1] - z_star) ** 2).sum(-1).mean().item()


def _train(tiny_problem, network_class, seed, n_epochs=4, **kwargs):
    D, X, lmbd, z_star = tiny_problem
    network = network_class(D, lmbd, 5)
    trainer = UnrolledTrainer(network, X, z_star, D, lmbd, lr=1e-2, batch_size=32,
                              generator=torch.Generator().manual_seed(seed),
                              **kwargs)
    for _ in range(n_epochs):
        trainer.train_epoch()
    assert trainer.epochs_done == n_epochs
    return network


@pytest.mark.parametrize("network_class", [LISTA, LISTACP, ALISTA, SLISTA])
def test_training_reduces_supervised_loss(tiny_problem, network_class):
    D, X, lmbd, z_star = tiny_problem
    before = _supervised_loss(network_class(D, lmbd, 5), X, z_star)
    after = _supervised_loss(_train(tiny_problem, network_class, 0), X, z_star)
    assert after < 0.9 * before, (before, after)


def test_training_reduces_unsupervised_loss(tiny_problem):
    D, X, lmbd, z_star = tiny_problem

    def objective(network):
        with torch.no_grad():
            return lasso_objective(network(X)[-1], X, D, lmbd).mean().item()

    before = objective(LISTA(D, lmbd, 5))
    after = objective(_train(tiny_problem, LISTA, 0, loss="unsupervised"))
    F_star = lasso_objective(z_star, X, D, lmbd).mean().item()
    assert after - F_star < 0.9 * (before - F_star)


@pytest.mark.parametrize("kwargs", [
    {}, {"noise_level": 0.05}, {"noise_level": 0.05,
                                "noise_scaling": "log_gradient_norm"},
], ids=["no-noise", "noise", "log-noise"])
def test_training_is_deterministic_given_seed(tiny_problem, kwargs):
    first = _parameters(_train(tiny_problem, LISTA, 7, n_epochs=2, **kwargs))
    second = _parameters(_train(tiny_problem, LISTA, 7, n_epochs=2, **kwargs))
    other = _parameters(_train(tiny_problem, LISTA, 8, n_epochs=2, **kwargs))
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_noise_level_changes_training(tiny_problem):
    clean = _parameters(_train(tiny_problem, LISTA, 7, n_epochs=1))
    noisy = _parameters(_train(tiny_problem, LISTA, 7, n_epochs=1,
                               noise_level=0.05))
    assert not torch.allclose(clean, noisy)


def test_epochs_roll_over(tiny_problem):
    D, X, lmbd, z_star = tiny_problem
    trainer = UnrolledTrainer(LISTA(D, lmbd, 2), X, z_star, D, lmbd,
                              batch_size=64)
    assert trainer.steps_per_epoch == 200 // 64
    trainer.train(7)
    assert trainer.epochs_done == 2
    trainer.train_epoch()
    assert trainer.epochs_done == 3


def _distance_constraints_by_hand(network, X, z_star, epsilon):
    with torch.no_grad():
        distances = torch.linalg.vector_norm(network(X) - z_star, dim=-1)
    return (distances[1:] / distances[:-1]).mean(-1) - (1 - epsilon)


def _gradient_constraints_by_hand(network, X, z_star, D, lmbd, epsilon):
    step = 1 / torch.linalg.matrix_norm(D, ord=2) ** 2
    with torch.no_grad():
        iterates = network(X)
    Dn, Xn = D.numpy(), X.numpy()
    norms = []
    for z in iterates.numpy():
        prox = _st(z - step.item() * (z @ Dn.T - Xn) @ Dn, step.item() * lmbd)
        norms.append(np.linalg.norm((z - prox) / step.item(), axis=-1))
    norms = np.stack(norms)
    return torch.tensor((norms[1:] / norms[:-1]).mean(-1) - (1 - epsilon))


@pytest.mark.parametrize("constraint", ["distance", "gradient"])
def test_batch_dual_ascent_step(tiny_problem, constraint):
    """With a full batch, one step sets nu = max(0, lr_dual c(theta_0))."""
    D, X, lmbd, z_star = tiny_problem
    X, z_star = X[:40], z_star[:40]
    network = LISTA(D, lmbd, 4, init="random",
                    generator=torch.Generator().manual_seed(0))
    epsilon, lr_dual = 0.05, 0.7
    if constraint == "distance":
        c = _distance_constraints_by_hand(network, X, z_star, epsilon)
    else:
        c = _gradient_constraints_by_hand(network, X, z_star, D, lmbd, epsilon)
    trainer = ConstrainedUnrolledTrainer(
        network, X, z_star, D, lmbd, constraint=constraint, epsilon=epsilon,
        lr_dual=lr_dual, dual_update="batch", batch_size=40, lr=1e-3)
    torch.testing.assert_close(trainer.multipliers, torch.zeros(4, dtype=X.dtype))
    trainer.train(1)
    expected = torch.relu(lr_dual * c)
    assert (expected > 0).any()
    torch.testing.assert_close(trainer.multipliers, expected, rtol=1e-10,
                               atol=1e-12)


def test_epoch_dual_ascent_step(tiny_problem):
    """Once per epoch, nu += lr_dual c on the whole training set."""
    D, X, lmbd, z_star = tiny_problem
    network = LISTA(D, lmbd, 4, init="random",
                    generator=torch.Generator().manual_seed(0))
    trainer = ConstrainedUnrolledTrainer(
        network, X, z_star, D, lmbd, lr_dual=0.5, dual_update="epoch",
        batch_size=100, lr=1e-3, generator=torch.Generator().manual_seed(0))
    trainer.train(1)  # mid-epoch: no dual update yet
    assert torch.all(trainer.multipliers == 0)
    trainer.train(1)
    assert trainer.epochs_done == 1
    c = _distance_constraints_by_hand(network, X, z_star, 0.05)
    assert (c > 0).any()
    torch.testing.assert_close(trainer.multipliers, torch.relu(0.5 * c),
                               rtol=1e-10, atol=1e-12)


def _increase_rate(network, X, z_star):
    """Fraction of (signal, layer) pairs with ||z_l - z*|| >= ||z_{l-1} - z*||."""
    with torch.no_grad():
        distances = torch.linalg.vector_norm(network(X) - z_star, dim=-1)
    return (distances[1:] >= distances[:-1]).double().mean().item()


def test_constrained_training_lowers_distance_increase_rate():
    generator = torch.Generator().manual_seed(0)
    D = torch.randn(10, 20, generator=generator, dtype=torch.float64)
    D /= torch.linalg.vector_norm(D, dim=0)
    X = torch.randn(300, 10, generator=generator, dtype=torch.float64)
    lmbd = 0.1 * lmbd_max(X, D).item()
    z_star, _ = solve_lasso(X, D, lmbd)
    rates, multipliers_seen = {}, []
    for name in ("unconstrained", "constrained"):
        network = LISTA(D, lmbd, 5, init="random",
                        generator=torch.Generator().manual_seed(0))
        kwargs = dict(lr=1e-2, batch_size=32,
                      generator=torch.Generator().manual_seed(0))
        if name == "unconstrained":
            trainer = UnrolledTrainer(network, X, z_star, D, lmbd, **kwargs)
        else:
            trainer = ConstrainedUnrolledTrainer(
                network, X, z_star, D, lmbd, lr_dual=1.0, dual_update="batch",
                **kwargs)
        for _ in range(10 * trainer.steps_per_epoch):
            trainer.train(1)
            if name == "constrained":
                assert torch.all(trainer.multipliers >= 0)
                multipliers_seen.append(trainer.multipliers.clone())
        rates[name] = _increase_rate(network, X, z_star)
    assert torch.stack(multipliers_seen).max() > 0
    assert rates["constrained"] < rates["unconstrained"], rates


@pytest.mark.parametrize("constraint", ["distance", "gradient"])
def test_constraint_not_dominated_by_signal_with_zero_solution(constraint):
    """A signal with ||D^T x||_inf < lmbd has z* = 0 = z_0, so its ratio
    ||z_1 - z*|| / ||z_0 - z*|| (or the gradient-mapping analogue) has a zero
    denominator; whenever z_1 != 0 (training noise, learned weights) a floored
    denominator makes it huge. One such signal among 41 should not move the
    mean constraint by more than a ratio of order 1 / 41."""
    generator = torch.Generator().manual_seed(0)
    D = torch.randn(10, 20, generator=generator, dtype=torch.float64)
    D /= torch.linalg.vector_norm(D, dim=0)
    X = torch.randn(40, 10, generator=generator, dtype=torch.float64)
    lmbd = 0.1 * lmbd_max(X, D).item()
    x_zero = 0.5 * lmbd * X[:1] / (X[:1] @ D).abs().max()
    X_all = torch.cat([X, x_zero])
    z_star, _ = solve_lasso(X_all, D, lmbd)
    assert torch.all(z_star[-1] == 0) and torch.all(z_star[:-1].abs().sum(-1) > 0)
    network = LISTA(D, lmbd, 3)
    trainer = ConstrainedUnrolledTrainer(network, X_all, z_star, D, lmbd,
                                         constraint=constraint, batch_size=41)

    def perturb(layer, z):  # as the training noise does, on z_1 .. z_{L-1}
        return z + 0.01 if layer == 1 else z

    with torch.no_grad():
        iterates = network(X_all, iterate_noise=perturb)
        with_zero = trainer.constraints(iterates, X_all, z_star)
        without = trainer.constraints(iterates[:, :-1], X, z_star[:-1])
    assert torch.all(torch.isfinite(with_zero))
    assert (with_zero - without).abs().max() < 1.0, (with_zero, without)


# ---------------------------------------------------------------------------
# Past the trained depth
# ---------------------------------------------------------------------------

def _perturbed(network, scale=0.1, seed=0):
    """``network`` with every weight perturbed, so that no layer equals another."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.mul_(1 + scale * torch.rand(parameter.shape, generator=generator,
                                                  dtype=parameter.dtype))
    return network


def _both_paths(network, X, **kwargs):
    """The iterates without autograd, checked against the recorded path."""
    with torch.no_grad():
        inference = network(X, **kwargs)
    recorded = network(X.clone().requires_grad_(), **kwargs).detach()
    torch.testing.assert_close(inference, recorded, rtol=1e-12, atol=1e-14)
    return inference


@pytest.mark.parametrize("network_class, by_hand", [(ISTA, _ista_by_hand),
                                                    (FISTA, _fista_by_hand)])
def test_ista_fista_extended_by_k_equal_n_plus_k_iterations(problem, network_class, by_hand):
    D, X, lmbd, _ = problem
    step = 1 / lipschitz_constant(D).item()
    extended = _both_paths(network_class(D, lmbd, 4), X, extra_layers=7)
    assert extended.shape == (12, 30, 50)
    with torch.no_grad():
        longer = network_class(D, lmbd, 11)(X)
    torch.testing.assert_close(extended, longer, rtol=0, atol=0)
    np.testing.assert_allclose(extended, by_hand(D, X, lmbd, 11, step), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("thresholds", ["shared", "per_layer"])
@pytest.mark.parametrize("n_layers", [1, 3])
def test_tied_network_extra_layers_apply_its_layer_again(problem, thresholds, n_layers):
    D, X, lmbd, _ = problem
    network = _perturbed(LISTATied(D, lmbd, n_layers, thresholds=thresholds))
    assert [tuple(p.shape) for p in network.parameters()] == [
        (50, 50), (50, 20), (1 if thresholds == "shared" else n_layers,)]
    iterates = _both_paths(network, X, extra_layers=5)
    with torch.no_grad():
        W_z, W_x, theta = network.W_z, network.W_x, network.threshold
        z = torch.zeros(30, 50, dtype=X.dtype)
        expected = [z]
        for layer in range(n_layers + 5):
            u = z @ W_z.T + X @ W_x.T
            threshold = theta[min(layer, len(theta) - 1)]
            z = torch.sign(u) * torch.clamp(u.abs() - threshold, min=0)
            expected.append(z)
    torch.testing.assert_close(iterates, torch.stack(expected), rtol=1e-10, atol=1e-12)
    assert network.fixed_point_map == (thresholds == "shared")


@pytest.mark.parametrize("network_class", [LISTA, LISTACP, ALISTA, SLISTA])
@pytest.mark.parametrize("n_layers", [1, 3])
def test_untied_networks_repeat_their_last_layer(problem, network_class, n_layers):
    """z_{L+j} is the last layer applied to z_{L+j-1}: the same as running a
    network whose layer L - 1 is also its layers L .. L + k - 1 (and with
    L = 1, not the first layer's shortcut for z_0 = 0)."""
    D, X, lmbd, _ = problem
    network = _perturbed(network_class(D, lmbd, n_layers))
    iterates = _both_paths(network, X, extra_layers=3)
    repeated = network_class(D, lmbd, n_layers + 3)
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            target = getattr(repeated, name)
            target.copy_(torch.cat([parameter, parameter[-1:].expand(3, *parameter.shape[1:])]))
        expected = repeated(X)
    torch.testing.assert_close(iterates, expected, rtol=1e-10, atol=1e-12)
    assert not torch.equal(iterates[-1], iterates[-2])


class _CannotContinue(ISTA):
    continuation = None


def test_extra_layers_are_checked(problem):
    D, X, lmbd, _ = problem
    network = ISTA(D, lmbd, 2)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="extra_layers"):
            network(X, extra_layers=bad)
    with pytest.raises(ValueError, match="extra_layers=2: _CannotContinue"):
        _CannotContinue(D, lmbd, 2)(X, extra_layers=2)
    assert _CannotContinue(D, lmbd, 2)(X, extra_layers=0).shape == (3, 30, 50)
    with pytest.raises(ValueError, match="thresholds"):
        LISTATied(D, lmbd, 2, thresholds="per_atom")


def test_user_network_repeats_its_last_layer(problem):
    """A network written as the template (a step per layer indexed by the
    layer) continues without code of its own."""
    D, X, lmbd, _ = problem

    class StepISTA(UnrolledNetwork):
        def __init__(self, n_layers):
            super().__init__(n_layers, D.shape[1])
            self.step = torch.nn.Parameter(torch.linspace(0.5, 1.0, n_layers, dtype=D.dtype)
                                           / lipschitz_constant(D))

        def preactivation(self, index, z, z_previous, x):
            return z - self.step[index] * (z @ D.T - x) @ D

        def thresholds(self, x):
            return self.step * lmbd

    iterates = _both_paths(StepISTA(3), X, extra_layers=2)
    step = (torch.linspace(0.5, 1.0, 3, dtype=D.dtype) / lipschitz_constant(D))[-1].item()
    z = iterates[3].numpy()
    for layer in (4, 5):
        z = _st(z - step * (z @ D.numpy().T - X.numpy()) @ D.numpy(), step * lmbd)
        np.testing.assert_allclose(iterates[layer], z, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------
# Dual update from the epoch's own passes; bfloat16 training
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("constraint", ["distance", "gradient"])
def test_epoch_running_equals_the_end_of_epoch_rule_with_frozen_weights(tiny_problem,
                                                                       constraint):
    D, X, lmbd, z_star = tiny_problem
    multipliers = {}
    for rule in ("epoch", "epoch_running"):
        network = LISTA(D, lmbd, 4, init="random", generator=torch.Generator().manual_seed(0))
        trainer = ConstrainedUnrolledTrainer(
            network, X, z_star, D, lmbd, constraint=constraint, lr_dual=0.5,
            dual_update=rule, batch_size=40, generator=torch.Generator().manual_seed(0))
        trainer.optimizer.step = lambda: None  # frozen weights
        trainer.train(4)  # mid-epoch: no dual update yet
        assert torch.all(trainer.multipliers == 0)
        trainer.train(1)
        assert trainer.epochs_done == 1
        first = trainer.multipliers.clone()
        trainer.train_epoch()
        multipliers[rule] = (first, trainer.multipliers.clone())
    assert (multipliers["epoch"][0] > 0).any()
    assert not torch.equal(multipliers["epoch"][0], multipliers["epoch"][1])
    for exact, running in zip(*multipliers.values()):
        torch.testing.assert_close(running, exact, rtol=1e-12, atol=1e-14)


def test_epoch_running_averages_the_training_passes(tiny_problem):
    """With moving weights, the running rule's constraints are the mean of
    the constraints of the batches' own forward passes."""
    D, X, lmbd, z_star = tiny_problem
    network = LISTA(D, lmbd, 3, init="random", generator=torch.Generator().manual_seed(0))
    trainer = ConstrainedUnrolledTrainer(
        network, X, z_star, D, lmbd, lr_dual=0.5, dual_update="epoch_running",
        batch_size=50, lr=1e-2, generator=torch.Generator().manual_seed(0))
    seen = []
    batch_loss = trainer.batch_loss

    def recording(iterates, x, z):
        seen.append(trainer.constraints(iterates.detach(), x, z))
        return batch_loss(iterates, x, z)

    trainer.batch_loss = recording
    trainer.train_epoch()
    expected = torch.relu(0.5 * torch.stack(seen).mean(0))
    assert (expected > 0).any()
    torch.testing.assert_close(trainer.multipliers, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("network_class", [LISTA, LISTATied])
def test_bfloat16_training_lowers_the_loss(tiny_problem, network_class):
    D, X, lmbd, z_star = tiny_problem
    D, X, z_star = D.float(), X.float(), z_star.float()
    networks, dtypes = {}, []
    for autocast_dtype in (None, torch.bfloat16):
        network = network_class(D, lmbd, 5)
        network.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
        before = _supervised_loss(network, X, z_star)
        trainer = UnrolledTrainer(network, X, z_star, D, lmbd, lr=1e-2, batch_size=32,
                                  generator=torch.Generator().manual_seed(0),
                                  autocast_dtype=autocast_dtype)
        dtypes.clear()
        for _ in range(4):
            trainer.train_epoch()
        # Every step ran in the precision asked for.
        assert dtypes == [autocast_dtype or torch.float32] * 4 * trainer.steps_per_epoch
        after = _supervised_loss(network, X, z_star)
        assert after < 0.9 * before, (autocast_dtype, before, after)
        assert all(p.dtype == torch.float32 for p in network.parameters())  # master weights
        networks[autocast_dtype] = network
    assert not torch.equal(_parameters(networks[None]), _parameters(networks[torch.bfloat16]))
    with pytest.raises(ValueError, match="autocast_dtype"):
        UnrolledTrainer(network, X, z_star, D, lmbd, autocast_dtype=torch.float16)
