"""Scores of an unrolled network on test signals (used by the objective of
benchmark_unrolling; free of benchopt so they can be tested on hand-built
iterates)."""
import torch

from ..lasso import lasso_objective

DESCENT_TOLERANCE = 1e-12


def layer_metrics(iterates, X, D, lmbd, z_star, objective_star):
    """Per-layer scores of ``iterates`` (shape ``(L+1, N, m)``) against the
    reference solutions ``z_star`` (``(N, m)``) and values ``objective_star``.

    Returns a dict of tensors:
    - ``gap``: ``(L+1,)`` mean over signals of ``F_x(z_l) - F_x(z*)``;
    - ``nmse``: ``(L+1,)`` ``sum_x ||z_l - z*||^2 / sum_x ||z*||^2``, the
      normalized mean squared error of Chen et al. (2018);
    - ``descent_violation``: ``(L,)`` fraction of signals with
      ``F(z_l) > F(z_{l-1}) + 1e-12``;
    - ``distance_descent``: ``(L,)`` fraction of signals with
      ``||z_l - z*|| < ||z_{l-1} - z*||``;
    - ``support_size``: ``(L+1,)`` mean number of non-zeros of ``z_l``.
    """
    objective = lasso_objective(iterates, X, D, lmbd)
    distance = torch.linalg.vector_norm(iterates - z_star, dim=-1)
    return dict(
        gap=(objective - objective_star).mean(-1),
        nmse=(distance**2).sum(-1) / (z_star**2).sum().clamp_min(1e-300),
        descent_violation=(objective[1:] > objective[:-1] + DESCENT_TOLERANCE)
        .to(X.dtype).mean(-1),
        distance_descent=(distance[1:] < distance[:-1]).to(X.dtype).mean(-1),
        support_size=(iterates != 0).to(X.dtype).sum(-1).mean(-1),
    )


def perturb_signals(X, sigma, noise):
    """``x + sigma ||x|| / sqrt(n) xi``: input noise of relative size sigma."""
    scale = torch.linalg.vector_norm(X, dim=-1, keepdim=True) / X.shape[-1] ** 0.5
    return X + sigma * scale * noise


def iterate_perturbation(layer, sigma, noise):
    """Hook for ``UnrolledNetwork.forward(iterate_noise=...)`` adding
    ``sigma ||z_l|| / sqrt(m) xi`` to the iterate of layer ``layer`` only."""
    def perturb(index, z):
        if index != layer:
            return z
        return perturb_signals(z, sigma, noise)
    return perturb
