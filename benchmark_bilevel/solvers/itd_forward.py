from benchmark_utils.hypergradient_solver import HypergradientSolver

from solvers_common.bilevel import check_iterations


class Solver(HypergradientSolver):
    """ITD, forward mode: the Jacobian J_k = dtheta_k / dlmbd carried along
    N inner iterations on the l1-regularized inner problem (Deledalle,
    Vaiter, Fadili and Peyré, "Stein Unbiased GrAdient estimator of the
    Risk", SIAM J. Imaging Sci. 2014; the "forward" method of Bertrand et
    al., ICML 2020 / JMLR 2022, Algorithm 1).

    Outer iteration, theta_0 the previous theta (a constant), J_0 = 0;
    inner_solver=cd (Algorithm 1), N epochs of: for j = 1..p, L_j = ||X_j||^2 / n,
        z_j = theta_j + X_j^T r / (n L_j),   theta_j <- ST(z_j, exp(lmbd_j) / L_j)
        J_j <- |s_j| (J_j + X_j^T dr / (n L_j)) - exp(lmbd_j) s_j / L_j
        (r = y - X theta, dr = -X J kept up to date, s_j = sign(theta_j));
    inner_solver=ista, N iterations of:
        u_k = theta_k - grad f(theta_k) / L
        theta_{k+1} = ST(u_k, exp(lmbd) / L),  s_{k+1} = sign(theta_{k+1})
        J_{k+1} = |s_{k+1}| (J_k - H(theta_k) J_k / L) - exp(lmbd) s_{k+1} / L;
    then
        g = J_N^T grad F(theta_N)
        lmbd <- lmbd - rate g    (benchmark_utils/hypergradient_solver.py)
    N = n_inner_steps. Cost: about twice the inner solver's per iteration,
    memory O(p q).
    """

    name = "itd_forward"
    forward_mode = True
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    parameters = {
        "step_size": [1.0],
        "n_inner_steps": [100],
        "inner_solver": ["auto"],
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
