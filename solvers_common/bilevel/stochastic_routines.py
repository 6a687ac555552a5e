"""Inner loops and hypergradient estimators shared by the stochastic bilevel
solvers. Mini-batches come from a :class:`~.sampling.MinibatchSampler`; the
estimators that recursive methods (MRBO, VRBO, SUSTAIN) evaluate at two
iterates take their mini-batches as arguments, drawn once by
:func:`draw_hypergradient_batches`, so that both evaluations see the same
samples."""
from typing import NamedTuple

import torch

from .linear_solvers import neumann_series


def inner_sgd(problem, theta, lmbd, sampler, step_size, n_steps):
    """``n_steps`` of SGD on theta -> G(theta, lmbd), from ``theta``."""
    for _ in range(n_steps):
        batch, _ = sampler.sample()
        theta = theta - step_size * problem.inner_gradient(theta, lmbd, batch)
    return theta


def linear_system_sgd(problem, theta, lmbd, v, b, sampler, step_size, n_steps):
    """``n_steps`` of SGD on v -> 1/2 v^T d2_theta G v - b^T v, whose
    minimizer solves d2_theta G v = b (AmIGO's inner loop for v)."""
    for _ in range(n_steps):
        batch, _ = sampler.sample()
        v = v - step_size * (problem.inner_hessian_vector(theta, lmbd, v, batch) - b)
    return v


def draw_batches(sampler, n_batches):
    """The next ``n_batches`` mini-batches of ``sampler``."""
    return [sampler.sample()[0] for _ in range(n_batches)]


def stochastic_neumann(problem, theta, lmbd, b, sampler, step_size, n_steps):
    """The truncated Neumann series of [d2_theta G]^{-1} b with one fresh
    mini-batch per Hessian-vector product (Ji et al. 2021, Algorithm 3)."""
    batches = iter(draw_batches(sampler, n_steps))

    def hessian_vector(v):
        return problem.inner_hessian_vector(theta, lmbd, v, next(batches))
    return neumann_series(hessian_vector, b, step_size, n_steps)


def random_truncation_length(n_steps, generator):
    """p uniform in {0, ..., n_steps - 1}: the number of Hessian-vector
    products of Ghadimi and Wang's estimator (2018, Algorithm 3)."""
    return int(torch.randint(n_steps, (1,), generator=generator, device=generator.device))


def neumann_random_truncation(problem, theta, lmbd, b, sampler, step_size, n_steps,
                              generator):
    """Ghadimi and Wang (2018), Algorithm 3 (Hessian inverse approximation):
    n_steps step_size prod_{k < p} (I - step_size d2_theta G_{i_k}) b with p
    uniform in {0, ..., n_steps - 1}, an estimate of [d2_theta G]^{-1} b whose
    bias decreases geometrically with n_steps."""
    v = b
    for batch in draw_batches(sampler, random_truncation_length(n_steps, generator)):
        v = v - step_size * problem.inner_hessian_vector(theta, lmbd, v, batch)
    return n_steps * step_size * v


class HypergradientBatches(NamedTuple):
    """Mini-batches of one stochastic hypergradient: ``outer`` for grad F,
    ``cross`` for the cross product, ``hessian`` one per Hessian-vector
    product."""
    outer: object
    cross: object
    hessian: list


def draw_hypergradient_batches(inner_sampler, outer_sampler, n_hessian_batches):
    return HypergradientBatches(outer_sampler.sample()[0], inner_sampler.sample()[0],
                                draw_batches(inner_sampler, n_hessian_batches))


def neumann_hypergradient(problem, theta, lmbd, batches, step_size, truncation_scale=None):
    """A stochastic hypergradient on the given :class:`HypergradientBatches`:

        grad_lmbd F_j - d2_(lmbd,theta) G_i v,  v ~ [d2_theta G]^{-1} grad_theta F_j,

    with, for Q = len(batches.hessian) and H_k the Hessian on the k-th batch,
    - ``truncation_scale=None``: v = eta sum_{q=0}^{Q} prod_{k<q} (I - eta H_k)
      grad_theta F_j, the truncated Neumann series of Ji et al. (2021,
      Algorithm 3), used by MRBO and VRBO;
    - ``truncation_scale=c``: v = c prod_{k<Q} (I - eta H_k) grad_theta F_j,
      Ghadimi and Wang's estimator (2018, Algorithm 3) when Q is drawn by
      :func:`random_truncation_length` and c = n_steps eta (SUSTAIN).
    With FULL_BATCH everywhere it is the deterministic estimate (VRBO's
    periodic full pass)."""
    grad_theta_outer, grad_lmbd_outer = problem.outer_gradients(theta, lmbd, batches.outer)
    if truncation_scale is None:
        hessian_batches = iter(batches.hessian)

        def hessian_vector(u):
            return problem.inner_hessian_vector(theta, lmbd, u, next(hessian_batches))
        v = neumann_series(hessian_vector, grad_theta_outer, step_size, len(batches.hessian))
    else:
        v = grad_theta_outer
        for batch in batches.hessian:
            v = v - step_size * problem.inner_hessian_vector(theta, lmbd, v, batch)
        v = truncation_scale * v
    return grad_lmbd_outer - problem.inner_cross_vector(theta, lmbd, v, batches.cross)
