"""Full-data value function h, its gradient and related quantities, the
references against which solvers are scored (float64 on the CPU in the
objective)."""
import torch


class ValueFunction:
    """h(lmbd) = F(theta*(lmbd), lmbd) of a problem, with theta*(lmbd) and
    the linear-system solution warm-started from the previous call (the
    objective evaluates a slowly moving sequence of lmbd).

    ``inner_tol``: ||grad_theta G(theta*)|| reached by Newton-CG;
    ``linear_system_tol``: relative CG residual for grad h.
    """

    def __init__(self, problem, inner_tol=1e-10, linear_system_tol=1e-10):
        self.problem = problem
        self.inner_tol, self.linear_system_tol = inner_tol, linear_system_tol
        self._theta_star, self._v = None, None

    def theta_star(self, lmbd):
        theta_star = self.problem.solve_inner(lmbd, theta0=self._theta_star, tol=self.inner_tol)
        if bool(torch.isfinite(theta_star).all()):
            self._theta_star = theta_star
        return theta_star

    def value_and_gradient(self, lmbd):
        """(h(lmbd), grad h(lmbd), theta*(lmbd))."""
        theta_star = self.theta_star(lmbd)
        value = self.problem.outer_loss(theta_star, lmbd)
        gradient, v = self.problem.hypergradient(theta_star, lmbd, v0=self._v,
                                                 tol=self.linear_system_tol)
        if bool(torch.isfinite(v).all()):
            self._v = v
        return value, gradient, theta_star
