import torch
from benchmark_utils.fused_solver import FusedSolver

from solvers_common.bilevel import FULL_BATCH, RecursiveEstimator, fused


class Solver(FusedSolver):
    """SRBA, Stochastic Recursive Bilevel Algorithm (Dagréou, Moreau, Vaiter
    and Ablin, "A lower bound and a near-optimal algorithm for bilevel
    empirical risk minimization", arXiv:2302.08766, 2023 (AISTATS 2024),
    Algorithm 1).

    SOBA's three directions, estimated by SARAH (recursive differences on the
    same samples) and recomputed on the full data every q iterations:
        if t % q == 0:  D_theta = grad_theta G,  D_v = d2_theta G v + grad_theta F,
                        D_lmbd = d2_(lmbd,theta) G v + grad_lmbd F   (full batch)
        else, with inner batch i and outer batch j, z = (theta, v, lmbd):
            D_theta += grad_theta G_i(z_t) - grad_theta G_i(z_{t-1})
            D_v     += [d2_theta G_i v + grad_theta F_j](z_t) - [...](z_{t-1})
            D_lmbd  += [d2_(lmbd,theta) G_i v + grad_lmbd F_j](z_t) - [...](z_{t-1})
        theta <- theta - rho D_theta,  v <- v - rho D_v,  lmbd <- lmbd - gamma D_lmbd
    Constant steps rho = step_size, gamma = step_size / outer_ratio, as in the
    paper's analysis; q = period_fraction (n + m) / batch_size. Reference
    defaults 0.1, 1, period_fraction 0.5. The paper's projection of v on a ball, there for the
    analysis, is left out, as in the reference benchmark. ``implementation``
    "compiled": the same iterations, ``fused.srba_iteration``, compiled
    (benchmark_utils/fused_solver.py).

    Work (``oracle_calls``, solvers_common/bilevel/work.py): a full pass,
    3 n + m (n inner, m outer samples), at t = 0, q, 2q, ..., SOBA's oracles
    at two points, 2 (3 b + b'), at every other iteration: after T
    iterations, ceil(T / q) (3 n + m) + (T - ceil(T / q)) 2 (3 b + b').
    """

    name = "srba"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    # benchmark_utils/bilevel_solver.py, "Tuning".
    tuning_space = {"step_size": [0.1, 0.3, 1.0], "outer_ratio": [0.003, 0.01, 0.1, 1.0]}
    parameters = {
        "step_size": [0.1],
        "outer_ratio": [1.0],
        "period_fraction": [0.5],
        "implementation": ["auto"],
        **FusedSolver.common_parameters,
    }
    step_size_parameters = ("step_size", "outer_ratio", "period_fraction")
    test_config = {"batch_size": 16, "eval_freq": 4}
    compiled_iteration = fused.srba_iteration

    def initialize(self):
        self.v = torch.zeros_like(self.theta)
        self.period = self.full_pass_period()
        self.directions = [RecursiveEstimator() for _ in range(3)]
        self.previous = None
        super().initialize()

    def closed_form_oracle_calls(self):
        inner, outer = self.batch_samples()
        full_passes = -(-self.iteration // self.period)
        return float(full_passes * (3 * self.problem.n_inner_samples
                                    + self.problem.n_outer_samples)
                     + (self.iteration - full_passes) * 2 * (3 * inner + outer))

    def compiled_hyperparameters(self):
        # An integer tensor: t % period stays exact past float32's 2^24.
        return dict(inner_step=self.step_size, outer_step=self.step_size / self.outer_ratio,
                    period=torch.tensor(self.period, device=self.device))

    def initial_carry(self):
        point = (self.theta, self.v, self.lmbd)
        zeros = tuple(torch.zeros_like(x) for x in point)
        return (*point, point, zeros, self.counter())

    def read_carry(self, carry):
        self.theta, self.v, self.lmbd = carry[:3]

    def draw_block_ids(self, n_iterations):
        # The full passes (t % period == 0) draw no mini-batch: their rows of
        # block numbers are placeholders, unused.
        t = torch.arange(self.iteration, self.iteration + n_iterations)
        drawn = (t % self.period != 0).to(self.device)
        ids = []
        for sampler in (self.inner_sampler, self.outer_sampler):
            rows = torch.zeros(n_iterations, 1, dtype=torch.int64, device=self.device)
            rows[drawn] = sampler.sample_block_ids(int(drawn.sum()))[:, None]
            ids.append(rows)
        return tuple(ids)

    def oracles(self, theta, v, lmbd, inner_batch, outer_batch):
        """(D_theta, D_v, D_lmbd) at one point on the given batches."""
        grad_inner, hessian_v, cross_v = self.problem.inner_oracles(theta, lmbd, v,
                                                                    inner_batch)
        grad_theta_outer, grad_lmbd_outer = self.problem.outer_gradients(theta, lmbd,
                                                                         outer_batch)
        return grad_inner, hessian_v + grad_theta_outer, cross_v + grad_lmbd_outer

    def step(self):
        current = (self.theta, self.v, self.lmbd)
        if self.iteration % self.period == 0:
            values = self.oracles(*current, FULL_BATCH, FULL_BATCH)
            d_theta, d_v, d_lmbd = (estimator.reset(value) for estimator, value
                                    in zip(self.directions, values))
        else:
            inner_batch, _ = self.inner_sampler.sample()
            outer_batch, _ = self.outer_sampler.sample()
            values = self.oracles(*current, inner_batch, outer_batch)
            previous_values = self.oracles(*self.previous, inner_batch, outer_batch)
            d_theta, d_v, d_lmbd = (estimator.update(value, previous_value)
                                    for estimator, value, previous_value
                                    in zip(self.directions, values, previous_values))
        self.previous = current
        rho, gamma = self.step_size, self.step_size / self.outer_ratio
        self.theta = self.theta - rho * d_theta
        self.v = self.v - rho * d_v
        self.lmbd = self.lmbd - gamma * d_lmbd
