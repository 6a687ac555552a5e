from benchmark_utils.hypergradient_solver import HypergradientSolver

from solvers_common.bilevel import check_iterations, check_truncation


class Solver(HypergradientSolver):
    """ITD, reverse mode (backpropagation) through N inner iterations on
    the l1-regularized inner problem, optionally truncated to the last K
    (Domke, "Generic methods for optimization-based modeling", AISTATS 2012;
    Shaban, Cheng, Hatch and Boots, "Truncated back-propagation for bilevel
    optimization", AISTATS 2019; the "backward" method of Bertrand et al.,
    ICML 2020 / JMLR 2022).

    Outer iteration: N inner iterations from the previous theta, keeping
    the signs s_k of the iterates; then, a = grad F(theta_N), g = 0, and
    inner_solver=ista:
        for k = N-1, ..., N-K:
            u = |s_{k+1}| a
            g <- g - exp(lmbd) s_{k+1} u / L
            a <- u - H(theta_k) u / L
    inner_solver=cd (the adjoint of each coordinate update, in reverse order):
        for epoch k = N-1, ..., N-K, for j = p, ..., 1, s = s_{k+1, j}:
            g <- g - exp(lmbd_j) s a_j / L_j
            a <- a - |s| a_j X^T X_j / (n L_j),   a_j <- 0
    then
        lmbd <- lmbd - rate g    (benchmark_utils/hypergradient_solver.py)
    N = n_inner_steps, K = truncation (None: K = N, full backpropagation;
    0 <= K <= N). Memory O(N p) bytes (the signs as int8).
    """

    name = "itd_backward"
    record = True
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    parameters = {
        "step_size": [1.0],
        "n_inner_steps": [100],
        "truncation": [None],
        "inner_solver": ["auto"],
        **HypergradientSolver.full_batch_parameters,
    }
    test_config = {"n_inner_steps": 5, "truncation": 3, "dataset": {"name": "lasso_simulated"}}

    def check_parameters(self):
        super().check_parameters()
        check_iterations("n_inner_steps", self.n_inner_steps)
        check_truncation(self.truncation, self.n_inner_steps)

    def optimization_run(self, lmbd, theta0):
        return self.make_run(lmbd, theta0).run(self.n_inner_steps)

    def estimate(self, run):
        # In the study, N grows from 0: K is capped at N.
        truncation = None if self.truncation is None else min(self.truncation,
                                                                run.n_iterations)
        return run.backward_hypergradient(truncation)
