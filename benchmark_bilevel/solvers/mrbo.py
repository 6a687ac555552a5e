from benchmark_utils.solver_families import DoubleMomentumSolver

from solvers_common.bilevel import draw_hypergradient_batches, fused, neumann_hypergradient


class Solver(DoubleMomentumSolver):
    """MRBO, Momentum-based Recursive Bilevel Optimizer (Yang, Ji and Liang,
    "Provably faster algorithms for bilevel optimization", NeurIPS 2021,
    Algorithm 1).

    Iteration k, with inner batch i and the batches of one hypergradient
    estimate (outer batch, cross batch, Q Hessian batches), the same at both
    points (theta_k, lmbd_k) and (theta_{k-1}, lmbd_{k-1}):
        u_k = grad_theta G_i(theta_k, lmbd_k)
              + (1 - a_k) (u_{k-1} - grad_theta G_i(theta_{k-1}, lmbd_{k-1}))
        w_k = Phi(theta_k, lmbd_k) + (1 - a_k) (w_{k-1} - Phi(theta_{k-1}, lmbd_{k-1}))
        theta_{k+1} = theta_k - beta_k u_k,   lmbd_{k+1} = lmbd_k - alpha_k w_k
    Phi = grad_lmbd F - d2_(lmbd,theta) G v with v the Neumann estimate
    eta sum_{q<=Q} prod (I - eta d2_theta G) grad_theta F (Ji et al. 2021).
    beta_k = step_size / (k+1)^(1/3), alpha_k = beta_k / outer_ratio,
    eta = step_size, a_k = momentum / (k+1)^(2/3) (the paper's
    eta_k ~ k^(-1/3) and momentum ~ eta_k^2); reference defaults 0.1, 1,
    momentum 0.5, Q = n_neumann_steps = 10. The loop is
    benchmark_utils/solver_families.py's DoubleMomentumSolver;
    ``implementation`` "compiled": the same iterations,
    ``fused.mrbo_iteration``, compiled (benchmark_utils/fused_solver.py).

    Work (``oracle_calls``, solvers_common/bilevel/work.py): per iteration,
    at each of the two points, a gradient of G_i and Phi (a gradient of F, Q
    Hessian-vector and one cross product): 2 ((Q + 2) b + b') for b inner
    and b' outer samples.
    """

    name = "mrbo"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    # benchmark_utils/bilevel_solver.py, "Tuning".
    tuning_space = {"step_size": [0.1, 0.3, 1.0], "outer_ratio": [0.003, 0.01, 0.1, 1.0]}
    parameters = {"implementation": ["auto"], **DoubleMomentumSolver.parameters}
    compiled_iteration = fused.mrbo_iteration
    # 10 Hessian-vector products at two points per iteration: one iteration
    # per turn of the while loop keeps the compilation short.
    compiled_unroll = 1

    @property
    def inner_batches_per_iteration(self):
        # The inner batch, the cross batch, one per Hessian-vector product.
        return 2 + self.n_neumann_steps

    def oracle_calls_per_iteration(self):
        inner, outer = self.batch_samples()
        return 2 * ((self.n_neumann_steps + 2) * inner + outer)

    def hypergradient_batches(self):
        return draw_hypergradient_batches(self.inner_sampler, self.outer_sampler,
                                          self.n_neumann_steps)

    def hypergradient(self, theta, lmbd, batches):
        return neumann_hypergradient(self.problem, theta, lmbd, batches, self.step_size)
