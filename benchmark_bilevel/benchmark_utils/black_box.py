"""Shared by the black-box baselines (grid and random search): evaluate a
candidate lmbd by solving the inner problem on the full data and measuring
F, and keep the best candidate so far as the result."""
from benchmark_utils.bilevel_solver import BilevelSolver
from solvers_common.bilevel import newton_cg


class BlackBoxSolver(BilevelSolver):
    """One iteration = one candidate ``self.candidate(k)``; theta*(lmbd) by
    Newton-CG to ``inner_tolerance`` (warm-started from the previous
    candidate's solution), or on l1-regularized problems by the problem's
    own solver to a relative duality gap ``inner_tolerance``. Skipped in the
    hypergradient study (they have no hypergradient to report).

    The candidates lie in [lmbd_min, lmbd_max] (log regularizations); with
    ``relative_to_lmbd_max``, in [log lmbd_max + lmbd_min, log lmbd_max +
    lmbd_max] on an l1-regularized problem (lmbd_max: the smallest
    regularization with theta* = 0), the grids of Bertrand et al. (2020),
    which do not depend on the scale of the data.

    Work (``oracle_calls``, solvers_common/bilevel/work.py): counted as
    Newton-CG and the validation loss call the oracles; NaN on the
    l1-regularized problems, whose own inner solver is not counted."""

    stochastic = False
    counts_oracles = True
    range_parameters = {"lmbd_min, lmbd_max": [(-10.0, 2.0)],
                        "relative_to_lmbd_max": [False]}

    def skip(self, problem, study_lmbd=None, **objective):
        if study_lmbd is not None:
            return True, f"{self.name} computes no hypergradient (hypergradient study)."
        if self.relative_to_lmbd_max and not hasattr(problem, "lmbd_max"):
            return True, (f"relative_to_lmbd_max needs an l1-regularized problem; "
                          f"{type(problem).__name__} has no lmbd_max.")
        return False, None

    def check_parameters(self):
        super().check_parameters()
        if not self.lmbd_min < self.lmbd_max:
            raise ValueError(f"lmbd_min={self.lmbd_min} must be < lmbd_max={self.lmbd_max}.")

    def initialize(self):
        if self.problem.smooth_inner:
            self.inner_tolerance = 1e-5 if self.dtype == "float32" else 1e-10
        else:  # relative duality gap
            self.inner_tolerance = 1e-6 if self.dtype == "float32" else 1e-12
        self.best_value, self.last_theta = float("inf"), self.theta
        # (low, high) of the candidates' log regularizations.
        offset = self.problem.lmbd_max() if self.relative_to_lmbd_max else 0.0
        self.lmbd_range = (self.lmbd_min + offset, self.lmbd_max + offset)

    def step(self):
        lmbd = self.candidate(self.iteration)
        if self.problem.smooth_inner:
            theta = newton_cg(self.problem, lmbd, self.last_theta, tol=self.inner_tolerance,
                              max_iter=50)
        else:
            # Capped: with a tiny regularization and more features than
            # samples the gap closes slowly, and the search must move on.
            theta = self.problem.solve_inner(lmbd, self.last_theta, tol=self.inner_tolerance,
                                             max_iter=2000)
        self.last_theta = theta
        value = float(self.problem.outer_loss(theta, lmbd))
        if value < self.best_value:
            self.best_value, self.theta, self.lmbd = value, theta, lmbd
