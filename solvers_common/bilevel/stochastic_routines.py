"""Inner loops shared by the stochastic bilevel solvers, each drawing a fresh
inner mini-batch per step from a :class:`~.sampling.MinibatchSampler`."""
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


def stochastic_neumann(problem, theta, lmbd, b, sampler, step_size, n_steps):
    """The truncated Neumann series of [d2_theta G]^{-1} b with one fresh
    mini-batch per Hessian-vector product (Ji et al. 2021, Algorithm 3)."""
    def hessian_vector(v):
        batch, _ = sampler.sample()
        return problem.inner_hessian_vector(theta, lmbd, v, batch)
    return neumann_series(hessian_vector, b, step_size, n_steps)


def neumann_random_truncation(problem, theta, lmbd, b, sampler, step_size, n_steps,
                              generator):
    """Ghadimi and Wang (2018), Algorithm 3 (Hessian inverse approximation):
    n_steps step_size prod_{k < p} (I - step_size d2_theta G_{i_k}) b with p
    uniform in {0, ..., n_steps - 1}, an estimate of [d2_theta G]^{-1} b whose
    bias decreases geometrically with n_steps."""
    p = int(torch.randint(n_steps, (1,), generator=generator, device=generator.device))
    v = b
    for _ in range(p):
        batch, _ = sampler.sample()
        v = v - step_size * problem.inner_hessian_vector(theta, lmbd, v, batch)
    return n_steps * step_size * v
