from benchmark_utils.smooth_solver import SmoothBilevelSolver

from solvers_common.bilevel import neumann_series


class Solver(SmoothBilevelSolver):
    """AID-Neumann: approximate implicit differentiation with a truncated
    Neumann series for the inverse Hessian, on the full data (Lorraine, Vicol
    and Duvenaud, "Optimizing millions of hyperparameters by implicit
    differentiation", AISTATS 2020, Algorithms 1 and 3).

    Outer iteration:
        theta <- n_inner_steps gradient steps on G(., lmbd) (warm start), step alpha
        v = alpha sum_{q=0}^{Q} (I - alpha d2_theta G)^q grad_theta F
        lmbd <- lmbd - gamma (grad_lmbd F - d2_(lmbd,theta) G v)
    alpha = step_size, gamma = step_size / outer_ratio, Q = n_neumann_steps.

    Work (``oracle_calls``, solvers_common/bilevel/work.py): per outer
    iteration (S + Q + 1) n + m (S = n_inner_steps gradients, Q Hessian-vector
    products, one cross product on the n inner samples, a gradient of F on
    the m outer samples).
    """

    name = "aid_neumann"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    stochastic = False
    # The stochastic solvers' grid (benchmark_utils/bilevel_solver.py,
    # "Tuning"): a full-batch comparator gets the same budget.
    tuning_space = {"step_size": [0.1, 0.3, 1.0], "outer_ratio": [0.003, 0.01, 0.1, 1.0]}
    parameters = {
        "step_size": [0.1],
        "outer_ratio": [1.0],
        "n_inner_steps": [10],
        "n_neumann_steps": [10],
        **SmoothBilevelSolver.full_batch_parameters,
    }
    step_size_parameters = ("step_size", "outer_ratio", "n_inner_steps", "n_neumann_steps")
    test_config = {"n_inner_steps": 3, "n_neumann_steps": 3}

    def oracle_calls_per_iteration(self):
        n_inner, n_outer = self.batch_samples()
        return (self.n_inner_steps + self.n_neumann_steps + 1) * n_inner + n_outer

    def step(self):
        problem, lmbd, alpha = self.problem, self.lmbd, self.step_size
        for _ in range(self.n_inner_steps):
            self.theta = self.theta - alpha * problem.inner_gradient(self.theta, lmbd)
        grad_theta_outer, grad_lmbd_outer = problem.outer_gradients(self.theta, lmbd)

        def hessian_vector(v):
            return problem.inner_hessian_vector(self.theta, lmbd, v)
        v = neumann_series(hessian_vector, grad_theta_outer, alpha, self.n_neumann_steps)
        cross_v = problem.inner_cross_vector(self.theta, lmbd, v)
        self.lmbd = lmbd - alpha / self.outer_ratio * (grad_lmbd_outer - cross_v)
