import torch
from benchmark_utils.smooth_solver import SmoothBilevelSolver


class Solver(SmoothBilevelSolver):
    """ITD: iterative differentiation, reverse-mode differentiation through
    ``n_inner_steps`` gradient steps on the full inner data (Franceschi,
    Donini, Frasconi and Pontil, "Forward and reverse gradient-based
    hyperparameter optimization", ICML 2017, Algorithm 2 "reverse-HG"; the
    warm-started variant ITD-BiO of Ji et al. 2021).

    Outer iteration:
        theta_0 = theta (previous iterate, a constant for differentiation)
        theta_{k+1} = theta_k - alpha grad_theta G(theta_k, lmbd), k < K
        lmbd <- lmbd - gamma d/dlmbd F(theta_K(lmbd), lmbd)   (autograd)
    alpha = step_size, gamma = step_size / outer_ratio, K = n_inner_steps.

    Work (``oracle_calls``, solvers_common/bilevel/work.py): per outer
    iteration (3 K - 1) n + m: K gradients forward; backward, through each
    step a cross product, and a Hessian-vector product through all but the
    first (theta_0 is a constant), on the n inner samples; a gradient of F
    (the loss and its reverse pass) on the m outer samples.
    """

    name = "itd"
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
        return (3 * self.n_inner_steps - 1) * n_inner + n_outer

    def step(self):
        problem = self.problem
        lmbd = self.lmbd.detach().requires_grad_(True)
        theta = self.theta.detach()
        with torch.enable_grad():
            for _ in range(self.n_inner_steps):
                theta = theta - self.step_size * problem.inner_gradient(theta, lmbd)
            hypergradient, = torch.autograd.grad(problem.outer_loss(theta, lmbd), lmbd)
        self.theta = theta.detach()
        self.lmbd = (lmbd - self.step_size / self.outer_ratio * hypergradient).detach()
