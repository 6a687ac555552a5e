from benchmark_utils.smooth_solver import SmoothBilevelSolver

from solvers_common.bilevel import StepSizeSchedule


class Solver(SmoothBilevelSolver):
    """F2SA, Fully First-order Stochastic Approximation (Kwon, Kwon, Wright
    and Nowak, "A fully first-order method for stochastic bilevel
    optimization", ICML 2023, Algorithm 1).

    No second derivatives: the bilevel problem is replaced by the penalty
    min over (lmbd, y) of F(y, lmbd) + nu (G(y, lmbd) - min_z G(z, lmbd)),
    with a multiplier nu_k that grows along the iterations. Iteration k:
        repeat n_inner_steps times, fresh batches i1, i2, j:
            z <- z - gamma_k grad_theta G_i1(z, lmbd)
            y <- y - alpha_k (grad_theta F_j(y, lmbd) + nu_k grad_theta G_i2(y, lmbd))
        lmbd <- lmbd - xi alpha_k (grad_lmbd F_j(y, lmbd)
                                   + nu_k (grad_lmbd G_i(y, lmbd) - grad_lmbd G_i(z, lmbd)))
    z tracks theta*(lmbd), y the minimizer of F + nu G, and the bracket is a
    first-order estimate of the hypergradient, exact as nu grows. Both terms
    of the bracket use the same inner batch i: still unbiased, with noise
    nu |y - z| instead of nu |y|.
    alpha_k = step_size / (k+1)^(5/7), gamma_k = step_size / (k+1)^(4/7)
    (the reference benchmark's exponents), xi = 1 / outer_ratio and
    nu_k = penalty_initial (k+1)^(1/7), so that alpha_k nu_k stays
    proportional to gamma_k: the y-step on nu G is as stable as the z-step,
    and the step of lmbd on the nu-weighted bracket decreases. (The reference
    grows nu by 0.1 / (k+1)^(1/7) per iteration, nu ~ k^(6/7), with a step of
    lmbd ~ k^(-4/7): their product grows and the iterates diverge on the
    quadratic problem.) Reference defaults: step_size 0.01, outer_ratio 1,
    penalty_initial 1, 10 inner steps. The result's theta is z, the estimate
    of theta*(lmbd).

    Work (``oracle_calls``, solvers_common/bilevel/work.py): per iteration
    (2 S + 2) b + (S + 1) b' (S = n_inner_steps; two gradients of G and one
    of F per inner step, then one of F and two of G), b inner and b' outer
    samples.
    """

    name = "f2sa"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    # benchmark_utils/bilevel_solver.py, "Tuning".
    tuning_space = {"step_size": [0.01, 0.03, 0.1], "outer_ratio": [0.003, 0.01, 0.1, 1.0]}
    parameters = {
        "step_size": [0.01],
        "outer_ratio": [1.0],
        "penalty_initial": [1.0],
        "n_inner_steps": [10],
        **SmoothBilevelSolver.common_parameters,
    }
    step_size_parameters = ("step_size", "outer_ratio", "penalty_initial", "n_inner_steps")
    test_config = {"batch_size": 16, "eval_freq": 2, "n_inner_steps": 2}

    def initialize(self):
        self.y = self.theta.clone()
        self.penalized_step = StepSizeSchedule(self.step_size, 5 / 7)
        self.inner_step = StepSizeSchedule(self.step_size, 4 / 7)

    def oracle_calls_per_iteration(self):
        inner, outer = self.batch_samples()
        return (2 * self.n_inner_steps + 2) * inner + (self.n_inner_steps + 1) * outer

    def step(self):
        problem, k, lmbd = self.problem, self.iteration, self.lmbd
        alpha, gamma = self.penalized_step(k), self.inner_step(k)
        nu = self.penalty_initial * (k + 1) ** (1 / 7)
        z, y = self.theta, self.y
        for _ in range(self.n_inner_steps):
            i1, _ = self.inner_sampler.sample()
            i2, _ = self.inner_sampler.sample()
            j, _ = self.outer_sampler.sample()
            z = z - gamma * problem.inner_gradient(z, lmbd, i1)
            y = y - alpha * (problem.outer_gradients(y, lmbd, j)[0]
                             + nu * problem.inner_gradient(y, lmbd, i2))
        j, _ = self.outer_sampler.sample()
        i, _ = self.inner_sampler.sample()
        direction = (problem.outer_gradients(y, lmbd, j)[1]
                     + nu * (problem.inner_gradients(y, lmbd, i)[1]
                             - problem.inner_gradients(z, lmbd, i)[1]))
        self.theta, self.y = z, y
        self.lmbd = lmbd - alpha / self.outer_ratio * direction
