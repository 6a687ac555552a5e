"""Implicit (fixed-point) training of weight-tied unrolled networks."""
import pytest
import torch

from solvers_common.lasso import lmbd_max
from solvers_common.unrolled import FISTA, LISTA, LISTATied
from solvers_common.unrolled.implicit import (
    ImplicitTrainer,
    conjugate_gradient_backward,
    fixed_point_backward,
    implicit_fixed_point,
    layer_map,
    solve_fixed_point,
)


@pytest.fixture(scope="module")
def contractive_network():
    """A tied LISTA on n = 6, m = 10, 4 signals, float64, with perturbed
    weights and ``W_z`` scaled down so that its layer is a contraction."""
    generator = torch.Generator().manual_seed(0)
    D = torch.randn(6, 10, generator=generator, dtype=torch.float64)
    D /= torch.linalg.vector_norm(D, dim=0)
    X = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    lmbd = 0.1 * lmbd_max(X, D).item()
    network = LISTATied(D, lmbd, 3)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.mul_(1 + 0.05 * torch.randn(parameter.shape, generator=generator,
                                                   dtype=parameter.dtype))
        network.W_z.mul_(0.8)
    target = torch.randn(4, 10, generator=generator, dtype=torch.float64)
    return network, X, target


def _loss(network, X, target, stats=None):
    z = implicit_fixed_point(network, X, tol=1e-14, max_iter=10_000, stats=stats)
    return 0.5 * ((z - target) ** 2).sum()


def central_difference(loss, parameter, index, eps=1e-6):
    """(loss(p + eps) - loss(p - eps)) / (2 eps) in the entry ``index`` of
    ``parameter``, which is left as it was."""
    with torch.no_grad():
        value = parameter[index].item()
        parameter[index] = value + eps
        plus = loss()
        parameter[index] = value - eps
        minus = loss()
        parameter[index] = value
    return (plus - minus) / (2 * eps)


def test_implicit_gradient_matches_finite_differences(contractive_network):
    network, X, target = contractive_network
    # The fixed point is reached to 1e-12: z = f(z) up to rounding.
    f = layer_map(network, X)
    with torch.no_grad():
        z, _, change = solve_fixed_point(f, torch.zeros(4, 10, dtype=X.dtype), 1e-14, 10_000)
        residual = torch.linalg.vector_norm(f(z) - z) / torch.linalg.vector_norm(z)
    assert change <= 1e-14 and residual <= 1e-12
    network.zero_grad()
    stats = {}
    _loss(network, X, target, stats).backward()
    assert stats["backward_change"] <= 1e-14 and stats["backward_iterations"] > 10
    for name, parameter in network.named_parameters():
        for index in [(0,) * parameter.dim(), tuple(s - 1 for s in parameter.shape),
                      tuple(s // 2 for s in parameter.shape)]:
            finite_difference = central_difference(
                lambda: _loss(network, X, target).item(), parameter, index)
            assert parameter.grad[index].item() == pytest.approx(
                finite_difference, rel=1e-6, abs=1e-8), (name, index)


def test_implicit_gradient_differs_from_the_one_step_gradient(contractive_network):
    """The backward solve matters: the gradient through one application of
    the layer alone (Jacobian-free) is another vector."""
    network, X, target = contractive_network
    network.zero_grad()
    _loss(network, X, target).backward()
    implicit = network.W_z.grad.clone()
    network.zero_grad()
    with torch.no_grad():
        z, _, _ = solve_fixed_point(layer_map(network, X), torch.zeros(4, 10, dtype=X.dtype),
                                    1e-14, 10_000)
    (0.5 * ((layer_map(network, X)(z) - target) ** 2).sum()).backward()
    assert (network.W_z.grad - implicit).norm() > 0.1 * implicit.norm()




@pytest.mark.parametrize("autocast_dtype, backward", [
    (None, "fixed_point"), (torch.bfloat16, "fixed_point"), (None, "cg")])
def test_implicit_training_lowers_the_loss_at_the_fixed_point(tiny_problem, autocast_dtype,
                                                              backward):
    D, X, lmbd, z_star = (t.float() if torch.is_tensor(t) else t for t in tiny_problem)
    # From ISTA's weights the fixed point is already z* (nothing to learn, and
    # ISTA's slow convergence): small random weights, as for lista_tied.
    network = LISTATied(D, lmbd, 5, init="random", generator=torch.Generator().manual_seed(0))

    def loss_at_fixed_point():
        with torch.no_grad():
            z = implicit_fixed_point(network, X, tol=1e-5, max_iter=300)
        return 0.5 * ((z - z_star) ** 2).sum(-1).mean().item()

    before = loss_at_fixed_point()
    trainer = ImplicitTrainer(network, X, z_star, D, lmbd, tol=1e-5, max_iter=300, lr=1e-2,
                              batch_size=32, generator=torch.Generator().manual_seed(0),
                              autocast_dtype=autocast_dtype, backward=backward)
    for _ in range(3):
        trainer.train_epoch()
    assert set(trainer.stats) == {"forward_iterations", "forward_change",
                                  "backward_iterations", "backward_change"}
    assert loss_at_fixed_point() < 0.9 * before
    assert all(p.dtype == torch.float32 for p in network.parameters())


def test_implicit_training_rejects_what_has_no_fixed_point(tiny_problem):
    D, X, lmbd, z_star = tiny_problem
    for network in (LISTA(D, lmbd, 3), FISTA(D, lmbd, 3),
                    LISTATied(D, lmbd, 3, thresholds="per_layer")):
        with pytest.raises(ValueError, match="fixed_point_map"):
            ImplicitTrainer(network, X, z_star, D, lmbd)
    tied = LISTATied(D, lmbd, 3)
    with pytest.raises(ValueError, match="noise_level"):
        ImplicitTrainer(tied, X, z_star, D, lmbd, noise_level=0.1)
    with pytest.raises(ValueError, match="fixed_point_tol"):
        ImplicitTrainer(tied, X, z_star, D, lmbd, tol=0)
    with pytest.raises(ValueError, match="backward_max_iter"):
        ImplicitTrainer(tied, X, z_star, D, lmbd, backward_max_iter=0)


def _cg_loss(network, X, target, stats=None):
    z = implicit_fixed_point(network, X, tol=1e-14, max_iter=10_000, backward="cg",
                             backward_tol=1e-13, stats=stats)
    return 0.5 * ((z - target) ** 2).sum()


def test_cg_backward_matches_finite_differences_and_the_fixed_point_backward(
        contractive_network):
    network, X, target = contractive_network
    network.zero_grad()
    stats = {}
    _cg_loss(network, X, target, stats).backward()
    # CG on the normal equations converges in at most 40 (= 4 x 10 unknowns)
    # iterations in exact arithmetic; the fixed-point backward needs more.
    assert stats["backward_change"] <= 1e-13 and stats["backward_iterations"] <= 40
    cg = {name: p.grad.clone() for name, p in network.named_parameters()}
    network.zero_grad()
    _loss(network, X, target).backward()
    for name, parameter in network.named_parameters():
        torch.testing.assert_close(cg[name], parameter.grad, rtol=1e-9, atol=1e-12)
    for name, parameter in network.named_parameters():
        for index in [(0,) * parameter.dim(), tuple(s - 1 for s in parameter.shape)]:
            finite_difference = central_difference(
                lambda: _cg_loss(network, X, target).item(), parameter, index)
            assert cg[name][index].item() == pytest.approx(
                finite_difference, rel=1e-6, abs=1e-8), (name, index)


def test_cg_solves_a_system_that_the_fixed_point_iterations_do_not():
    """A = I - J^T with J of spectral radius 2: u <- g + J^T u diverges, CG on
    the normal equations still solves A u = g (against numpy's solve)."""
    generator = torch.Generator().manual_seed(0)
    J = torch.randn(8, 8, generator=generator, dtype=torch.float64)
    J *= 2 / torch.linalg.eigvals(J).abs().max()
    g = torch.randn(3, 8, generator=generator, dtype=torch.float64)

    def vjp(v):  # rows are signals: J^T v for each row v
        return v @ J

    def jvp(v):
        return v @ J.T

    u, n_iter, residual = conjugate_gradient_backward(vjp, jvp, g, 1e-12, 200)
    expected = torch.linalg.solve(torch.eye(8, dtype=torch.float64) - J.T, g.T).T
    torch.testing.assert_close(u, expected, rtol=1e-8, atol=1e-10)
    assert residual <= 1e-12 and n_iter <= 200
    diverged, _, _ = fixed_point_backward(vjp, g, 1e-12, 200)
    assert not torch.isfinite(diverged).all() or (diverged - expected).norm() > 1
    # g = 0: u = 0 at once.
    zero, _, residual = conjugate_gradient_backward(vjp, jvp, torch.zeros_like(g), 1e-12, 5)
    assert residual == 0 and (zero == 0).all()


def test_implicit_training_rejects_an_unknown_backward(tiny_problem):
    D, X, lmbd, z_star = tiny_problem
    tied = LISTATied(D, lmbd, 3)
    with pytest.raises(ValueError, match="backward="):
        ImplicitTrainer(tied, X, z_star, D, lmbd, backward="broyden")
    with pytest.raises(ValueError, match="backward="):
        implicit_fixed_point(tied, X, backward="broyden")
