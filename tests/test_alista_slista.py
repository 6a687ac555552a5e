"""ALISTA's support selection and SLISTA's unsupervised default (issue 23)."""
import ast
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from benchopt.benchmark import Benchmark

from solvers_common.lasso import lmbd_max, solve_lasso
from solvers_common.unrolled import ALISTA
from solvers_common.unrolled.networks import (
    analytic_weight_matrix,
    support_percents,
    support_selection_threshold,
    support_size,
)

BENCHMARK = Path(__file__).parents[1] / "benchmark_unrolling"
SOLVERS = BENCHMARK / "solvers"


def _problem(n=10, m=40, n_signals=25, seed=0):
    generator = torch.Generator().manual_seed(seed)
    D = torch.randn(n, m, generator=generator, dtype=torch.float64)
    D /= torch.linalg.vector_norm(D, dim=0)
    X = torch.randn(n_signals, n, generator=generator, dtype=torch.float64)
    return D, X, 0.1 * lmbd_max(X, D).item()


def _st(u, t):
    return np.sign(u) * np.maximum(np.abs(u) - t, 0)


def _hand_alista(D, X, W, steps, thresholds, sizes, noise=None):
    """ALISTA with support selection, written from Liu et al. (2019, eq. (16))
    and Chen et al. (2018, eq. (13)), one signal and one entry at a time:
    u = z - gamma W^T (D z - x); an entry among the k largest |u_i| of its
    signal with |u_i| > theta stays u_i, any other becomes ST(u_i, theta)."""
    z = np.zeros((X.shape[0], D.shape[1]))
    iterates = [z]
    for layer, (gamma, theta, k) in enumerate(zip(steps, thresholds, sizes), start=1):
        new = np.empty_like(z)
        for row in range(X.shape[0]):
            u = z[row] - gamma * W.T @ (D @ z[row] - X[row])
            largest = set(np.argsort(-np.abs(u))[:k].tolist())
            for i in range(len(u)):
                if i in largest and abs(u[i]) > theta:
                    new[row, i] = u[i]
                else:
                    new[row, i] = np.sign(u[i]) * max(abs(u[i]) - theta, 0.0)
        if noise is not None and layer in noise:
            new = new + noise[layer]
        z = new
        iterates.append(z)
    return np.stack(iterates)


def _trained_like(network, seed=1):
    """Moves the steps and thresholds off their initial values (one per layer,
    all different), as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        L = network.n_layers
        network.step.mul_(1 + 0.3 * torch.rand(L, generator=generator, dtype=torch.float64))
        network.threshold.mul_(0.5 + 2 * torch.rand(L, generator=generator,
                                                   dtype=torch.float64))
    return network


@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "autograd"])
def test_support_selection_layer_matches_its_transcription(grad):
    D, X, lmbd = _problem()
    L, extra = 5, 2
    # m = 40, p = 5 %, p_max = 12 %: percents 5, 10, 12, 12, 12, counts
    # round(39 p / 100) = 2, 4, 5, 5, 5.
    network = _trained_like(ALISTA(D, lmbd, L, support_selection=True, support_percent=5,
                                   support_max_percent=12))
    with torch.no_grad():  # a large threshold: some of the 5 largest entries fall below it
        network.threshold[2] *= 5
    assert network.support_sizes == (2, 4, 5, 5, 5)
    W = analytic_weight_matrix(D).numpy()
    steps = network.step.detach().numpy()
    thresholds = network.threshold.detach().numpy()
    # Past the trained depth the last layer repeats, selection included.
    steps_c = np.concatenate([steps, [steps[-1]] * extra])
    thresholds_c = np.concatenate([thresholds, [thresholds[-1]] * extra])
    sizes_c = list(network.support_sizes) + [5] * extra
    expected = _hand_alista(D.numpy(), X.numpy(), W, steps_c, thresholds_c, sizes_c)
    with torch.set_grad_enabled(grad):
        iterates = network(X, extra_layers=extra)
    np.testing.assert_allclose(iterates.detach().numpy(), expected, rtol=0, atol=1e-10)
    # The selection did act, in both of its conditions: some entries among
    # the k largest bypass the shrinkage, and some among the k largest fall
    # below the threshold (the transcription zeroes them).
    plain = _hand_alista(D.numpy(), X.numpy(), W, steps_c, thresholds_c, [0] * (L + extra))
    assert np.abs(expected - plain).max() > 1e-3
    below = above = 0
    for layer in range(L):
        z = expected[layer]
        u = z - steps[layer] * (z @ D.numpy().T - X.numpy()) @ W
        top = np.sort(np.abs(u), axis=1)[:, u.shape[1] - network.support_sizes[layer]:]
        below += (top <= thresholds[layer]).sum()
        above += (top > thresholds[layer]).sum()
    assert below > 0 and above > 0, (below, above)


def test_support_selection_keeps_the_iterate_noise_hook():
    D, X, lmbd = _problem(seed=2)
    network = _trained_like(ALISTA(D, lmbd, 4, support_selection=True, support_percent=6,
                                   support_max_percent=20))
    generator = np.random.default_rng(0)
    noise = {2: 0.05 * generator.standard_normal((X.shape[0], D.shape[1]))}
    expected = _hand_alista(D.numpy(), X.numpy(), analytic_weight_matrix(D).numpy(),
                            network.step.detach().numpy(), network.threshold.detach().numpy(),
                            network.support_sizes, noise=noise)

    def hook(layer, z):
        return z + torch.as_tensor(noise[layer]) if layer in noise else z

    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            iterates = network(X, iterate_noise=hook)
        np.testing.assert_allclose(iterates.detach().numpy(), expected, rtol=0, atol=1e-10)


def test_without_support_selection_alista_is_the_previous_network():
    D, X, lmbd = _problem(seed=3)
    W = analytic_weight_matrix(D).numpy()
    gamma = 1 / np.linalg.norm(W.T @ D.numpy(), 2)
    z = np.zeros((X.shape[0], D.shape[1]))
    expected = [z]
    for _ in range(6):
        z = _st(z - gamma * (z @ D.numpy().T - X.numpy()) @ W, gamma * lmbd)
        expected.append(z)
    for network in (ALISTA(D, lmbd, 6), ALISTA(D, lmbd, 6, support_selection=False),
                    ALISTA(D, lmbd, 6, support_selection=True, support_percent=0)):
        assert network.support_sizes == (0,) * 6
        with torch.no_grad():
            iterates = network(X)
        np.testing.assert_allclose(iterates.numpy(), np.stack(expected), rtol=0, atol=1e-10)


def test_percent_schedule_and_support_sizes():
    # The authors' 16-layer setting: p = 1.2 %, p_max = 13 %, m = 500.
    percents = support_percents(16, 1.2, 13.0)
    np.testing.assert_allclose(percents, [1.2 * layer for layer in range(1, 11)] + [13.0] * 6,
                               rtol=1e-12)
    # round(499 p / 100): 5.988 -> 6, 11.976 -> 12, ..., 59.88 -> 60, 64.87 -> 65
    assert [support_size(p, 500) for p in percents] == [
        6, 12, 18, 24, 30, 36, 42, 48, 54, 60, 65, 65, 65, 65, 65, 65]
    # The quick problem, m = 256, L = 10: 3.06 -> 3, 6.12 -> 6, ..., 30.6 -> 31.
    network = ALISTA(*_problem(n=64, m=256, n_signals=4)[::2], 10, support_selection=True)
    assert network.support_sizes == (3, 6, 9, 12, 15, 18, 21, 24, 28, 31)
    assert support_percents(3, 10.0, 15.0) == (10.0, 15.0, 15.0)


def test_support_selection_threshold_on_hand_values():
    u = torch.tensor([[3.0, -0.5, -2.0, 0.8, 1.5]], dtype=torch.float64)
    # the 2 largest |u| are 3 and -2: they pass; the others shrink by 1
    expected = torch.tensor([[3.0, 0.0, -2.0, 0.0, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(support_selection_threshold(u, 1.0, 2), expected,
                               rtol=0, atol=0)
    # above the threshold only: with theta = 2.5, -2 is soft-thresholded (to 0)
    expected = torch.tensor([[3.0, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(support_selection_threshold(u, 2.5, 2), expected,
                               rtol=0, atol=0)


def test_support_selection_is_differentiable():
    """The layers' derivatives in the steps and thresholds are those of
    finite differences (the selection, a mask, does not move under eps)."""
    D, X, lmbd = _problem(n=6, m=12, n_signals=5, seed=4)
    network = _trained_like(ALISTA(D, lmbd, 3, support_selection=True, support_percent=10,
                                   support_max_percent=30))
    assert network.support_sizes == (1, 2, 3)

    def last_iterate(step, threshold):
        return torch.func.functional_call(
            network, {"step": step, "threshold": threshold}, (X,))[-1]

    inputs = (network.step.detach().clone().requires_grad_(),
              network.threshold.detach().clone().requires_grad_())
    assert torch.autograd.gradcheck(last_iterate, inputs, eps=1e-7, atol=1e-6)
    network(X)[-1].square().sum().backward()
    assert network.step.grad.abs().min() > 0 and network.threshold.grad.abs().min() > 0


@pytest.mark.parametrize("parameters, name", [
    (dict(support_selection="yes"), "support_selection"),
    (dict(support_selection=1), "support_selection"),
    (dict(support_selection=True, support_percent=-1), "support_percent"),
    (dict(support_selection=True, support_percent=101), "support_percent"),
    (dict(support_selection=True, support_percent="1.2"), "support_percent"),
    (dict(support_selection=True, support_percent=True), "support_percent"),
    (dict(support_selection=True, support_max_percent=200), "support_max_percent"),
    (dict(support_max_percent=float("nan")), "support_max_percent"),
])
def test_bad_support_selection_values_raise(parameters, name):
    D, _, lmbd = _problem()
    with pytest.raises(ValueError, match=name):
        ALISTA(D, lmbd, 3, **parameters)


# ---------------------------------------------------------------------------
# The solvers
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def benchmark():
    return Benchmark(BENCHMARK)


def _solver(benchmark, name, **parameters):
    solver_class = next(s for s in benchmark.get_solvers() if s.name == name)
    return solver_class.get_instance(batch_size=16, **parameters)


def _set_objective(solver, n_layers=4):
    D, X, lmbd = _problem(n_signals=40)
    z_star, _ = solve_lasso(X, D, lmbd)
    solver.set_objective(X=X.numpy(), D=D.numpy(), lmbd=lmbd, n_layers=n_layers,
                         z_star=z_star.numpy())
    solver.build(0)
    return solver


def test_alista_solver_selects_the_support_by_default(benchmark):
    solver = _set_objective(_solver(benchmark, "alista"))
    network = solver.network
    assert network.support_selection is True
    # m = 40, p = 1.2 %, 4 layers: round(39 * 0.012 l) = 0, 1, 1, 2
    assert network.support_sizes == (0, 1, 1, 2)
    plain = _set_objective(_solver(benchmark, "alista", support_selection=False))
    assert plain.network.support_sizes == (0,) * 4
    wider = _set_objective(_solver(benchmark, "alista", support_percent=5.0,
                                   support_max_percent=8.0))
    assert wider.network.support_sizes == (2, 3, 3, 3)


@pytest.mark.parametrize("parameters, name", [
    (dict(support_selection="True"), "support_selection"),
    (dict(support_percent=-0.5), "support_percent"),
    (dict(support_max_percent=150), "support_max_percent"),
])
def test_alista_solver_rejects_bad_values_before_any_work(benchmark, parameters, name):
    solver = _solver(benchmark, "alista", **parameters)
    with pytest.raises(ValueError, match=name):
        solver.set_objective(X=None, D=None, lmbd=None, n_layers=None, z_star=None)


def test_slista_trains_on_the_unsupervised_loss_by_default(benchmark):
    solver = _set_objective(_solver(benchmark, "slista"))
    assert solver.loss == "unsupervised" and solver.trainer.loss == "unsupervised"
    supervised = _set_objective(_solver(benchmark, "slista", loss="supervised"))
    assert supervised.trainer.loss == "supervised"
    with pytest.raises(ValueError, match="loss"):
        _set_objective(_solver(benchmark, "slista", loss="lasso"))


@pytest.mark.parametrize("name", ["alista", "slista"])
def test_tuning_spaces_are_literal_and_have_four_combinations(benchmark, name):
    """Read as the tuner reads them, from the source without importing."""
    tree = ast.parse((SOLVERS / f"{name}.py").read_text())
    solver = next(node for node in tree.body if isinstance(node, ast.ClassDef))
    value = next(node.value for node in solver.body if isinstance(node, ast.Assign)
                 and any(target.id == "tuning_space" for target in node.targets))
    space = ast.literal_eval(value)
    assert len(list(itertools.product(*space.values()))) >= 4
    assert 1e-3 in space["lr"]
    solver_class = next(s for s in benchmark.get_solvers() if s.name == name)
    assert set(space) <= set(solver_class.parameters)
    for key, values in space.items():
        default = solver_class.parameters[key][0]
        assert default in values, (key, default)
