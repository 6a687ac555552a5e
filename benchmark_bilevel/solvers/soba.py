import torch
from benchmark_utils.fused_solver import FusedSolver

from solvers_common.bilevel import StepSizeSchedule, fused
from solvers_common.optim.checks import check_nonnegative


class Solver(FusedSolver):
    """SOBA, StOchastic Bilevel Algorithm (Dagréou, Ablin, Vaiter and Moreau,
    "A framework for bilevel optimization that enables stochastic and global
    variance reduction algorithms", NeurIPS 2022, Algorithm 1 with the
    directions of Eq. (5)-(7)).

    One iteration, with inner sample i, outer sample j:
        D_theta = grad_theta G_i(theta, lmbd)
        D_v     = d2_theta G_i(theta, lmbd) v + grad_theta F_j(theta, lmbd)
        D_lmbd  = d2_(lmbd,theta) G_i(theta, lmbd) v + grad_lmbd F_j(theta, lmbd)
        theta <- theta - rho_t D_theta,  v <- v - rho_t D_v,
        lmbd  <- lmbd - gamma_t D_lmbd,
    v estimating -[d2_theta G]^{-1} grad_theta F. rho_t = step_size /
    (t + 1)^step_size_exponent, gamma_t = rho_t / outer_ratio (the reference
    benchmark's defaults: 0.1, 1, exponent 1/2 for both); step_size_exponent
    is a finite number >= 0, 0 for constant steps. ``implementation``
    "compiled": the same iterations, ``fused.soba_iteration``, compiled
    (benchmark_utils/fused_solver.py).

    Work (``oracle_calls``, solvers_common/bilevel/work.py): per iteration
    3 b + b' (a gradient, a Hessian-vector and a cross product on the b
    inner samples, a gradient of F on the b' outer samples).
    """

    name = "soba"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    # benchmark_utils/bilevel_solver.py, "Tuning".
    tuning_space = {"step_size": [0.1, 0.3, 1.0], "outer_ratio": [0.003, 0.01, 0.1, 1.0]}
    parameters = {
        "step_size": [0.1],
        "outer_ratio": [1.0],
        "step_size_exponent": [0.5],
        "implementation": ["auto"],
        **FusedSolver.common_parameters,
    }
    step_size_parameters = ("step_size", "outer_ratio")
    test_config = {"batch_size": 16, "eval_freq": 4}
    compiled_iteration = fused.soba_iteration
    # Four iterations per turn of the compiled while loop share its
    # allocations and tensor handles, most of an iteration's time on the
    # logistic problem: 4.3 (unroll 1), 3.9 (2), 3.0-3.1 (4), 3.2 us (8);
    # datacleaning and quadratic unchanged (25 and 19 us), compile 4-13 s
    # (one thread, small-block allocator, 2026-11-30; FSLA and SRBA gain
    # nothing from unroll 2 and FSLA loses on datacleaning, 36 -> 81 us).
    compiled_unroll = 4

    def check_parameters(self):
        super().check_parameters()
        check_nonnegative("step_size_exponent", self.step_size_exponent)

    def initialize(self):
        self.v = torch.zeros_like(self.theta)
        self.inner_step = StepSizeSchedule(self.step_size, self.step_size_exponent)
        self.outer_step = StepSizeSchedule(self.step_size / self.outer_ratio,
                                           self.step_size_exponent)
        super().initialize()

    def oracle_calls_per_iteration(self):
        inner, outer = self.batch_samples()
        return 3 * inner + outer

    def compiled_hyperparameters(self):
        return dict(inner_step=self.step_size, outer_step=self.step_size / self.outer_ratio,
                    exponent=self.step_size_exponent)

    def initial_carry(self):
        return self.theta, self.v, self.lmbd, self.counter()

    def read_carry(self, carry):
        self.theta, self.v, self.lmbd, _ = carry

    def step(self):
        problem, theta, lmbd, v = self.problem, self.theta, self.lmbd, self.v
        inner_batch, _ = self.inner_sampler.sample()
        outer_batch, _ = self.outer_sampler.sample()
        grad_inner, hessian_v, cross_v = problem.inner_oracles(theta, lmbd, v, inner_batch)
        grad_theta_outer, grad_lmbd_outer = problem.outer_gradients(theta, lmbd, outer_batch)
        rho, gamma = self.inner_step(self.iteration), self.outer_step(self.iteration)
        self.theta = theta - rho * grad_inner
        self.v = v - rho * (hessian_v + grad_theta_outer)
        self.lmbd = lmbd - gamma * (cross_v + grad_lmbd_outer)
