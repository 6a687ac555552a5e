from benchmark_utils.solver_families import InnerLoopSolver

from solvers_common.bilevel import neumann_random_truncation


class Solver(InnerLoopSolver):
    """BSA, Bilevel Stochastic Approximation (Ghadimi and Wang,
    "Approximation methods for bilevel programming", arXiv 2018,
    Algorithm 2 with the Hessian inverse approximation of Algorithm 3).

    One outer iteration k:
        theta_k <- n_inner_steps SGD steps on G(., lmbd_k) from theta_{k-1}
        v_k = n_neumann_steps eta prod_{q < p} (I - eta d2_theta G_{i_q})
              grad_theta F_j, p uniform in {0, ..., n_neumann_steps - 1}
        lmbd_{k+1} = lmbd_k - alpha (grad_lmbd F_j - d2_(lmbd,theta) G_i v_k)
    inner step = eta = step_size, alpha = step_size / outer_ratio (reference
    defaults 0.1, 1, 10 inner and 10 Neumann steps). The loop is
    benchmark_utils/solver_families.py's InnerLoopSolver.
    """

    name = "bsa"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    # benchmark_utils/bilevel_solver.py, "Tuning".
    tuning_space = {"step_size": [0.1, 0.3, 1.0], "outer_ratio": [0.003, 0.01, 0.1, 1.0]}

    def inverse_hessian_vector(self, theta, lmbd, grad_theta_outer):
        return neumann_random_truncation(self.problem, theta, lmbd, grad_theta_outer,
                                         self.inner_sampler, self.step_size,
                                         self.n_neumann_steps, self.generator)
