from benchmark_utils.solver_families import InnerLoopSolver

from solvers_common.bilevel import stochastic_neumann


class Solver(InnerLoopSolver):
    """stocBiO (Ji, Yang and Liang, "Bilevel optimization: convergence
    analysis and enhanced design", ICML 2021, Algorithm 2 with the Neumann
    estimator of Eq. (8)).

    One outer iteration k:
        theta_k <- n_inner_steps SGD steps on G(., lmbd_k) from theta_{k-1},
                   step alpha
        v_k = eta sum_{q=0}^{Q} prod (I - eta d2_theta G_{i_q}) grad_theta F_j
              (Q = n_neumann_steps, a fresh mini-batch per product)
        lmbd_{k+1} = lmbd_k - beta (grad_lmbd F_j - d2_(lmbd,theta) G_i v_k)
    alpha = eta = step_size, beta = step_size / outer_ratio (reference
    defaults 0.1, 1, 10 inner and 10 Neumann steps). The loop is
    benchmark_utils/solver_families.py's InnerLoopSolver.

    Work (``oracle_calls``, solvers_common/bilevel/work.py): per outer
    iteration (S + Q + 1) b + b' (S = n_inner_steps gradients, Q Hessian-vector
    products, one cross product on b inner samples each, a gradient of F on
    b' outer samples).
    """

    name = "stocbio"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    # benchmark_utils/bilevel_solver.py, "Tuning".
    tuning_space = {"step_size": [0.1, 0.3, 1.0], "outer_ratio": [0.003, 0.01, 0.1, 1.0]}

    def oracle_calls_per_iteration(self):
        inner, outer = self.batch_samples()
        return (self.n_inner_steps + self.n_neumann_steps + 1) * inner + outer

    def inverse_hessian_vector(self, theta, lmbd, grad_theta_outer):
        return stochastic_neumann(self.problem, theta, lmbd, grad_theta_outer,
                                  self.inner_sampler, self.step_size, self.n_neumann_steps)
