"""Base of the solvers whose iterations use the inner problem's gradients
and Hessians (every solver but the black-box searches and the
hypergradient solvers of the l1-regularized problems)."""
from benchmark_utils.bilevel_solver import BilevelSolver


class SmoothBilevelSolver(BilevelSolver):
    """A ``BilevelSolver`` skipped, with a one-line reason, on problems whose
    inner objective is not twice differentiable (``problem.smooth_inner`` is
    False: the Lasso-type problems of ``solvers_common.bilevel.sparse``)."""

    def skip(self, problem, **objective):
        if not getattr(problem, "smooth_inner", True):
            return True, (f"{self.name} assumes a twice-differentiable inner problem; "
                          f"{type(problem).__name__} is l1-regularized.")
        return False, None
