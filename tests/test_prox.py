"""Proximal operators against closed forms and the prox optimality property."""
import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from solvers_common.prox import (
    group_soft_threshold,
    nonnegative_soft_threshold,
    soft_threshold,
)


def _scalar_soft_threshold(z, t):
    if z > t:
        return z - t
    if z < -t:
        return z + t
    return 0.0


def _random(shape, seed):
    generator = np.random.default_rng(seed)
    return generator.standard_normal(shape)


# ---------------------------------------------------------------------------
# Closed forms, computed elementwise by hand
# ---------------------------------------------------------------------------


def test_soft_threshold_hand_values():
    z = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.5], dtype=torch.float64)
    expected = torch.tensor([-2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5], dtype=torch.float64)
    torch.testing.assert_close(soft_threshold(z, 1.0), expected, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_soft_threshold_elementwise_closed_form(dtype):
    z = _random((7, 5), 0) * 2
    t = 0.7
    expected = np.vectorize(_scalar_soft_threshold)(z, t)
    out = soft_threshold(torch.tensor(z, dtype=dtype), t)
    assert out.dtype == dtype and out.shape == (7, 5)
    np.testing.assert_allclose(out.numpy(), expected, rtol=0,
                               atol=1e-6 if dtype == torch.float32 else 1e-15)


def test_soft_threshold_per_coordinate_threshold_broadcast():
    z = _random((6, 4), 1) * 2
    thresholds = np.array([0.0, 0.3, 1.0, 5.0])
    expected = np.array([[_scalar_soft_threshold(z[i, j], thresholds[j])
                          for j in range(4)] for i in range(6)])
    out = soft_threshold(torch.tensor(z), torch.tensor(thresholds))
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-15)
    # threshold 0 is the identity, a huge threshold zeroes the coordinate
    np.testing.assert_array_equal(out[:, 0].numpy(), z[:, 0])
    assert np.all(out[:, 3].numpy() == 0)
    # a per-row threshold of shape (N, 1)
    row_thresholds = np.linspace(0.1, 2.0, 6)[:, None]
    expected = np.vectorize(_scalar_soft_threshold)(z, row_thresholds)
    out = soft_threshold(torch.tensor(z), torch.tensor(row_thresholds))
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-15)


def test_nonnegative_soft_threshold_hand_values():
    z = torch.tensor([-3.0, -0.5, 0.0, 0.5, 1.0, 2.5], dtype=torch.float64)
    expected = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 1.5], dtype=torch.float64)
    torch.testing.assert_close(nonnegative_soft_threshold(z, 1.0), expected,
                               rtol=0, atol=0)


def test_nonnegative_soft_threshold_closed_form_broadcast():
    z = _random((5, 4), 2) * 2
    thresholds = np.array([0.0, 0.2, 0.8, 3.0])
    expected = np.array([[max(z[i, j] - thresholds[j], 0.0) for j in range(4)]
                         for i in range(5)])
    out = nonnegative_soft_threshold(torch.tensor(z), torch.tensor(thresholds))
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-15)
    assert np.all(out.numpy() >= 0)


def _group_closed_form(z, t):
    """Block soft-thresholding of a 1-d group, by hand."""
    norm = np.sqrt(np.sum(z**2))
    if norm <= t:
        return np.zeros_like(z)
    return (1 - t / norm) * z


def test_group_soft_threshold_hand_values():
    # group norms: 5 (kept, scaled by 1 - 1/5) and 0.5 (zeroed)
    z = torch.tensor([[3.0, 4.0], [0.3, 0.4]], dtype=torch.float64)
    expected = torch.tensor([[2.4, 3.2], [0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(group_soft_threshold(z, 1.0), expected,
                               rtol=0, atol=1e-15)


@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_group_soft_threshold_closed_form_along_dim(dim):
    z = _random((6, 4), 3)
    t = 1.2
    if dim == 0:
        expected = np.stack([_group_closed_form(z[:, j], t) for j in range(4)], 1)
    else:
        expected = np.stack([_group_closed_form(z[i], t) for i in range(6)], 0)
    out = group_soft_threshold(torch.tensor(z), t, dim=dim)
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-14)
    # at least one group kept and one zeroed, so both branches are exercised
    norms = np.linalg.norm(z, axis=0 if dim == 0 else 1)
    assert (norms > t).any() and (norms < t).any()


def test_group_soft_threshold_per_group_threshold_broadcast():
    z = _random((5, 3), 4)
    thresholds = np.array([0.0, 0.5, 1.0, 2.0, 10.0])[:, None]
    expected = np.stack([_group_closed_form(z[i], thresholds[i, 0])
                         for i in range(5)])
    out = group_soft_threshold(torch.tensor(z), torch.tensor(thresholds), dim=-1)
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-14)
    np.testing.assert_allclose(out[0].numpy(), z[0], rtol=0, atol=1e-15)
    assert np.all(out[4].numpy() == 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("threshold", [0.0, 0.5, 1e6])
def test_group_soft_threshold_zero_norm_group(dtype, threshold):
    z = torch.tensor([[0.0, 0.0, 0.0], [1.0, -2.0, 2.0]], dtype=dtype)
    out = group_soft_threshold(z, threshold)
    assert torch.isfinite(out).all()
    assert torch.all(out[0] == 0)
    expected = _group_closed_form(np.array([1.0, -2.0, 2.0]), threshold)
    np.testing.assert_allclose(out[1].double().numpy(), expected, rtol=1e-6,
                               atol=1e-6)


def test_operators_accept_batched_tensors_of_any_shape():
    z = torch.tensor(_random((2, 3, 4), 5))
    out = soft_threshold(z, 0.3)
    expected = np.vectorize(_scalar_soft_threshold)(z.numpy(), 0.3)
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-15)
    out = group_soft_threshold(z, 0.8, dim=1)
    expected = np.empty((2, 3, 4))
    for a in range(2):
        for c in range(4):
            expected[a, :, c] = _group_closed_form(z[a, :, c].numpy(), 0.8)
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-14)


# ---------------------------------------------------------------------------
# Prox optimality: the output minimizes 1/2 ||u - z||^2 + t h(u)
# ---------------------------------------------------------------------------

def _l1(u):
    return np.abs(u).sum()


def _group_l2(u):
    return np.linalg.norm(u.reshape(-1, 2), axis=1).sum()


def _nonnegative_l1(u):
    return u.sum() if np.all(u >= 0) else np.inf


CASES = {
    "soft_threshold": (lambda z, t: soft_threshold(z, t), _l1),
    "group_soft_threshold": (
        lambda z, t: group_soft_threshold(z.reshape(-1, 2), t).reshape(-1), _group_l2),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("seed", range(4))
def test_prox_minimizes_prox_objective_vs_scipy(name, seed):
    operator, h = CASES[name]
    z = _random(6, seed) * 1.5
    t = 0.8

    def objective(u):
        return 0.5 * np.sum((u - z) ** 2) + t * h(u)

    u = operator(torch.tensor(z), t).numpy()
    best = None
    for start in (z, np.zeros_like(z)):
        result = minimize(objective, start, method="Powell",
                          options={"xtol": 1e-12, "ftol": 1e-15, "maxiter": 100000})
        if best is None or result.fun < best.fun:
            best = result
    # the prox is at least as good as scipy's minimizer, and (the objective is
    # 1-strongly convex) close to it
    assert objective(u) <= best.fun + 1e-12
    assert np.linalg.norm(u - best.x) <= 1e-5
    # random perturbations never improve
    generator = np.random.default_rng(seed)
    for scale in (1e-1, 1e-3, 1e-6):
        for _ in range(50):
            v = u + scale * generator.standard_normal(u.shape)
            assert objective(v) >= objective(u) - 1e-14


@pytest.mark.parametrize("seed", range(4))
def test_nonnegative_prox_minimizes_vs_scipy(seed):
    z = _random(6, seed) * 1.5
    t = 0.4

    def smooth(u):  # on u >= 0, h(u) = sum(u) is smooth
        return 0.5 * np.sum((u - z) ** 2) + t * u.sum()

    u = nonnegative_soft_threshold(torch.tensor(z), t).numpy()
    result = minimize(smooth, np.ones_like(z), jac=lambda u: u - z + t,
                      method="L-BFGS-B", bounds=[(0, None)] * z.size,
                      options={"ftol": 1e-15, "gtol": 1e-12})
    np.testing.assert_allclose(u, result.x, rtol=0, atol=1e-7)
    assert smooth(u) <= result.fun + 1e-12
    generator = np.random.default_rng(seed)
    for _ in range(100):
        v = u + 1e-2 * generator.standard_normal(u.shape)
        objective_v = 0.5 * np.sum((v - z) ** 2) + t * _nonnegative_l1(v)
        assert objective_v >= smooth(u) - 1e-14


def test_soft_threshold_subgradient_condition():
    z = torch.tensor(_random((20, 7), 6) * 2)
    thresholds = torch.linspace(0.1, 1.5, 7, dtype=torch.float64)
    u = soft_threshold(z, thresholds)
    t = thresholds.expand_as(z)
    # z - u in t * d|u|: = t sign(u) where u != 0, |z - u| <= t where u == 0
    nonzero = u != 0
    torch.testing.assert_close((z - u)[nonzero], (t * torch.sign(u))[nonzero],
                               rtol=0, atol=1e-14)
    assert torch.all((z - u)[~nonzero].abs() <= t[~nonzero])
    assert nonzero.any() and (~nonzero).any()


def test_nonnegative_soft_threshold_subgradient_condition():
    z = torch.tensor(_random((20, 5), 7) * 2)
    t = 0.6
    u = nonnegative_soft_threshold(z, t)
    positive = u > 0
    # z - u - t is 0 where u > 0 and in the normal cone (<= 0) where u == 0
    torch.testing.assert_close((z - u - t)[positive],
                               torch.zeros_like(z)[positive], rtol=0, atol=1e-14)
    assert torch.all((z - u - t)[~positive] <= 0)
    assert positive.any() and (~positive).any()


def test_group_soft_threshold_subgradient_condition():
    z = torch.tensor(_random((30, 3), 8))
    t = 1.5
    u = group_soft_threshold(z, t)
    u_norms = torch.linalg.vector_norm(u, dim=-1)
    kept = u_norms > 0
    # z_g - u_g = t u_g / ||u_g|| where u_g != 0, ||z_g|| <= t where u_g == 0
    torch.testing.assert_close((z - u)[kept], t * u[kept] / u_norms[kept, None],
                               rtol=0, atol=1e-14)
    assert torch.all(torch.linalg.vector_norm(z[~kept], dim=-1) <= t)
    assert kept.any() and (~kept).any()
