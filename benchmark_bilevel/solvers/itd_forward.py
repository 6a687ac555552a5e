from benchmark_utils.hypergradient_solver import HypergradientSolver

from solvers_common.bilevel import check_iterations


class Solver(HypergradientSolver):
    """ITD, forward mode: the Jacobian J_k = dtheta_k / dlmbd carried along
    N iterations of ISTA on the l1-regularized inner problem (Deledalle,
    Vaiter, Fadili and Peyré, "Stein Unbiased GrAdient estimator of the
    Risk", SIAM J. Imaging Sci. 2014; the "forward" method of Bertrand et
    al., ICML 2020 / JMLR 2022, Algorithm 1 with ISTA for coordinate descent).

    Outer iteration, theta_0 the previous theta (a constant), J_0 = 0:
        u_k = theta_k - grad f(theta_k) / L
        theta_{k+1} = ST(u_k, exp(lmbd) / L),  s_{k+1} = sign(theta_{k+1})
        J_{k+1} = |s_{k+1}| (J_k - H(theta_k) J_k / L) - exp(lmbd) s_{k+1} / L
        g = J_N^T grad F(theta_N)
        lmbd <- lmbd - rate g    (benchmark_utils/hypergradient_solver.py)
    N = n_inner_steps. Cost: twice ISTA's per iteration, memory O(p q).
    """

    name = "itd_forward"
    forward_mode = True
    parameters = {
        "step_size": [1.0],
        "n_inner_steps": [100],
        **HypergradientSolver.full_batch_parameters,
    }
    test_config = {"n_inner_steps": 5, "dataset": {"name": "lasso_simulated"}}

    def check_parameters(self):
        super().check_parameters()
        check_iterations("n_inner_steps", self.n_inner_steps)

    def optimization_run(self, lmbd, theta0):
        return self.make_run(lmbd, theta0).run(self.n_inner_steps)

    def estimate(self, run):
        return run.forward_hypergradient()
