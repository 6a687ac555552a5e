from benchmark_utils.bilevel_solver import BilevelSolver

from solvers_common.bilevel import inner_sgd, neumann_random_truncation


class Solver(BilevelSolver):
    """BSA, Bilevel Stochastic Approximation (Ghadimi and Wang,
    "Approximation methods for bilevel programming", arXiv 2018,
    Algorithm 2 with the Hessian inverse approximation of Algorithm 3).

    One outer iteration k:
        theta_k <- n_inner_steps SGD steps on G(., lmbd_k) from theta_{k-1}
        v_k = n_neumann_steps eta prod_{q < p} (I - eta d2_theta G_{i_q})
              grad_theta F_j, p uniform in {0, ..., n_neumann_steps - 1}
        lmbd_{k+1} = lmbd_k - alpha (grad_lmbd F_j - d2_(lmbd,theta) G_i v_k)
    inner step = eta = step_size, alpha = step_size / outer_ratio (reference
    defaults 0.1, 1, 10 inner and 10 Neumann steps).
    """

    name = "bsa"
    parameters = {
        "step_size": [0.1],
        "outer_ratio": [1.0],
        "n_inner_steps": [10],
        "n_neumann_steps": [10],
        **BilevelSolver.common_parameters,
    }
    step_size_parameters = ("step_size", "outer_ratio", "n_inner_steps", "n_neumann_steps")
    test_config = {"batch_size": 16, "eval_freq": 2, "n_inner_steps": 2,
                   "n_neumann_steps": 2}

    def step(self):
        problem, lmbd, sampler = self.problem, self.lmbd, self.inner_sampler
        self.theta = inner_sgd(problem, self.theta, lmbd, sampler, self.step_size,
                               self.n_inner_steps)
        outer_batch, _ = self.outer_sampler.sample()
        grad_theta_outer, grad_lmbd_outer = problem.outer_gradients(self.theta, lmbd,
                                                                    outer_batch)
        v = neumann_random_truncation(problem, self.theta, lmbd, grad_theta_outer, sampler,
                                      self.step_size, self.n_neumann_steps, self.generator)
        inner_batch, _ = sampler.sample()
        cross_v = problem.inner_cross_vector(self.theta, lmbd, v, inner_batch)
        self.lmbd = lmbd - self.step_size / self.outer_ratio * (grad_lmbd_outer - cross_v)
