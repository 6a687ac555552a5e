"""Grid search versus hypergradient descent on the held-out Lasso (printed, not a test).

    .venv/bin/python benchmarks/hyperparameter_search.py [--grid 100] [--max-outer 100]

Measures issue 11's expected outcome "hypergradient descent reaches the best
validation loss of a 100-value grid search with fewer inner solves". On
``lasso_simulated`` (200 training and 200 validation samples, 1,000
features, correlation 0.5, 5% non-zero coefficients, SNR 3, seed 0) and
``diabetes`` (shuffled with seed 0, half for validation), float64, one CPU
thread:

- grid: ``--grid`` values of exp(lmbd), log-spaced from lmbd_max down to
  lmbd_max * 1e-4, largest first, each an inner solve to the reference
  tolerance (the problem's ``solve_inner``, warm-started from the previous
  value of the grid);
- hypergradient descent from lmbd_max * ``--start-ratio`` (0.1), with the
  benchmark's outer step (``backtracking``: ``BacktrackingGradientDescent``,
  Armijo backtracking on the validation loss, first step of length 1 in
  log(lmbd)) or sparse-ho's (``sparse_ho``: ``OuterGradientDescent``,
  normalized steps of length 1, divided by 10 at each increase of the loss):
  each outer iteration (each trial point of the line search) is one inner
  solve to the reference tolerance, warm-started, then the hypergradient by
  ``implicit`` (a direct solve on the support) or ``implicit_forward``
  (coordinate-descent epochs on the support to a certified relative error
  of 1e-8, warm-started from the previous Jacobian).

Lines: ``<dataset>_grid_best: value``, then for each rule and method the
number of inner solves until the validation loss was within 1% of the grid's
best (``not reached`` otherwise), the best validation loss it found and its
wall time (to the 1% mark or in all).
"""
import argparse
import math
import time

import numpy as np
import torch
from sklearn.datasets import load_diabetes

from solvers_common.bilevel import (
    BacktrackingGradientDescent,
    LassoProblem,
    OuterGradientDescent,
    correlated_regression,
    implicit_forward_hypergradient,
    implicit_hypergradient,
    standardize_splits,
)


def simulated():
    X, y, _ = correlated_regression(np.random.default_rng(0), 400, 1000, correlation=0.5,
                                    density=0.05, snr=3.0)
    X, y = standardize_splits(X, y, 200)
    return LassoProblem(X[:200], y[:200], X[200:], y[200:])


def diabetes():
    X, y = load_diabetes(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    n_inner = len(y) - len(y) // 2
    X, y = standardize_splits(X[order], y[order], n_inner)
    return LassoProblem(X[:n_inner], y[:n_inner], X[n_inner:], y[n_inner:])


def scalar(value):
    return torch.tensor([value], dtype=torch.float64)


def grid_search(problem, n_values):
    """Validation losses along the grid, in the order of the solves."""
    theta, values = None, []
    for lmbd in np.linspace(problem.lmbd_max(), problem.lmbd_max() + math.log(1e-4), n_values):
        theta = problem.solve_inner(scalar(lmbd), theta0=theta)
        values.append(float(problem.outer_loss(theta, scalar(lmbd))))
    return values


RULES = {"backtracking": BacktrackingGradientDescent, "sparse_ho": OuterGradientDescent}


def hypergradient_descent(problem, rule, method, max_outer, target, start_ratio):
    """Validation losses of the outer iterates, one inner solve each; stops
    once within ``target``. Returns the losses and the time to the target."""
    lmbd = scalar(problem.lmbd_max() + math.log(start_ratio))
    descent, theta, state, values = RULES[rule](1.0), None, None, []
    start, reached = time.perf_counter(), None
    for _ in range(max_outer):
        theta = problem.solve_inner(lmbd, theta0=theta)
        value = float(problem.outer_loss(theta, lmbd))
        values.append(value)
        if value <= target:
            reached = time.perf_counter() - start
            break
        if method == "implicit":
            gradient = implicit_hypergradient(problem, theta, lmbd)
        else:
            gradient, state = implicit_forward_hypergradient(
                problem, theta, lmbd, 1_000_000, 1e-8, jacobian0=state,
                coordinate_descent=True)
        lmbd = descent.update(lmbd, gradient, value)
    return values, reached


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=100)
    parser.add_argument("--max-outer", type=int, default=100)
    parser.add_argument("--start-ratio", type=float, default=0.1,
                        help="hypergradient descent starts at lmbd_max * this")
    parser.add_argument("--rules", nargs="+", choices=sorted(RULES),
                        default=["backtracking", "sparse_ho"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"# float64, 1 thread; grid of {args.grid} values of exp(lmbd) in "
          f"[lmbd_max * 1e-4, lmbd_max]; within 1% = validation loss <= 1.01 * grid best; "
          f"descent from lmbd_max * {args.start_ratio:g}")
    for name, make in (("lasso_simulated", simulated), ("diabetes", diabetes)):
        problem = make()
        start = time.perf_counter()
        values = grid_search(problem, args.grid)
        grid_time = time.perf_counter() - start
        best = min(values)
        target = 1.01 * best
        first = next(i + 1 for i, v in enumerate(values) if v <= target)
        print(f"{name}_grid_best: {best:.6g}")
        print(f"{name}_grid_solves_to_1pct: {first} (of {len(values)}; the best at solve "
              f"{values.index(best) + 1})")
        print(f"{name}_grid_time: {grid_time:.3g} s (all {len(values)} solves)")
        for rule in args.rules:
            for method in ("implicit", "implicit_forward"):
                start = time.perf_counter()
                values, reached = hypergradient_descent(problem, rule, method, args.max_outer,
                                                        target, args.start_ratio)
                total = time.perf_counter() - start
                key = f"{name}_{rule}_{method}"
                print(f"{key}_solves_to_1pct: "
                      + (f"{len(values)}" if reached is not None else "not reached"))
                print(f"{key}_best: {min(values):.6g}")
                print(f"{key}_time: {total:.3g} s")


if __name__ == "__main__":
    main()
