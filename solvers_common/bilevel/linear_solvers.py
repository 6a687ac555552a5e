"""Solvers for the linear system d2_theta G v = b and for theta*(lmbd).

``conjugate_gradient`` (Hestenes and Stiefel 1952) and the truncated Neumann
series used by stochastic bilevel methods (Ghadimi and Wang 2018; Ji et al.
2021) take the Hessian only through a Hessian-vector product function, which
may draw a fresh mini-batch at every call. ``newton_cg`` is the accurate
full-data inner solver of the objective and of full-batch baselines.
"""
import torch


def _dot(x, y):
    return (x * y).sum()


def conjugate_gradient(hessian_vector, b, x0=None, tol=1e-10, max_iter=None):
    """Solve H x = b for a symmetric positive definite H.

    Stops when ||H x - b|| <= tol ||b|| or after ``max_iter`` iterations
    (default: 10 times the dimension, enough in exact arithmetic for any
    H). Returns x, with the shape of b.
    """
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    max_iter = 10 * b.numel() if max_iter is None else max_iter
    residual = b - hessian_vector(x) if x0 is not None else b.clone()
    direction = residual.clone()
    residual_norm2 = _dot(residual, residual)
    threshold2 = (tol ** 2) * _dot(b, b)
    for _ in range(max_iter):
        if not residual_norm2 > threshold2:  # also stops on NaN
            break
        hessian_direction = hessian_vector(direction)
        step = residual_norm2 / _dot(direction, hessian_direction)
        x += step * direction
        residual -= step * hessian_direction
        new_residual_norm2 = _dot(residual, residual)
        direction = residual + (new_residual_norm2 / residual_norm2) * direction
        residual_norm2 = new_residual_norm2
    return x


def neumann_series(hessian_vector, b, step_size, n_steps):
    """step_size * sum_{k=0}^{n_steps} (I - step_size H)^k b, the truncated
    Neumann series of H^{-1} b (exact as n_steps grows when
    step_size < 2 / L). With a ``hessian_vector`` that draws a new mini-batch
    at each call this is the stochastic estimator of Ji et al. (2021),
    Algorithm 3 (stocBiO)."""
    term, total = b.clone(), b.clone()
    for _ in range(n_steps):
        term = term - step_size * hessian_vector(term)
        total += term
    return step_size * total


def newton_cg(problem, lmbd, theta0, tol=1e-10, max_iter=100, armijo=1e-4):
    """argmin over theta of G(theta, lmbd) on the full inner data, by Newton's
    method with directions from conjugate gradient (inexact Newton: CG to a
    relative residual min(0.5, sqrt(||g||)), Nocedal and Wright 2006,
    Algorithm 7.1) and Armijo backtracking. Stops when ||grad G|| <= tol."""
    theta = theta0.clone()
    value = problem.inner_loss(theta, lmbd)
    for _ in range(max_iter):
        gradient = problem.inner_gradient(theta, lmbd)
        gradient_norm = torch.linalg.vector_norm(gradient)
        if not gradient_norm > tol:  # also stops on NaN
            break
        forcing = min(0.5, float(gradient_norm) ** 0.5)
        direction = -conjugate_gradient(problem.inner_hessian_operator(theta, lmbd), gradient,
                                        tol=forcing)
        slope = _dot(gradient, direction)
        step = 1.0
        for _ in range(50):
            candidate = theta + step * direction
            candidate_value = problem.inner_loss(candidate, lmbd)
            if candidate_value <= value + armijo * step * slope:
                break
            step *= 0.5
        else:
            # No decrease at machine precision: theta is as accurate as the
            # precision allows.
            break
        theta, value = candidate, candidate_value
    return theta
