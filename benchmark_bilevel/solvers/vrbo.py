from benchmark_utils.smooth_solver import SmoothBilevelSolver

from solvers_common.bilevel import (
    FULL_BATCH,
    HypergradientBatches,
    RecursiveEstimator,
    draw_hypergradient_batches,
    neumann_hypergradient,
)


class Solver(SmoothBilevelSolver):
    """VRBO, Variance Reduction Bilevel Optimizer (Yang, Ji and Liang,
    "Provably faster algorithms for bilevel optimization", NeurIPS 2021,
    Algorithm 2).

    SARAH estimates u of grad_theta G and w of the hypergradient Phi =
    grad_lmbd F - d2_(lmbd,theta) G v (v: Neumann estimate of
    [d2_theta G]^{-1} grad_theta F, Ji et al. 2021), updated after every move
    of (theta, lmbd) by the difference of the oracles at the new and the old
    point on the same fresh samples, and recomputed on the full data every q
    outer iterations. Outer iteration k:
        if k % q == 0:  u = grad_theta G,  w = Phi   (full batch)
        lmbd <- lmbd - alpha w;                       update u, w
        repeat n_inner_steps times:
            theta <- theta - beta u;                  update u, w
    where "update" is u += grad_theta G_i(new) - grad_theta G_i(old), and
    w += Phi(new) - Phi(old), as in the authors' code, which also corrects
    the estimates for the move of lmbd. beta = eta = step_size,
    alpha = step_size / outer_ratio, q = period_fraction (n + m) /
    batch_size outer iterations. Reference defaults 0.1, 1, 10 inner and 10
    Neumann steps; its period_frac of 128 amounts to never refreshing on
    ijcnn1, so the default period here is SRBA's 0.5.

    Work (``oracle_calls``, solvers_common/bilevel/work.py): a full pass,
    (Q + 2) n + m (n inner, m outer samples, Q = n_neumann_steps), at outer
    iterations 0, q, 2q, ...; every outer iteration makes 1 + n_inner_steps
    moves, each a gradient of G_i and Phi at two points, 2 ((Q + 2) b + b')
    for b inner and b' outer samples.
    """

    name = "vrbo"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    # benchmark_utils/bilevel_solver.py, "Tuning".
    tuning_space = {"step_size": [0.1, 0.3, 1.0], "outer_ratio": [0.003, 0.01, 0.1, 1.0]}
    parameters = {
        "step_size": [0.1],
        "outer_ratio": [1.0],
        "n_inner_steps": [10],
        "n_neumann_steps": [10],
        "period_fraction": [0.5],
        **SmoothBilevelSolver.common_parameters,
    }
    step_size_parameters = ("step_size", "outer_ratio", "n_inner_steps", "n_neumann_steps",
                            "period_fraction")
    test_config = {"batch_size": 16, "eval_freq": 1, "n_inner_steps": 2,
                   "n_neumann_steps": 2}

    def initialize(self):
        self.period = self.full_pass_period()
        self.inner_direction, self.outer_direction = RecursiveEstimator(), RecursiveEstimator()

    def closed_form_oracle_calls(self):
        inner, outer = self.batch_samples()
        Q, problem = self.n_neumann_steps, self.problem
        full_passes = -(-self.iteration // self.period)
        move = 2 * ((Q + 2) * inner + outer)
        return float(full_passes * ((Q + 2) * problem.n_inner_samples + problem.n_outer_samples)
                     + self.iteration * (1 + self.n_inner_steps) * move)

    def hypergradient(self, theta, lmbd, batches):
        return neumann_hypergradient(self.problem, theta, lmbd, batches, self.step_size)

    def move(self, theta, lmbd):
        """Go to (theta, lmbd), updating u and w with the oracles' change."""
        problem, previous = self.problem, (self.theta, self.lmbd)
        inner_batch, _ = self.inner_sampler.sample()
        batches = draw_hypergradient_batches(self.inner_sampler, self.outer_sampler,
                                             self.n_neumann_steps)
        self.inner_direction.update(problem.inner_gradient(theta, lmbd, inner_batch),
                                    problem.inner_gradient(*previous, inner_batch))
        self.outer_direction.update(self.hypergradient(theta, lmbd, batches),
                                    self.hypergradient(*previous, batches))
        self.theta, self.lmbd = theta, lmbd

    def step(self):
        if self.iteration % self.period == 0:
            full = HypergradientBatches(FULL_BATCH, FULL_BATCH,
                                        [FULL_BATCH] * self.n_neumann_steps)
            self.inner_direction.reset(self.problem.inner_gradient(self.theta, self.lmbd))
            self.outer_direction.reset(self.hypergradient(self.theta, self.lmbd, full))
        alpha, beta = self.step_size / self.outer_ratio, self.step_size
        self.move(self.theta, self.lmbd - alpha * self.outer_direction.direction)
        for _ in range(self.n_inner_steps):
            self.move(self.theta - beta * self.inner_direction.direction, self.lmbd)
