"""The sparse-training optimizers and regularizers of solvers_common.optim:
proximal operators against closed forms, LinBreg / AdaBreg / ProxSGD against
the torch optimizers they reduce to, and the inverse-scale-space behaviour of
LinBreg from a sparse initialization."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from solvers_common.metrics import density
from solvers_common.models import build_model, sparse_initialization_
from solvers_common.optim import (
    L1,
    AdaBreg,
    L1Kernels,
    L1Rows,
    LinBreg,
    ProxSGD,
    make_regularizer,
    regularized_parameter_groups,
)


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


def _random(shape, seed=0, dtype=torch.float64):
    return torch.randn(shape, generator=_generator(seed), dtype=dtype)


# ---------------------------------------------------------------------------
# Proximal operators against closed forms
# ---------------------------------------------------------------------------


def test_l1_prox_hand_values():
    z = torch.tensor([-3.0, -1.0, -0.25, 0.0, 0.5, 2.0], dtype=torch.float64)
    # step * lmbd = 2 * 0.5 = 1.
    expected = torch.tensor([-2.0, 0.0, 0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(L1(0.5).prox(z, 2.0), expected, rtol=0, atol=0)


def test_l1_foreach_prox_matches_single_tensor_prox_exactly():
    regularizer = L1(0.3)
    tensors = [_random((5, 4), 1), _random((7,), 2), _random((2, 3, 3, 3), 3)]
    expected = [regularizer.prox(t, 1.5) for t in tensors]
    regularizer.prox_(tensors, 1.5)
    for got, want in zip(tensors, expected):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        # Thresholded entries are exact zeros, not rounding residues.
        assert torch.equal(got == 0, want == 0)


def _group_prox_by_hand(groups, threshold):
    """Block soft-thresholding of each row of a numpy array, one row at a
    time: x_g max(0, 1 - threshold / ||x_g||)."""
    out = np.zeros_like(groups)
    for index, row in enumerate(groups):
        norm = np.linalg.norm(row)
        if norm > threshold:
            out[index] = row * (1 - threshold / norm)
    return out


@pytest.mark.parametrize("shape", [(6, 5), (4, 3, 2)])
def test_l1_rows_prox_closed_form(shape):
    z = _random(shape, 4)
    z[1] *= 0.05  # a row well below the threshold
    lmbd, step = 0.2, 1.5
    row_length = math.prod(shape[1:])
    expected = _group_prox_by_hand(z.reshape(shape[0], -1).numpy(),
                                   step * lmbd * math.sqrt(row_length))
    got = L1Rows(lmbd).prox(z, step)
    assert got.shape == z.shape
    np.testing.assert_allclose(got.reshape(shape[0], -1).numpy(), expected, rtol=1e-12,
                               atol=1e-15)
    assert torch.all(got[1] == 0)
    np.testing.assert_allclose(float(L1Rows(lmbd).value(z)), lmbd * math.sqrt(row_length)
                               * np.linalg.norm(z.reshape(shape[0], -1), axis=1).sum())


def test_l1_kernels_prox_closed_form():
    z = _random((3, 2, 3, 3), 5)
    z[0, 1] *= 0.01
    lmbd, step = 0.1, 2.0
    # Groups of 9 entries: threshold step * lmbd * 3.
    expected = _group_prox_by_hand(z.reshape(6, 9).numpy(), step * lmbd * 3)
    got = L1Kernels(lmbd).prox(z, step)
    np.testing.assert_allclose(got.reshape(6, 9).numpy(), expected, rtol=1e-12, atol=1e-15)
    assert torch.all(got[0, 1] == 0) and torch.all(got[0, 0] != 0)
    tensors = [z.clone()]
    L1Kernels(lmbd).prox_(tensors, step)
    torch.testing.assert_close(tensors[0], got, rtol=0, atol=0)


@pytest.mark.parametrize("regularizer", [L1(0.3), L1Rows(0.3), L1Kernels(0.3)])
def test_prox_optimality_and_subgradient_inequality(regularizer):
    # x = prox_{step J}(z) iff (z - x) / step is a subgradient of J at x, that
    # is J(y) >= J(x) + <(z - x) / step, y - x> for every y.
    z, step = _random((4, 3, 2, 2), 6), 0.7
    x = regularizer.prox(z, step)
    p = (z - x) / step
    for seed in range(20):
        y = _random(z.shape, 100 + seed)
        assert regularizer.value(y) >= regularizer.value(x) + (p * (y - x)).sum() - 1e-10
    # The subgradient method returns a subgradient too (at x, zeros included).
    q = regularizer.subgradient(x)
    for seed in range(20):
        y = _random(z.shape, 200 + seed)
        assert regularizer.value(y) >= regularizer.value(x) + (q * (y - x)).sum() - 1e-10


def test_prox_of_delta_v0_gives_back_theta0():
    # LinBreg's v_0 = theta_0 / delta + p_0 makes prox_{delta J}(delta v_0) = theta_0.
    theta = _random((5, 2, 3, 3), 7)
    theta[0] = 0
    theta[1, 1] = 0
    for regularizer in (L1(0.4), L1Rows(0.4), L1Kernels(0.4)):
        delta = 2.5
        v0 = theta / delta + regularizer.subgradient(theta)
        torch.testing.assert_close(regularizer.prox(delta * v0, delta), theta,
                                   rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# The optimizers against the torch optimizers they reduce to
# ---------------------------------------------------------------------------


def _tiny_problem(seed=0):
    generator = _generator(seed)
    X = torch.randn(40, 1, 3, 3, generator=generator)
    y = torch.randint(3, (40,), generator=generator)
    return X, y


def _tiny_model(seed=0, density_=1.0, model="mlp", input_shape=(1, 3, 3)):
    model = build_model(model, input_shape, 3)
    return sparse_initialization_(model, density_, _generator(seed))


def _train_together(optimizers_and_models, X, y, n_steps=8, batch_size=10):
    """Same batches for every (optimizer, model) pair; parameters after each
    step."""
    history = [[] for _ in optimizers_and_models]
    for step in range(n_steps):
        start = (step * batch_size) % X.shape[0]
        inputs, labels = X[start:start + batch_size], y[start:start + batch_size]
        for index, (optimizer, model) in enumerate(optimizers_and_models):
            optimizer.zero_grad()
            F.cross_entropy(model(inputs), labels).backward()
            optimizer.step()
            history[index].append([p.detach().clone() for p in model.parameters()])
    return history


def test_linbreg_without_regularizer_is_sgd_step_by_step():
    X, y = _tiny_problem()
    sgd_model, breg_model, l1_model = _tiny_model(), _tiny_model(), _tiny_model()
    sgd = torch.optim.SGD(sgd_model.parameters(), lr=0.1)
    linbreg = LinBreg(breg_model.parameters(), lr=0.1, regularizer=None, delta=1.0)
    # lmbd = 0 through the regularizer path and the parameter groups.
    linbreg_l1 = LinBreg(regularized_parameter_groups(l1_model, "l1", 0.0, delta=1.0),
                         lr=0.1)
    history = _train_together([(sgd, sgd_model), (linbreg, breg_model),
                               (linbreg_l1, l1_model)], X, y)
    for sgd_step, breg_step, l1_step in zip(*history):
        for a, b, c in zip(sgd_step, breg_step, l1_step):
            torch.testing.assert_close(b, a, rtol=0, atol=0)
            torch.testing.assert_close(c, a, rtol=0, atol=0)


def test_linbreg_momentum_is_sgd_momentum_with_scaled_step():
    # m = beta m + (1 - beta) lr g, v -= m  is  SGD with momentum beta and
    # step (1 - beta) lr.
    X, y = _tiny_problem(1)
    sgd_model, breg_model = _tiny_model(1), _tiny_model(1)
    sgd = torch.optim.SGD(sgd_model.parameters(), lr=0.1 * (1 - 0.9), momentum=0.9)
    linbreg = LinBreg(breg_model.parameters(), lr=0.1, delta=1.0, momentum=0.9)
    history = _train_together([(sgd, sgd_model), (linbreg, breg_model)], X, y)
    for sgd_step, breg_step in zip(*history):
        for a, b in zip(sgd_step, breg_step):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)


def test_adabreg_without_regularizer_is_adam_step_by_step():
    X, y = _tiny_problem(2)
    adam_model, breg_model = _tiny_model(2), _tiny_model(2)
    adam = torch.optim.Adam(adam_model.parameters(), lr=1e-2)
    adabreg = AdaBreg(regularized_parameter_groups(breg_model, "l1", 0.0, delta=1.0), lr=1e-2)
    history = _train_together([(adam, adam_model), (adabreg, breg_model)], X, y)
    for adam_step, breg_step in zip(*history):
        for a, b in zip(adam_step, breg_step):
            torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_prox_sgd_without_regularizer_is_sgd(momentum):
    X, y = _tiny_problem(3)
    sgd_model, prox_model = _tiny_model(3), _tiny_model(3)
    sgd = torch.optim.SGD(sgd_model.parameters(), lr=0.05, momentum=momentum)
    prox = ProxSGD(regularized_parameter_groups(prox_model, "l1", 0.0), lr=0.05,
                   momentum=momentum)
    history = _train_together([(sgd, sgd_model), (prox, prox_model)], X, y)
    for sgd_step, prox_step in zip(*history):
        for a, b in zip(sgd_step, prox_step):
            torch.testing.assert_close(b, a, rtol=0, atol=0)


def test_prox_sgd_step_is_gradient_then_prox():
    weight = nn.Parameter(torch.tensor([[1.0, -0.2, 0.05]], dtype=torch.float64))
    weight.grad = torch.tensor([[0.5, 1.0, -1.0]], dtype=torch.float64)
    ProxSGD([weight], lr=0.1, regularizer=L1(1.0)).step()
    # theta - lr g = (0.95, -0.3, 0.15), soft-thresholded at 0.1.
    torch.testing.assert_close(weight.detach(), torch.tensor([[0.85, -0.2, 0.05]],
                                                             dtype=torch.float64))


def test_linbreg_step_by_hand():
    # theta_0 = (1, 0, -0.5), delta = 2, lmbd = 0.5:
    # v_0 = theta_0 / 2 + 0.5 sign(theta_0) = (1, 0, -0.75).
    # g = (1, -3, 0), lr = 0.2: v_1 = (0.8, 0.6, -0.75);
    # theta_1 = ST(2 v_1, 2 * 0.5) = ST((1.6, 1.2, -1.5), 1) = (0.6, 0.2, -0.5):
    # the zero weight joins, the untouched one keeps its value.
    weight = nn.Parameter(torch.tensor([1.0, 0.0, -0.5], dtype=torch.float64))
    weight.grad = torch.tensor([1.0, -3.0, 0.0], dtype=torch.float64)
    optimizer = LinBreg([weight], lr=0.2, regularizer=L1(0.5), delta=2.0)
    optimizer.step()
    torch.testing.assert_close(weight.detach(), torch.tensor([0.6, 0.2, -0.5],
                                                             dtype=torch.float64))
    torch.testing.assert_close(optimizer.state[weight]["dual"],
                               torch.tensor([0.8, 0.6, -0.75], dtype=torch.float64))


def test_zero_gradient_steps_keep_the_initialization():
    model = _tiny_model(4, density_=0.3, model="convnet", input_shape=(1, 16, 16))
    before = [p.detach().clone() for p in model.parameters()]
    for name in ("l1", "l1_rows", "l1_kernels"):
        optimizer = LinBreg(regularized_parameter_groups(model, name, 0.2, delta=3.0), lr=0.1)
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        optimizer.step()
        for a, b in zip(before, model.parameters()):
            torch.testing.assert_close(b.detach(), a, rtol=1e-6, atol=1e-6)
            assert torch.equal(b == 0, a == 0)


def test_one_linbreg_step_from_one_percent_keeps_the_density():
    # The paper's MNIST setting (lr 0.1, lmbd 0.1, delta 1, 1% initialization)
    # on 28 x 28 inputs: a zero weight joins only when lr |g| exceeds lmbd.
    generator = _generator(5)
    X = torch.randn(128, 1, 28, 28, generator=generator)
    y = torch.randint(10, (128,), generator=generator)
    results = {}
    for name in ("linbreg", "sgd"):
        model = sparse_initialization_(build_model("mlp", (1, 28, 28), 10), 0.01,
                                       _generator(6))
        initial = density(model)
        if name == "linbreg":
            optimizer = LinBreg(regularized_parameter_groups(model, "l1", 0.1, delta=1.0),
                                lr=0.1)
        else:
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        F.cross_entropy(model(X), y).backward()
        optimizer.step()
        results[name] = (initial, density(model))
    initial, after = results["linbreg"]
    assert 0.009 < initial < 0.011
    assert abs(after - initial) < 0.001, results
    # SGD from the same start switches on every weight with a non-zero
    # gradient (8.5% of them here: backpropagation through a 1% network
    # reaches few weights); LinBreg only those whose step exceeds lmbd.
    assert results["sgd"][1] > 4 * initial, results


# ---------------------------------------------------------------------------
# Parameter groups and bad input
# ---------------------------------------------------------------------------


def test_regularized_parameter_groups_split():
    model = build_model("convnet", (1, 16, 16), 3)
    groups = regularized_parameter_groups(model, "l1_kernels", 0.1, delta=2.0)
    linear, convolution, others = groups
    assert [tuple(p.shape) for p in linear["params"]] == [(128, 64), (3, 128)]
    assert type(linear["regularizer"]) is L1 and linear["delta"] == 2.0
    assert [p.dim() for p in convolution["params"]] == [4, 4]
    assert type(convolution["regularizer"]) is L1Kernels
    assert others["regularizer"] is None and others["delta"] == 1.0
    assert all(p.dim() == 1 for p in others["params"])  # the biases
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    rows = regularized_parameter_groups(model, "l1_rows", 0.1)
    assert type(rows[0]["regularizer"]) is L1Rows and type(rows[1]["regularizer"]) is L1Rows


@pytest.mark.parametrize("build, parameter", [
    (lambda p: LinBreg(p, lr=-0.1), "lr"),
    (lambda p: LinBreg(p, delta=0.0), "delta"),
    (lambda p: LinBreg(p, delta=-1.0), "delta"),
    (lambda p: LinBreg(p, momentum=1.0), "momentum"),
    (lambda p: AdaBreg(p, lr=-1e-3), "lr"),
    (lambda p: AdaBreg(p, delta=-2.0), "delta"),
    (lambda p: AdaBreg(p, betas=(0.9, 1.5)), "betas"),
    (lambda p: ProxSGD(p, lr=-0.1), "lr"),
    (lambda p: LinBreg(p, regularizer="l1"), "regularizer"),
    (lambda p: LinBreg(p, regularizer=L1Kernels(0.1)), "l1_kernels"),
])
def test_optimizers_reject_bad_settings(build, parameter):
    params = [nn.Parameter(torch.zeros(3, 2))]
    with pytest.raises(ValueError, match=parameter):
        build(params)


def test_regularizers_reject_bad_input():
    with pytest.raises(ValueError, match="lmbd=-0.1"):
        L1(-0.1)
    with pytest.raises(ValueError, match="lmbd"):
        make_regularizer("l1_rows", float("nan"))
    with pytest.raises(ValueError, match="regularizer='l2'.*'l1_kernels'"):
        make_regularizer("l2", 0.1)
    with pytest.raises(ValueError, match="regularizer='group'"):
        regularized_parameter_groups(nn.Linear(2, 2), "group", 0.1)
    with pytest.raises(ValueError, match="l1_rows"):
        L1Rows(0.1).prox(torch.zeros(4), 1.0)
