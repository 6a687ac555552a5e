from benchmark_utils.smooth_solver import SmoothBilevelSolver

from solvers_common.bilevel import newton_cg

# Tolerance schedules of HOAG (Pedregosa 2016, Sec. 3, "exponential" being
# its default), as functions of the outer iteration k.
TOLERANCE_DECREASES = {
    "exponential": lambda k: 0.1 * 0.9 ** k,
    "quadratic": lambda k: 0.1 / (k + 1) ** 2,
    "cubic": lambda k: 0.1 / (k + 1) ** 3,
}


class Solver(SmoothBilevelSolver):
    """AID-CG: approximate implicit differentiation with conjugate gradient
    and decreasing tolerances, as HOAG (Pedregosa, "Hyperparameter
    optimization with approximate gradient", ICML 2016, Algorithm 1), on the
    full data.

    Outer iteration k, tolerance eps_k:
        theta_k: ||grad_theta G(theta_k, lmbd_k)|| <= eps_k (Newton-CG,
                 warm-started)
        q_k:     ||d2_theta G q_k - grad_theta F|| <= eps_k ||grad_theta F||
                 (CG, warm-started)
        p_k = grad_lmbd F - d2_(lmbd,theta) G q_k
        lmbd_{k+1} = lmbd_k - step_size p_k
    (HOAG's 1/L step with a fixed L = 1 / step_size.) Tolerances stop
    decreasing at the precision of ``dtype``.

    Work (``oracle_calls``, solvers_common/bilevel/work.py): counted as the
    oracles are called (Newton-CG's and CG's iterations depend on the
    tolerances).
    """

    name = "aid_cg"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    stochastic = False
    # HOAG's outer step over decades (quick.yml's 100 among them) and its
    # three tolerance schedules: 12 candidates, the stochastic solvers' count.
    tuning_space = {"step_size": [1.0, 10.0, 100.0, 1000.0],
                    "tolerance_decrease": ["exponential", "quadratic", "cubic"]}
    parameters = {
        "step_size": [0.1],
        "tolerance_decrease": ["exponential"],
        **SmoothBilevelSolver.full_batch_parameters,
    }
    step_size_parameters = ("step_size",)
    counts_oracles = True
    test_config = {"eval_freq": 1}

    def check_parameters(self):
        super().check_parameters()
        if self.tolerance_decrease not in TOLERANCE_DECREASES:
            raise ValueError(f"tolerance_decrease={self.tolerance_decrease!r}; accepted: "
                             f"{', '.join(map(repr, TOLERANCE_DECREASES))}.")

    def initialize(self):
        self.q = None
        self.smallest_tolerance = 1e-6 if self.dtype == "float32" else 1e-12

    def step(self):
        problem, lmbd = self.problem, self.lmbd
        tolerance = max(TOLERANCE_DECREASES[self.tolerance_decrease](self.iteration),
                        self.smallest_tolerance)
        self.theta = newton_cg(problem, lmbd, self.theta, tol=tolerance, max_iter=20)
        grad_theta_outer, grad_lmbd_outer = problem.outer_gradients(self.theta, lmbd)
        self.q = problem.solve_linear_system(self.theta, lmbd, grad_theta_outer, v0=self.q,
                                             tol=tolerance)
        cross_q = problem.inner_cross_vector(self.theta, lmbd, self.q)
        self.lmbd = lmbd - self.step_size * (grad_lmbd_outer - cross_q)
