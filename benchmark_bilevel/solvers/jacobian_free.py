from benchmark_utils.smooth_solver import SmoothBilevelSolver


class Solver(SmoothBilevelSolver):
    """Jacobian-free backpropagation (Fung, Heaton, Li, McKenzie, Osher and
    Yin, "JFB: Jacobian-free backpropagation for implicit networks", AAAI
    2022, Eq. (11)), on the full data, for the fixed point of the gradient
    step T(theta, lmbd) = theta - alpha grad_theta G(theta, lmbd).

    JFB replaces (I - d_theta T)^{-1} by the identity in the implicit
    gradient, so dtheta*/dlmbd ~ d_lmbd T = -alpha d2_(theta,lmbd) G:
        theta <- n_inner_steps gradient steps (warm start), step alpha
        lmbd  <- lmbd - gamma (grad_lmbd F - alpha d2_(lmbd,theta) G grad_theta F)
    alpha = step_size, gamma = step_size / outer_ratio.

    Work (``oracle_calls``, solvers_common/bilevel/work.py): per outer
    iteration (S + 1) n + m (S = n_inner_steps gradients and one cross product
    on the n inner samples, a gradient of F on the m outer samples).
    """

    name = "jacobian_free"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    stochastic = False
    # The stochastic solvers' grid (benchmark_utils/bilevel_solver.py,
    # "Tuning"): a full-batch comparator gets the same budget.
    tuning_space = {"step_size": [0.1, 0.3, 1.0], "outer_ratio": [0.003, 0.01, 0.1, 1.0]}
    parameters = {
        "step_size": [0.1],
        "outer_ratio": [1.0],
        "n_inner_steps": [10],
        **SmoothBilevelSolver.full_batch_parameters,
    }
    step_size_parameters = ("step_size", "outer_ratio", "n_inner_steps")
    test_config = {"n_inner_steps": 3}

    def oracle_calls_per_iteration(self):
        n_inner, n_outer = self.batch_samples()
        return (self.n_inner_steps + 1) * n_inner + n_outer

    def step(self):
        problem, lmbd, alpha = self.problem, self.lmbd, self.step_size
        for _ in range(self.n_inner_steps):
            self.theta = self.theta - alpha * problem.inner_gradient(self.theta, lmbd)
        grad_theta_outer, grad_lmbd_outer = problem.outer_gradients(self.theta, lmbd)
        cross = problem.inner_cross_vector(self.theta, lmbd, grad_theta_outer)
        self.lmbd = lmbd - alpha / self.outer_ratio * (grad_lmbd_outer - alpha * cross)
