"""Time of one hypergradient of the held-out Lasso, per method (printed, not a test).

    .venv/bin/python benchmarks/hypergradient_speed.py [--repeats 3] [--tol 1e-8]
        [--inner-solver cd|ista]

One line per measurement, ``name: value unit``; lines starting with ``#``
are notes. The problem: benchmark_bilevel's ``lasso_simulated`` dataset at
its default size (200 training and 200 validation samples, 1,000 features,
correlation 0.5 between neighbouring features, 5% non-zero coefficients,
SNR 3), float64, one CPU thread, at exp(lmbd) = lmbd_max / 10 and
lmbd_max / 100, from theta = 0 (no warm start). Every method runs the inner
solver (``--inner-solver``: ``cd``, cyclic proximal coordinate descent,
numba-compiled, the default and the paper's; ``ista``, proximal gradient)
until the relative duality gap of its iterate is <= ``--tol`` (checked every
10 iterations or epochs), then:

- ``forward``: ITD forward mode, the Jacobian carried along the iterations;
- ``backward``: ITD reverse mode over the recorded signs (full, K = N);
- ``implicit``: a direct solve on the support;
- ``implicit_forward``: support-restricted Jacobian iterations (coordinate
  descent epochs with ``cd``, ISTA steps with ``ista``) until their error
  bound (residual over the smallest eigenvalue of H_SS) is 1e-8 of the
  Jacobian.

One untimed hypergradient of each method first compiles the numba kernels
(cached on disk after the first run: ``compile_and_first_call`` says how long
that took in this process).

Each time is the median of ``--repeats`` runs; each line ``..._error`` gives
the relative error against the reference hypergradient (the problem's own,
at theta* to a duality gap of 1e-12) and ``..._iterations`` the ISTA
iterations (epochs for ``cd``). The reference times of the issue (sparse-ho, numba coordinate
descent, its own stopping rule) are not measured here.
"""
import argparse
import math
import statistics
import time

import numpy as np
import torch

from solvers_common.bilevel import (
    LassoProblem,
    UnrolledCoordinateDescent,
    UnrolledProximalGradient,
    correlated_regression,
    implicit_forward_hypergradient,
    implicit_hypergradient,
)


def one_hypergradient(problem, lmbd, method, tol, inner_solver):
    theta0 = torch.zeros(problem.n_features, dtype=torch.float64)
    run_class = UnrolledCoordinateDescent if inner_solver == "cd" else UnrolledProximalGradient
    run = run_class(problem, lmbd, theta0, forward=method == "forward",
                    record=method == "backward")
    run.solve(tol, max_iter=1_000_000)
    if method == "forward":
        return run.forward_hypergradient(), run.n_iterations
    if method == "backward":
        return run.backward_hypergradient(), run.n_iterations
    if method == "implicit":
        return implicit_hypergradient(problem, run.theta, lmbd), run.n_iterations
    return implicit_forward_hypergradient(problem, run.theta, lmbd, 1_000_000, 1e-8,
                                          coordinate_descent=inner_solver == "cd")[0], \
        run.n_iterations


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tol", type=float, default=1e-8)
    parser.add_argument("--inner-solver", choices=["cd", "ista"], default="cd")
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, y, _ = correlated_regression(np.random.default_rng(0), 400, 1000, correlation=0.5,
                                    density=0.05, snr=3.0)
    problem = LassoProblem(X[:200], y[:200], X[200:], y[200:])
    print(f"# lasso_simulated 200 x 1000, correlation 0.5, float64, 1 thread, tol {args.tol}, "
          f"inner solver {args.inner_solver}")
    start = time.perf_counter()
    lmbd = torch.tensor([problem.lmbd_max() - math.log(10)], dtype=torch.float64)
    for method in ("forward", "backward", "implicit", "implicit_forward"):
        one_hypergradient(problem, lmbd, method, args.tol, args.inner_solver)
    print(f"compile_and_first_call: {time.perf_counter() - start:.3g} s")
    for ratio in (10, 100):
        lmbd = torch.tensor([problem.lmbd_max() - math.log(ratio)], dtype=torch.float64)
        reference = problem.hypergradient(problem.solve_inner(lmbd), lmbd)[0]
        for method in ("forward", "backward", "implicit", "implicit_forward"):
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                gradient, n_iterations = one_hypergradient(problem, lmbd, method, args.tol,
                                                           args.inner_solver)
                times.append(time.perf_counter() - start)
            error = float((gradient - reference).abs().max() / reference.abs().max())
            key = f"{method}_lmbd_max_over_{ratio}"
            print(f"{key}: {statistics.median(times):.3g} s")
            print(f"{key}_error: {error:.1e}")
            print(f"{key}_iterations: {n_iterations}")


if __name__ == "__main__":
    main()
