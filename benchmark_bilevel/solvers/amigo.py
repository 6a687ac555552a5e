import torch
from benchmark_utils.smooth_solver import SmoothBilevelSolver

from solvers_common.bilevel import inner_sgd, linear_system_sgd


class Solver(SmoothBilevelSolver):
    """AmIGO, Amortized Implicit Gradient Optimization (Arbel and Mairal,
    "Amortized implicit differentiation for stochastic bilevel
    optimization", ICLR 2022, Algorithm 1).

    One outer iteration k, every loop warm-started from the previous one:
        theta_k <- n_inner_steps SGD steps on G(., lmbd_k), step alpha
        v_k     <- n_inner_steps SGD steps on 1/2 v^T d2_theta G v
                   - v^T grad_theta F_j(theta_k, lmbd_k), step beta
        lmbd_{k+1} = lmbd_k - gamma (grad_lmbd F_j - d2_(lmbd,theta) G_i v_k)
    alpha = beta = step_size, gamma = step_size / outer_ratio (reference
    defaults 0.1, 1, 10 steps).

    Work (``oracle_calls``, solvers_common/bilevel/work.py): per outer
    iteration (2 S + 1) b + b' (S = n_inner_steps gradients and S
    Hessian-vector products, one cross product on b inner samples each, a
    gradient of F on b' outer samples).
    """

    name = "amigo"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    # benchmark_utils/bilevel_solver.py, "Tuning".
    tuning_space = {"step_size": [0.1, 0.3, 1.0], "outer_ratio": [0.003, 0.01, 0.1, 1.0]}
    parameters = {
        "step_size": [0.1],
        "outer_ratio": [1.0],
        "n_inner_steps": [10],
        **SmoothBilevelSolver.common_parameters,
    }
    step_size_parameters = ("step_size", "outer_ratio", "n_inner_steps")
    test_config = {"batch_size": 16, "eval_freq": 2, "n_inner_steps": 2}

    def initialize(self):
        self.v = torch.zeros_like(self.theta)

    def oracle_calls_per_iteration(self):
        inner, outer = self.batch_samples()
        return (2 * self.n_inner_steps + 1) * inner + outer

    def step(self):
        problem, lmbd, sampler = self.problem, self.lmbd, self.inner_sampler
        alpha = beta = self.step_size
        self.theta = inner_sgd(problem, self.theta, lmbd, sampler, alpha, self.n_inner_steps)
        outer_batch, _ = self.outer_sampler.sample()
        grad_theta_outer, grad_lmbd_outer = problem.outer_gradients(self.theta, lmbd,
                                                                    outer_batch)
        self.v = linear_system_sgd(problem, self.theta, lmbd, self.v, grad_theta_outer,
                                   sampler, beta, self.n_inner_steps)
        inner_batch, _ = sampler.sample()
        cross_v = problem.inner_cross_vector(self.theta, lmbd, self.v, inner_batch)
        self.lmbd = lmbd - self.step_size / self.outer_ratio * (grad_lmbd_outer - cross_v)
