"""Implicit training of unrolled networks whose layers are one map.

A network with ``fixed_point_map`` (ISTA, a weight-tied LISTA with one
threshold) iterates ``f_theta(z) = ST(W_z z + W_x x, theta)``; its limit is a
fixed point ``z = f_theta(z)``. Implicit training (a deep equilibrium model,
Bai, Kolter & Koltun 2019) computes that fixed point without autograd and
differentiates it through the implicit function theorem (their Theorem 1):
for a loss ``ell(z)``,

    d ell / d theta = u^T (d f / d theta)(z),   u = (I - J_f(z)^T)^{-1} d ell / d z,

with ``J_f`` the Jacobian of ``f`` in ``z``. ``u`` solves ``u = g + J_f^T u``,
by fixed-point iterations (``backward="fixed_point"``: vector-Jacobian
products, which converge when ``f`` is a contraction near ``z``, as the
forward iterations) or by conjugate gradients (``backward="cg"``): ``A = I -
J_f^T`` is not symmetric, so CG runs on the normal equations ``A^T A u = A^T
g`` (CGNR, Saad 2003, "Iterative Methods for Sparse Linear Systems",
Algorithm 8.4), one vector-Jacobian and one Jacobian-vector product per
iteration; it converges whenever ``A`` is invertible, in exact arithmetic in
at most as many iterations as ``A`` has distinct singular values.
Ramzi, Ablin, Peyré & Moreau (2023), "Test like you train in implicit deep
learning", compare such training with unrolled training at a fixed number of
iterations, at test time with more iterations than at training.
"""
import math

import torch

from ..prox import soft_threshold
from .training import UnrolledTrainer

BACKWARDS = ("fixed_point", "cg")


def _check_network(network):
    if not getattr(network, "fixed_point_map", False):
        raise ValueError(
            f"{type(network).__qualname__} is not one map iterated (its fixed_point_map is "
            "not True): implicit training needs a weight-tied network with one threshold, "
            "for example LISTATied(thresholds='shared').")


def _check_solver(tol, max_iter, name):
    if not tol > 0:
        raise ValueError(f"{name}_tol must be positive, got {tol}.")
    if int(max_iter) != max_iter or max_iter < 1:
        raise ValueError(f"{name}_max_iter must be an integer >= 1, got {max_iter}.")


def layer_map(network, x):
    """The map ``f(z)`` that every layer of ``network`` applies on the
    signals ``x`` (autograd follows the weights, as in any forward pass)."""
    _check_network(network)
    prepared = network.prepare(x)
    threshold = network.thresholds(prepared)[-1]

    def f(z):
        return soft_threshold(network.preactivation(-1, z, z, prepared), threshold)
    return f


def solve_fixed_point(f, z, tol=1e-5, max_iter=100):
    """Iterate ``z <- f(z)`` until ``||f(z) - z|| <= tol ||f(z)||`` (norms over
    the whole batch) or ``max_iter`` iterations. Returns ``(z, n_iter,
    relative_change)`` without autograd; stops early on a non-finite change
    (a diverging iteration)."""
    change = float("inf")
    with torch.no_grad():
        for n_iter in range(1, int(max_iter) + 1):
            z_next = f(z)
            change = float(torch.linalg.vector_norm(z_next - z)
                           / torch.linalg.vector_norm(z_next).clamp_min(1e-30))
            z = z_next
            if change <= tol or not math.isfinite(change):  # converged, or diverged
                break
    return z, n_iter, change


def _check_backward(backward):
    if backward not in BACKWARDS:
        raise ValueError(f"backward={backward!r} is unknown; accepted: {list(BACKWARDS)}.")


def fixed_point_backward(vjp, g, tol, max_iter):
    """Solve ``u = g + J^T u`` by the iterations ``u <- g + J^T u``
    (``vjp(u) = J^T u``) until the relative change is at most ``tol`` or
    ``max_iter`` iterations. Returns ``(u, n_iter, relative_change)``."""
    u, change = g, float("inf")
    for n_iter in range(1, int(max_iter) + 1):
        u_next = g + vjp(u)
        change = float(torch.linalg.vector_norm(u_next - u)
                       / torch.linalg.vector_norm(u_next).clamp_min(1e-30))
        u = u_next
        if change <= tol:
            break
    return u, n_iter, change


def conjugate_gradient_backward(vjp, jvp, g, tol, max_iter):
    """Solve ``A u = g``, ``A = I - J^T`` (``vjp(v) = J^T v``, ``jvp(v) = J
    v``), by CG on the normal equations ``A^T A u = A^T g`` (CGNR, Saad 2003,
    Algorithm 8.4) from ``u = 0``, until ``||g - A u|| <= tol ||g||`` or
    ``max_iter`` iterations. Returns ``(u, n_iter, relative_residual)``
    (norms over the whole batch: its systems are solved as one)."""
    def A(v):
        return v - vjp(v)

    def A_transpose(v):
        return v - jvp(v)

    g_norm = float(torch.linalg.vector_norm(g))
    u, r = torch.zeros_like(g), g.clone()
    s = A_transpose(r)
    p, s_norm2 = s, float((s * s).sum())
    residual = 0.0 if g_norm == 0 else 1.0
    for n_iter in range(1, int(max_iter) + 1):
        if residual <= tol:  # (g = 0: u = 0)
            break
        w = A(p)
        w_norm2 = float((w * w).sum())
        if w_norm2 == 0:  # A^T r = 0 with r != 0: A is singular
            break
        alpha = s_norm2 / w_norm2
        u, r = u + alpha * p, r - alpha * w
        residual = float(torch.linalg.vector_norm(r)) / g_norm
        if residual <= tol or not math.isfinite(residual):
            break
        s = A_transpose(r)
        s_norm2, previous = float((s * s).sum()), s_norm2
        p = s + (s_norm2 / previous) * p
    return u, n_iter, residual


def implicit_fixed_point(network, x, tol=1e-5, max_iter=100, backward_tol=None,
                         backward_max_iter=None, stats=None, backward="fixed_point"):
    """The fixed point ``z(x)`` of ``network``'s layer, differentiable in the
    weights by the implicit function theorem (Bai et al. 2019, Theorem 1).

    Forward: :func:`solve_fixed_point` from ``z_0 = 0``, then one application
    of ``f`` that autograd records (under the caller's autocast, if any).
    Backward: a hook on its output replaces the incoming gradient ``g`` by the
    solution of ``u = g + J_f^T u``, by fixed-point iterations
    (``backward="fixed_point"``, :func:`fixed_point_backward`) to
    ``backward_tol`` (default ``tol``) relative change, or by conjugate
    gradients (``"cg"``, :func:`conjugate_gradient_backward`) to
    ``backward_tol`` relative residual, in at most ``backward_max_iter``
    (default ``max_iter``) iterations. The solves run without autocast, in the
    network's dtype. ``stats``, a dict when given, receives the iteration
    counts and the final relative change (forward; fixed-point backward) or
    residual (CG backward).
    """
    _check_solver(tol, max_iter, "fixed_point")
    backward_tol = tol if backward_tol is None else backward_tol
    backward_max_iter = max_iter if backward_max_iter is None else backward_max_iter
    _check_solver(backward_tol, backward_max_iter, "backward")
    _check_backward(backward)
    stats = {} if stats is None else stats
    no_autocast = torch.autocast(x.device.type, enabled=False)
    with no_autocast:
        with torch.no_grad():
            f_plain = layer_map(network, x)  # its products with x carry no graph
        z0 = x.new_zeros(x.shape[0], network.n_atoms)
        z_star, stats["forward_iterations"], stats["forward_change"] = solve_fixed_point(
            f_plain, z0, tol, max_iter)
    z = layer_map(network, x)(z_star)
    if not z.requires_grad:
        return z
    with no_autocast:
        z_in = z_star.clone().requires_grad_()
        f_in = f_plain(z_in)

    def vjp(v):  # J^T v
        return torch.autograd.grad(f_in, z_in, v, retain_graph=True)[0]

    def implicit_backward(g):
        g_full = g.to(z_in.dtype)
        if backward == "fixed_point":
            u, n_iter, change = fixed_point_backward(vjp, g_full, backward_tol,
                                                     backward_max_iter)
        else:
            # J v by double backward: J^T w is linear in w, so the gradient
            # of <J^T w, v> in w is J v, whatever w (zero here).
            w = torch.zeros_like(g_full, requires_grad=True)
            with torch.enable_grad():
                vjp_w = torch.autograd.grad(f_in, z_in, w, retain_graph=True,
                                            create_graph=True)[0]

            def jvp(v):
                return torch.autograd.grad(vjp_w, w, v, retain_graph=True)[0]
            u, n_iter, change = conjugate_gradient_backward(vjp, jvp, g_full, backward_tol,
                                                            backward_max_iter)
        stats.update(backward_iterations=n_iter, backward_change=change)
        return u.to(g.dtype)

    z.register_hook(implicit_backward)
    return z


class ImplicitTrainer(UnrolledTrainer):
    """Adam on the loss at the fixed point of a network's layer, with the
    implicit gradient of :func:`implicit_fixed_point` (a deep equilibrium
    model, Bai et al. 2019): the network is trained for its limit, not for
    its ``n_layers`` layers. Arguments as :class:`UnrolledTrainer` (without
    training noise), plus the tolerances and iteration budgets of the forward
    and backward solves and the ``backward`` solver (``"fixed_point"`` or
    ``"cg"``). With ``autocast_dtype``, only the
    differentiated application of the layer runs in bfloat16: the solves stay
    in the network's dtype (a bfloat16 iteration stalls at its rounding,
    about 1e-2 relative, far above ``tol``). ``stats`` holds the iteration
    counts of the last step."""

    def __init__(self, network, X, z_star, D, lmbd, tol=1e-5, max_iter=100,
                 backward_tol=None, backward_max_iter=None, backward="fixed_point", **kwargs):
        _check_network(network)
        _check_backward(backward)
        if kwargs.get("noise_level", 0) != 0:
            raise ValueError("noise_level must be 0 with implicit training: the noise is "
                             "injected between layers, which a fixed point does not have.")
        _check_solver(tol, max_iter, "fixed_point")
        _check_solver(tol if backward_tol is None else backward_tol,
                      max_iter if backward_max_iter is None else backward_max_iter,
                      "backward")
        super().__init__(network, X, z_star, D, lmbd, **kwargs)
        self.tol, self.max_iter = tol, max_iter
        self.backward_tol, self.backward_max_iter = backward_tol, backward_max_iter
        self.backward = backward
        self.stats = {}

    def forward(self, x):
        z = implicit_fixed_point(self.network, x, self.tol, self.max_iter, self.backward_tol,
                                 self.backward_max_iter, self.stats, self.backward)
        return z[None]
