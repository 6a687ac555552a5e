from benchmark_utils.fused_solver import FusedSolver

from solvers_common.bilevel import StepSizeSchedule, fused, neumann_random_truncation


class Solver(FusedSolver):
    """TTSA, Two-Timescale Stochastic Approximation (Hong, Wai, Wang and
    Yang, "A two-timescale stochastic algorithm framework for bilevel
    optimization: complexity analysis and application to actor-critic",
    SIAM J. Optim. 2023 (arXiv 2020), Algorithm 1).

    One iteration k:
        theta_{k+1} = theta_k - beta_k grad_theta G_i(theta_k, lmbd_k)
        v_k = Hessian inverse approximation of Ghadimi and Wang (2018,
              Algorithm 3) applied to grad_theta F_j, n_neumann_steps terms
        lmbd_{k+1} = lmbd_k - alpha_k (grad_lmbd F_j - d2_(lmbd,theta) G_i' v_k)
    with F_j, G_i' and the Hessians at (theta_{k+1}, lmbd_k), on fresh batches:
    the paper's update of x uses h_f^k, an estimate of the hypergradient at
    (x^k, y^{k+1}), the inner update coming first (Algorithm 1). beta_k =
    step_size / (k + 1)^(2/5), alpha_k = step_size / outer_ratio /
    (k + 1)^(3/5) (Theorem 1's rates; reference defaults 0.1, 1, 10).
    ``implementation`` "compiled": the same iterations,
    ``fused.ttsa_iteration``, compiled (benchmark_utils/fused_solver.py; the
    number of Hessian-vector products of each iteration drawn beforehand;
    all n_neumann_steps - 1 run and those past it are discarded).
    """

    name = "ttsa"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    # benchmark_utils/bilevel_solver.py, "Tuning".
    tuning_space = {"step_size": [0.1, 0.3, 1.0], "outer_ratio": [0.003, 0.01, 0.1, 1.0]}
    parameters = {
        "step_size": [0.1],
        "outer_ratio": [1.0],
        "n_neumann_steps": [10],
        "implementation": ["auto"],
        **FusedSolver.common_parameters,
    }
    step_size_parameters = ("step_size", "outer_ratio", "n_neumann_steps")
    test_config = {"batch_size": 16, "eval_freq": 4, "n_neumann_steps": 2}
    compiled_iteration = fused.ttsa_iteration

    def initialize(self):
        self.inner_step = StepSizeSchedule(self.step_size, 2 / 5)
        self.outer_step = StepSizeSchedule(self.step_size / self.outer_ratio, 3 / 5)
        super().initialize()

    def compiled_hyperparameters(self):
        return dict(inner_step=self.step_size, outer_step=self.step_size / self.outer_ratio,
                    truncation_scale=self.n_neumann_steps * self.step_size)

    def initial_carry(self):
        return self.theta, self.lmbd, self.counter()

    def read_carry(self, carry):
        self.theta, self.lmbd, _ = carry

    def draw_block_ids(self, n_iterations):
        return fused.draw_truncated_block_ids(self.inner_sampler, self.outer_sampler,
                                              self.generator, self.n_neumann_steps,
                                              n_iterations, cross_last=True)

    def step(self):
        problem, lmbd, k = self.problem, self.lmbd, self.iteration
        inner_batch, _ = self.inner_sampler.sample()
        theta = self.theta - self.inner_step(k) * problem.inner_gradient(self.theta, lmbd,
                                                                         inner_batch)
        outer_batch, _ = self.outer_sampler.sample()
        grad_theta_outer, grad_lmbd_outer = problem.outer_gradients(theta, lmbd, outer_batch)
        v = neumann_random_truncation(problem, theta, lmbd, grad_theta_outer,
                                      self.inner_sampler, self.step_size,
                                      self.n_neumann_steps, self.generator)
        cross_batch, _ = self.inner_sampler.sample()
        cross_v = problem.inner_cross_vector(theta, lmbd, v, cross_batch)
        self.theta = theta
        self.lmbd = lmbd - self.outer_step(k) * (grad_lmbd_outer - cross_v)
