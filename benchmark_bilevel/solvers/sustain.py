from benchmark_utils.solver_families import DoubleMomentumSolver

from solvers_common.bilevel import (
    draw_hypergradient_batches,
    fused,
    neumann_hypergradient,
    random_truncation_length,
)


class Solver(DoubleMomentumSolver):
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
    momentum 0.5, Q = n_neumann_steps = 10. The loop is
    benchmark_utils/solver_families.py's DoubleMomentumSolver;
    ``implementation`` "compiled": the same iterations,
    ``fused.sustain_iteration``, compiled (benchmark_utils/fused_solver.py;
    the p of each iteration drawn beforehand; all Q - 1 products run and
    those past p are discarded, twice the oracle path's products on
    average).
    """

    name = "sustain"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    # benchmark_utils/bilevel_solver.py, "Tuning".
    tuning_space = {"step_size": [0.1, 0.3, 1.0], "outer_ratio": [0.003, 0.01, 0.1, 1.0]}
    parameters = {"implementation": ["auto"], **DoubleMomentumSolver.parameters}
    compiled_iteration = fused.sustain_iteration
    # n_neumann_steps - 1 Hessian-vector products at two points per
    # iteration: one iteration per turn of the while loop (as MRBO).
    compiled_unroll = 1

    def compiled_hyperparameters(self):
        return dict(super().compiled_hyperparameters(),
                    truncation_scale=self.n_neumann_steps * self.step_size)

    def draw_block_ids(self, n_iterations):
        return fused.draw_truncated_block_ids(self.inner_sampler, self.outer_sampler,
                                              self.generator, self.n_neumann_steps,
                                              n_iterations)

    def hypergradient_batches(self):
        n_products = random_truncation_length(self.n_neumann_steps, self.generator)
        return draw_hypergradient_batches(self.inner_sampler, self.outer_sampler,
                                          n_products)

    def hypergradient(self, theta, lmbd, batches):
        return neumann_hypergradient(self.problem, theta, lmbd, batches, self.step_size,
                                     truncation_scale=self.n_neumann_steps * self.step_size)
