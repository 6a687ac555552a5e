from benchmark_utils.hypergradient_solver import HypergradientSolver

from solvers_common.bilevel import check_iterations, implicit_hypergradient


class Solver(HypergradientSolver):
    """Implicit differentiation on the support (Bertrand et al., "Implicit
    differentiation of Lasso-type models for hyperparameter optimization",
    ICML 2020 / JMLR 2022, the "implicit" method, Eq. (9)).

    Outer iteration:
        theta: inner iterations (coordinate descent or ISTA, inner_solver)
               from the previous theta until the relative duality gap is
               <= inner_tolerance (at most max_inner_steps iterations)
        S = supp(theta), s = sign(theta_S)
        H_SS v = grad_S F(theta)       (direct solve, |S| x |S|)
        g = -exp(lmbd) s v             (summed over S for a scalar lmbd)
        lmbd <- lmbd - rate g    (benchmark_utils/hypergradient_solver.py)
    In the hypergradient study, theta is the N-th inner iterate.
    """

    name = "implicit"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    parameters = {
        "step_size": [1.0],
        "inner_tolerance": [1e-8],
        "max_inner_steps": [10_000],
        "inner_solver": ["auto"],
        **HypergradientSolver.full_batch_parameters,
    }
    step_size_parameters = ("step_size", "inner_tolerance")
    test_config = {"max_inner_steps": 20, "dataset": {"name": "lasso_simulated"}}

    def check_parameters(self):
        super().check_parameters()
        check_iterations("max_inner_steps", self.max_inner_steps)

    def optimization_run(self, lmbd, theta0):
        return self.make_run(lmbd, theta0).solve(self.inner_tolerance, self.max_inner_steps)

    def estimate(self, run):
        return implicit_hypergradient(self.problem, run.theta, run.lmbd)
