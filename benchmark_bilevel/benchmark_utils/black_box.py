"""Shared by the black-box baselines (grid and random search): evaluate a
candidate lmbd by solving the inner problem on the full data and measuring
F, and keep the best candidate so far as the result."""
from benchmark_utils.bilevel_solver import BilevelSolver
from solvers_common.bilevel import newton_cg


class BlackBoxSolver(BilevelSolver):
    """One iteration = one candidate ``self.candidate(k)``; theta*(lmbd) by
    Newton-CG to ``inner_tolerance`` (warm-started from the previous
    candidate's solution)."""

    stochastic = False

    def check_parameters(self):
        super().check_parameters()
        if not self.lmbd_min < self.lmbd_max:
            raise ValueError(f"lmbd_min={self.lmbd_min} must be < lmbd_max={self.lmbd_max}.")

    def initialize(self):
        self.inner_tolerance = 1e-5 if self.dtype == "float32" else 1e-10
        self.best_value, self.last_theta = float("inf"), self.theta

    def step(self):
        lmbd = self.candidate(self.iteration)
        theta = newton_cg(self.problem, lmbd, self.last_theta, tol=self.inner_tolerance,
                          max_iter=50)
        self.last_theta = theta
        value = float(self.problem.outer_loss(theta, lmbd))
        if value < self.best_value:
            self.best_value, self.theta, self.lmbd = value, theta, lmbd
