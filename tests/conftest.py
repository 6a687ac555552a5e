"""Shared fixtures: small random Lasso problems; several benchmarks in one
process."""
import sys

import pytest
import torch
from benchopt.benchmark import Benchmark

from solvers_common.lasso import lmbd_max, solve_lasso

# The problems are tiny: intra-op threads only add synchronization overhead,
# which becomes a large slowdown when other processes share the 2 cores.
torch.set_num_threads(1)

_set_benchmark_module = Benchmark.set_benchmark_module


def _set_fresh_benchmark_module(self):
    """benchopt puts the benchmark's ``benchmark_utils`` package in
    ``sys.modules`` but leaves the submodules another benchmark loaded
    (``benchmark_utils.plotting``) there, where imports find them: one
    benchopt run loads one benchmark, the tests load several."""
    for name in [name for name in sys.modules if name.startswith("benchmark_utils.")]:
        del sys.modules[name]
    _set_benchmark_module(self)


Benchmark.set_benchmark_module = _set_fresh_benchmark_module


def _gaussian_problem(n, m, n_signals, seed=0, dtype=torch.float64):
    """Gaussian dictionary with unit-norm columns and Gaussian signals."""
    generator = torch.Generator().manual_seed(seed)
    D = torch.randn(n, m, generator=generator, dtype=torch.float64)
    D /= torch.linalg.vector_norm(D, dim=0)
    X = torch.randn(n_signals, n, generator=generator, dtype=torch.float64)
    return D.to(dtype), X.to(dtype)


@pytest.fixture
def make_problem():
    """Factory ``make_problem(n, m, n_signals, seed=0, dtype=float64)``
    returning ``(D, X)``."""
    return _gaussian_problem


@pytest.fixture(scope="module")
def tiny_problem():
    """n = 8, m = 16, 200 signals, lmbd = 0.1 lmbd_max, float64."""
    D, X = _gaussian_problem(8, 16, 200, seed=1)
    lmbd = 0.1 * lmbd_max(X, D).item()
    z_star, _ = solve_lasso(X, D, lmbd)
    return D, X, lmbd, z_star
