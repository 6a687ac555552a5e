import warnings

from benchmark_utils.hypergradient_solver import HypergradientSolver

from solvers_common.bilevel import check_iterations, implicit_forward_hypergradient


class Solver(HypergradientSolver):
    """Implicit forward differentiation (Bertrand, Klopfenstein, Massias,
    Blondel, Vaiter, Gramfort and Salmon, ICML 2020 / JMLR 2022, Algorithm
    2): solve the inner problem, then run forward-mode Jacobian iterations
    with the support and signs of the solution fixed, at the cost of
    iterations on |S| coordinates.

    Outer iteration:
        theta: inner iterations (coordinate descent or ISTA, inner_solver)
               from the previous theta until the relative duality gap is
               <= inner_tolerance (at most max_inner_steps iterations)
        S = supp(theta), s = sign(theta_S), L_S = ||H_SS||
        inner_solver=cd (the paper's): epochs of, for j in S in turn,
            J_j <- J_j - (H_SS J_S + exp(lmbd_S) s)_j / (H_SS)_jj
        inner_solver=ista:
            J_S <- J_S - (H_SS J_S + exp(lmbd_S) s) / L_S,
        each from the previous J_S (its entries on the features still in S),
        until the relative error ||H_SS J_S + exp(lmbd_S) s|| / (mu_S ||J_S||)
        is <= jacobian_tolerance, at most kappa_S log(kappa_S /
        jacobian_tolerance) iterations (kappa_S = L_S / mu_S: enough for the
        ISTA ones in exact arithmetic; measured to suffice for the epochs)
        and at most max_jacobian_steps (a warning, once, if a cap stops it)
        g = J_S^T grad_S F(theta)
        lmbd <- lmbd - rate g    (benchmark_utils/hypergradient_solver.py)
    In the hypergradient study, theta is the N-th inner iterate; where H_SS
    is singular there (early iterates with |S| > n), the estimate is NaN.
    """

    name = "implicit_forward"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    parameters = {
        "step_size": [1.0],
        "inner_tolerance": [1e-8],
        "max_inner_steps": [10_000],
        "inner_solver": ["auto"],
        "max_jacobian_steps": [1_000_000],
        "jacobian_tolerance": [1e-8],
        **HypergradientSolver.full_batch_parameters,
    }
    step_size_parameters = ("step_size", "inner_tolerance", "jacobian_tolerance")
    test_config = {"max_inner_steps": 20, "max_jacobian_steps": 10,
                   "dataset": {"name": "lasso_simulated"}}

    def check_parameters(self):
        super().check_parameters()
        check_iterations("max_inner_steps", self.max_inner_steps)
        check_iterations("max_jacobian_steps", self.max_jacobian_steps)
        if not self.jacobian_tolerance < 1:
            raise ValueError(f"jacobian_tolerance must be in (0, 1), got "
                             f"{self.jacobian_tolerance!r}.")

    def initialize(self):
        self.jacobian = None  # (support, J_S) of the previous estimate
        self.warned = self.warned_singular = False
        super().initialize()

    def optimization_run(self, lmbd, theta0):
        return self.make_run(lmbd, theta0).solve(self.inner_tolerance, self.max_inner_steps)

    def estimate(self, run):
        gradient, self.jacobian = implicit_forward_hypergradient(
            self.problem, run.theta, run.lmbd, self.max_jacobian_steps,
            self.jacobian_tolerance, jacobian0=self.jacobian,
            coordinate_descent=self.inner == "cd")
        if self.jacobian.singular and not self.warned_singular:
            self.warned_singular = True
            size = int(self.jacobian.support.sum())
            warnings.warn(
                f"implicit_forward: H_SS is singular on the support of {size} features "
                f"({self.problem.n_inner_samples} training samples): no Jacobian on the "
                f"support, the estimate is NaN (a diverged run for benchopt). Warned once "
                f"per run.",
                RuntimeWarning, stacklevel=2)
        elif not self.jacobian.converged and not self.warned:
            self.warned = True
            warnings.warn(
                f"implicit_forward: the Jacobian iterations stopped after "
                f"{self.jacobian.n_iterations} steps without reaching jacobian_tolerance="
                f"{self.jacobian_tolerance:g} (support of {int(self.jacobian.support.sum())} "
                f"features, max_jacobian_steps={self.max_jacobian_steps}); raise "
                f"max_jacobian_steps, or jacobian_tolerance if rounding is the limit. "
                f"Warned once per run.",
                RuntimeWarning, stacklevel=2)
        return gradient
