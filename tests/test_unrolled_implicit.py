"""Implicit (fixed-point) training of weight-tied unrolled networks."""
import pytest
import torch

from solvers_common.lasso import lmbd_max
from solvers_common.unrolled import FISTA, LISTA, LISTATied
from solvers_common.unrolled.implicit import (
    ImplicitTrainer,
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
    eps = 1e-6
    for name, parameter in network.named_parameters():
        for index in [(0,) * parameter.dim(), tuple(s - 1 for s in parameter.shape),
                      tuple(s // 2 for s in parameter.shape)]:
            with torch.no_grad():
                value = parameter[index].item()
                parameter[index] = value + eps
                plus = _loss(network, X, target).item()
                parameter[index] = value - eps
                minus = _loss(network, X, target).item()
                parameter[index] = value
            finite_difference = (plus - minus) / (2 * eps)
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




@pytest.mark.parametrize("autocast_dtype", [None, torch.bfloat16])
def test_implicit_training_lowers_the_loss_at_the_fixed_point(tiny_problem, autocast_dtype):
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
                              autocast_dtype=autocast_dtype)
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
