from benchmark_utils.bilevel_solver import BilevelSolver

from solvers_common.bilevel import (
    RecursiveEstimator,
    StepSizeSchedule,
    check_fraction,
    draw_hypergradient_batches,
    neumann_hypergradient,
    random_truncation_length,
)


class Solver(BilevelSolver):
    """SUSTAIN (Khanduri, Zeng, Hong, Wai, Wang and Yang, "A near-optimal
    algorithm for stochastic bilevel optimization via double-momentum",
    NeurIPS 2021, Algorithm 1).

    Iteration k, the same samples at (theta_k, lmbd_k) and at the previous
    point (theta_{k-1}, lmbd_{k-1}):
        h_k = grad_theta G_i(theta_k, lmbd_k)
              + (1 - a_k) (h_{k-1} - grad_theta G_i(theta_{k-1}, lmbd_{k-1}))
        f_k = Phi(theta_k, lmbd_k) + (1 - a_k) (f_{k-1} - Phi(theta_{k-1}, lmbd_{k-1}))
        theta_{k+1} = theta_k - beta_k h_k,   lmbd_{k+1} = lmbd_k - alpha_k f_k
    Phi = grad_lmbd F_j - d2_(lmbd,theta) G_i v with Ghadimi and Wang's
    estimator (2018, Algorithm 3) v = Q eta prod_{q<p} (I - eta d2_theta G)
    grad_theta F_j, p uniform in {0, ..., Q - 1} (one p for both points).
    beta_k = step_size / (k+1)^(1/3), alpha_k = beta_k / outer_ratio,
    eta = step_size, a_k = momentum / (k+1)^(2/3) (the paper's rates:
    steps ~ k^(-1/3), momentum ~ steps^2); reference defaults 0.1, 1,
    momentum 0.5, Q = n_neumann_steps = 10.
    """

    name = "sustain"
    parameters = {
        "step_size": [0.1],
        "outer_ratio": [1.0],
        "momentum": [0.5],
        "n_neumann_steps": [10],
        **BilevelSolver.common_parameters,
    }
    step_size_parameters = ("step_size", "outer_ratio", "n_neumann_steps")
    test_config = {"batch_size": 16, "eval_freq": 2, "n_neumann_steps": 2}

    def check_parameters(self):
        super().check_parameters()
        check_fraction("momentum", self.momentum)

    def initialize(self):
        self.inner_step = StepSizeSchedule(self.step_size, 1 / 3)
        self.outer_step = StepSizeSchedule(self.step_size / self.outer_ratio, 1 / 3)
        self.momentum_weight = StepSizeSchedule(self.momentum, 2 / 3, name="momentum")
        self.inner_direction, self.outer_direction = RecursiveEstimator(), RecursiveEstimator()
        self.previous = (self.theta, self.lmbd)

    def hypergradient(self, theta, lmbd, batches):
        return neumann_hypergradient(self.problem, theta, lmbd, batches, self.step_size,
                                     truncation_scale=self.n_neumann_steps * self.step_size)

    def step(self):
        problem, k = self.problem, self.iteration
        current, previous = (self.theta, self.lmbd), self.previous
        inner_batch, _ = self.inner_sampler.sample()
        n_products = random_truncation_length(self.n_neumann_steps, self.generator)
        batches = draw_hypergradient_batches(self.inner_sampler, self.outer_sampler,
                                             n_products)
        a = self.momentum_weight(k)
        h = self.inner_direction.update(problem.inner_gradient(*current, inner_batch),
                                        problem.inner_gradient(*previous, inner_batch), a)
        f = self.outer_direction.update(self.hypergradient(*current, batches),
                                        self.hypergradient(*previous, batches), a)
        self.previous = current
        self.theta = self.theta - self.inner_step(k) * h
        self.lmbd = self.lmbd - self.outer_step(k) * f
