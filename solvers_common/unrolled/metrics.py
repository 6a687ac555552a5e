"""Scores of an unrolled network on test signals (used by the objective of
benchmark_unrolling; free of benchopt so they can be tested on hand-built
iterates)."""
import inspect

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


def extra_layer_metrics(iterates, X, D, lmbd, objective_star, n_layers, extra_layers):
    """Scores of a network run past its trained depth ``n_layers``.

    ``iterates``: shape ``(n_layers + K + 1, N, m)``, ``K >= max(extra_layers)``.
    Returns ``{k: (gap, descent_rate)}`` for every ``k`` of ``extra_layers``:
    ``gap`` the mean over signals of ``F_x(z_{L+k}) - F_x(z*)``; ``descent_rate``
    the fraction of the extra layers ``l = L+1 .. L+k`` (and of the signals)
    at which F does not go up, ``F(z_l) <= F(z_{l-1}) + 1e-12`` (the
    complement of ``descent_violation``), None for ``k = 0``.
    """
    objective = lasso_objective(iterates[n_layers:], X, D, lmbd)
    gap = (objective - objective_star).mean(-1)
    descent = (objective[1:] <= objective[:-1] + DESCENT_TOLERANCE).to(X.dtype).mean(-1)
    return {k: (float(gap[k]), float(descent[:k].mean()) if k > 0 else None)
            for k in extra_layers}


def perturb_signals(X, sigma, noise):
    """``x + sigma ||x|| / sqrt(n) xi``: input noise of relative size sigma."""
    scale = torch.linalg.vector_norm(X, dim=-1, keepdim=True) / X.shape[-1] ** 0.5
    return X + sigma * scale * noise


def accepts_iterate_noise(network):
    """Whether ``network(x, iterate_noise=hook)`` lets ``hook`` perturb the
    iterates: its ``forward`` names an ``iterate_noise`` argument, as
    :meth:`UnrolledNetwork.forward <solvers_common.unrolled.UnrolledNetwork.forward>`
    does (a ``**kwargs`` catch-all does not count: it could ignore the hook)."""
    return _names_argument(network, "iterate_noise")


def _names_argument(network, name):
    """Whether ``network.forward`` names the argument ``name``."""
    try:
        parameters = inspect.signature(network.forward).parameters
    except (AttributeError, TypeError, ValueError):
        return False
    parameter = parameters.get(name)
    return parameter is not None and parameter.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def iterate_perturbation(layer, sigma, noise):
    """Hook for ``UnrolledNetwork.forward(iterate_noise=...)`` adding
    ``sigma ||z_l|| / sqrt(m) xi`` to the iterate of layer ``layer`` only."""
    def perturb(index, z):
        if index != layer:
            return z
        return perturb_signals(z, sigma, noise)
    return perturb


def every_layer_perturbation(sigma, noise, scale):
    """Hook for ``UnrolledNetwork.forward(iterate_noise=...)`` adding
    ``sigma scale xi_l`` to every intermediate iterate ``z_l``, ``l = 1 ..
    L - 1`` (``noise``: ``(L - 1, N, m)``, ``xi_l = noise[l - 1]``; ``scale``:
    ``(N, 1)``, the same at every layer). The last iterate is not perturbed:
    no layer is left to correct it. A fixed ``scale`` (the objective passes
    ``||z*|| / sqrt(m)``): relative to each iterate's own norm the noise would
    compound, the norm growing by about ``1 + sigma`` per layer."""
    n_perturbed = noise.shape[0]

    def perturb(index, z):
        if index > n_perturbed:
            return z
        return z + sigma * scale * noise[index - 1]
    return perturb


def cannot_continue(network):
    """Why ``network`` cannot run past its trained depth, in one line, or
    None when it can: its ``forward`` must name an ``extra_layers`` argument
    (as :meth:`UnrolledNetwork.forward
    <solvers_common.unrolled.UnrolledNetwork.forward>` does) and its
    ``continuation`` must not be None."""
    name = type(network).__qualname__
    if not _names_argument(network, "extra_layers"):
        return (f"{name}.forward takes no extra_layers argument, through which a network "
                "runs past its trained depth (solvers_common.unrolled.UnrolledNetwork has it)")
    if getattr(network, "continuation", None) is None:
        return f"{name} cannot run past its trained depth (its continuation is None)"
    return None
