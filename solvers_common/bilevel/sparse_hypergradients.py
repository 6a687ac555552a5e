"""Hypergradients through a non-smooth inner problem (the l1-regularized
problems of :mod:`.sparse`), after Bertrand, Klopfenstein, Massias, Blondel,
Vaiter, Gramfort and Salmon ("Implicit differentiation of Lasso-type models
for hyperparameter optimization", ICML 2020; JMLR 2022).

The inner algorithm is proximal gradient descent (ISTA) with step 1/L,

    theta_{k+1} = ST(u_k, exp(lmbd) / L),   u_k = theta_k - grad f(theta_k) / L,

whose derivative is diagonal in the soft-thresholding: with s_{k+1} =
sign(theta_{k+1}) (zero off the support) and H_k = X^T diag(f''(X theta_k)) X,

    J_{k+1} = |s_{k+1}| (I - H_k / L) J_k - exp(lmbd) s_{k+1} / L     (J_k = dtheta_k / dlmbd).

Four estimators of grad h(lmbd) = J^T grad F(theta):

- ITD forward (:meth:`UnrolledProximalGradient.forward_hypergradient`): the
  recursion above carried along the iterations (forward mode).
- ITD backward (:meth:`UnrolledProximalGradient.backward_hypergradient`):
  the same derivative in reverse mode over the recorded signs, optionally
  truncated to the last K iterations (theta_{N-K} a constant).
- implicit (:func:`implicit_hypergradient`): on the support S of theta,
  H_SS v = grad_S F solved directly, grad h = -exp(lmbd) s v.
- implicit forward (:func:`implicit_forward_hypergradient`): the recursion
  above restricted to S and run at the (fixed) solution, with the step
  1/L_S of the problem restricted to S, until the error of the Jacobian,
  bounded by its residual over the smallest eigenvalue of H_SS, is below a
  relative tolerance (Bertrand et al., Algorithm 2, with ISTA's iterations
  or, ``coordinate_descent=True``, the paper's coordinate-descent epochs),
  warm-started from the previous one.

The same four through proximal coordinate descent (the paper's inner
solver, quadratic losses): :mod:`.sparse_cd`.

Free of benchopt; torch on the problem's device and dtype.
"""
import math
import numbers
from typing import NamedTuple, Optional

import torch


def check_iterations(name, value, minimum=1):
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an integer >= minimum
    (an integral float such as 10.0 included)."""
    # The type first: int() of a string or of infinity raises its own error,
    # which would not name the parameter.
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or int(value) != value or value < minimum):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def check_truncation(truncation, n_iterations):
    """``truncation`` K of backpropagation: None (all N iterations) or an
    integer with 0 <= K <= N."""
    if truncation is None:
        return
    check_iterations("truncation", truncation, minimum=0)
    if truncation > n_iterations:
        raise ValueError(f"truncation must be <= the number of inner iterations "
                         f"{n_iterations}, got {truncation}.")


class InnerIterations:
    """What the inner solvers (proximal gradient here, coordinate descent in
    :mod:`.sparse_cd`) share: given ``run(n)``, ``theta``, ``n_iterations``,
    ``problem`` and ``lmbd``, iterate to a duality gap."""

    def solve(self, tol, max_iter, check_every=10):
        """Iterate until the relative duality gap is <= ``tol`` (checked every
        ``check_every`` iterations) or ``max_iter`` iterations in all."""
        while self.n_iterations < max_iter:
            if self.problem.duality_gap(self.theta, self.lmbd)[0] <= tol:
                break
            self.run(min(check_every, max_iter - self.n_iterations))
        return self


class UnrolledProximalGradient(InnerIterations):
    """ISTA on G(., lmbd) from theta0 (a constant for differentiation).

    ``forward``: also carry J_k = dtheta_k / dlmbd, shape (p, q), q = 1 or p
    (weighted problems). ``record``: keep what reverse mode needs, the signs
    of every iterate (int8) and, for non-quadratic losses, the curvatures.
    """

    def __init__(self, problem, lmbd, theta0, forward=False, record=False):
        self.problem, self.lmbd = problem, lmbd
        self.step = 1.0 / problem.lipschitz
        self.alpha = problem.regularization(lmbd)
        self.threshold = self.step * self.alpha
        self.scalar = lmbd.numel() == 1
        self.scalar_threshold = float(self.threshold) if self.scalar else None
        self.XT = problem.X_inner.T.contiguous()
        self.theta = theta0.clone()
        self.n_iterations = 0
        self.jacobian = (torch.zeros(problem.n_features, lmbd.numel(), dtype=theta0.dtype,
                                     device=theta0.device) if forward else None)
        self.record = record
        self.constant_curvature = problem.quadratic_datafit
        self._signs = torch.empty(0, problem.n_features, dtype=torch.int8,
                                  device=theta0.device)
        self._curvatures = []

    # -- the iterations ------------------------------------------------------
    def run(self, n_iterations):
        """``n_iterations`` more ISTA iterations."""
        check_iterations("n_iterations", n_iterations, minimum=0)
        if self.record:
            self._reserve(self.n_iterations + n_iterations)
        for _ in range(n_iterations):
            if self.jacobian is None:
                self._step()
            else:
                self._step_with_jacobian()
            if self.record:
                self._signs[self.n_iterations] = torch.sign(self.theta)
            self.n_iterations += 1
        return self

    def _reserve(self, n_rows):
        if n_rows > self._signs.shape[0]:
            grown = torch.empty(max(n_rows, 2 * self._signs.shape[0]), self._signs.shape[1],
                                dtype=torch.int8, device=self._signs.device)
            grown[:self.n_iterations] = self._signs[:self.n_iterations]
            self._signs = grown

    def _threshold(self, u):
        if self.scalar:
            return torch.nn.functional.softshrink(u, self.scalar_threshold)
        return self.problem.prox(u, self.step, self.lmbd)

    def _step(self):
        problem = self.problem
        z = problem.X_inner @ self.theta
        if self.record and not self.constant_curvature:
            self._curvatures.append(problem.datafit_curvature(z, problem.y_inner))
        # Matrix-vector products (two of them cost less than one product
        # with a matrix of two columns on the CPU).
        u = torch.addmv(self.theta, self.XT, problem.datafit_gradient(z, problem.y_inner),
                        alpha=-self.step)
        self.theta = self._threshold(u)

    def _step_with_jacobian(self):
        problem, X = self.problem, self.problem.X_inner
        z = X @ self.theta
        curvature = problem.datafit_curvature(z, problem.y_inner)
        if self.record and not self.constant_curvature:
            self._curvatures.append(curvature)
        u = torch.addmv(self.theta, self.XT, problem.datafit_gradient(z, problem.y_inner),
                        alpha=-self.step)
        self.theta = self._threshold(u)
        signs = torch.sign(self.theta)
        if self.scalar:
            j = self.jacobian[:, 0]
            j = torch.addmv(j, self.XT, curvature * (X @ j), alpha=-self.step)
            self.jacobian = (signs.abs() * j - self.scalar_threshold * signs)[:, None]
        else:
            jacobian = self.jacobian - self.step * (self.XT @ (curvature[:, None]
                                                                * (X @ self.jacobian)))
            jacobian = signs.abs()[:, None] * jacobian
            jacobian.diagonal().sub_(self.threshold * signs)
            self.jacobian = jacobian

    # -- the hypergradients ----------------------------------------------------
    def forward_hypergradient(self):
        """J_N^T grad_theta F(theta_N) + grad_lmbd F (ITD, forward mode)."""
        grad_theta_outer, grad_lmbd_outer = self.problem.outer_gradients(self.theta, self.lmbd)
        return grad_lmbd_outer + self.jacobian.T @ grad_theta_outer

    def backward_hypergradient(self, truncation=None):
        """The same derivative by reverse mode over the last ``truncation``
        iterations (None: all of them), theta_{N-K} held constant."""
        if not self.record:
            raise ValueError("backward_hypergradient needs record=True.")
        check_truncation(truncation, self.n_iterations)
        n = self.n_iterations
        first = n - (n if truncation is None else truncation)
        problem, X = self.problem, self.problem.X_inner
        grad_theta_outer, grad_lmbd_outer = problem.outer_gradients(self.theta, self.lmbd)
        adjoint = grad_theta_outer
        accumulated = torch.zeros_like(adjoint)  # sum_k s_{k+1} * (adjoint of u_k)
        constant = (problem.datafit_curvature(X[:, 0], problem.y_inner)
                    if self.constant_curvature else None)
        chunk = 256
        for end in range(n, first, -chunk):
            start = max(first, end - chunk)
            signs = self._signs[start:end].to(adjoint.dtype)
            masks = signs.abs()
            for k in range(end - 1, start - 1, -1):
                u = masks[k - start] * adjoint
                accumulated += signs[k - start] * u
                if k > first:
                    curvature = constant if constant is not None else self._curvatures[k]
                    adjoint = torch.addmv(u, self.XT, curvature * (X @ u), alpha=-self.step)
        gradient = -self.threshold * accumulated
        gradient = gradient if gradient.numel() == grad_lmbd_outer.numel() \
            else gradient.sum().reshape(1)
        return grad_lmbd_outer + gradient


def implicit_hypergradient(problem, theta, lmbd):
    """Implicit differentiation on the support of theta: a direct solve of
    H_SS v = grad_S F (exact at theta*)."""
    return problem.hypergradient(theta, lmbd)[0]


class JacobianState(NamedTuple):
    """What :func:`implicit_forward_hypergradient` hands back besides the
    hypergradient: the support S and J_S (rows: S; columns: the lmbd that act
    on S), to warm-start the next call, the number of Jacobian iterations run,
    whether the certified relative error reached the tolerance, and whether
    H_SS was numerically singular (no Jacobian on S)."""
    support: torch.Tensor
    jacobian: Optional[torch.Tensor]
    n_iterations: int = 0
    converged: bool = True
    singular: bool = False


def _warm_start(jacobian0, support, n_columns, weighted, like):
    """J_S from a previous ``(support, J)``: its rows (and, for one lmbd per
    feature, its columns) on the features of ``support`` that it had, zero on
    the others."""
    previous_support, previous = jacobian0[0], jacobian0[1]
    if previous is None or previous.shape[1] != (int(previous_support.sum()) if weighted
                                                 else n_columns):
        return torch.zeros(int(support.sum()), n_columns, dtype=like.dtype, device=like.device)
    rows = previous.new_zeros(support.numel(), previous.shape[1])
    rows[previous_support] = previous
    jacobian = rows[support]
    if weighted:
        columns = jacobian.new_zeros(jacobian.shape[0], support.numel())
        columns[:, previous_support] = jacobian
        jacobian = columns[:, support]
    return jacobian.contiguous()


def implicit_forward_hypergradient(problem, theta, lmbd, max_iterations=100_000, tol=1e-10,
                                   jacobian0=None, check_every=10, coordinate_descent=False):
    """Implicit forward differentiation: at theta (a solution), iterate

        J_S <- J_S - (H_SS J_S + exp(lmbd_S) s E) / L_S

    (the forward-mode recursion of ISTA with the support and signs fixed,
    E the columns of lmbd that act on S, L_S and mu_S the largest and
    smallest eigenvalues of H_SS) from ``jacobian0`` (a previous
    ``(support, J_S)``, e.g. the returned state: its entries on the features
    still in the support, zero elsewhere) until the relative error of J_S is
    certified below ``tol``: ||J_S - J*_S|| <= ||R|| / mu_S <= tol ||J_S||,
    R = H_SS J_S + exp(lmbd_S) s E the residual, checked every
    ``check_every`` iterations. (A relative change of the iterates below
    ``tol`` is not enough: the iterations contract by 1 - 1/kappa, kappa =
    L_S / mu_S, so the error can be kappa times the change.)

    The budget is the number of iterations that suffices in exact arithmetic,
    kappa log(kappa e_0 / (tol ||J*||)) with e_0 bounding the initial error,
    capped at ``max_iterations``; when it is spent first, the state says
    ``converged=False`` (the caller decides whether to warn).

    ``coordinate_descent``: one iteration is a cyclic coordinate-descent
    (Gauss-Seidel) epoch over S instead, J_j <- J_j - (H_SS J + exp(lmbd_S) s
    E)_j / (H_SS)_jj for j in S in turn, as in the paper (quadratic losses
    only; :class:`.sparse_cd.SupportJacobianDescent`), same stopping rule
    and budget.
    Returns ``(hypergradient, JacobianState)``."""
    check_iterations("max_iterations", max_iterations)
    check_iterations("check_every", check_every)
    if not 0 < tol < 1:
        raise ValueError(f"tol must be in (0, 1), got {tol!r}.")
    if coordinate_descent and not problem.quadratic_datafit:
        raise ValueError(f"coordinate_descent=True needs a quadratic datafit; "
                         f"{type(problem).__name__} has none.")
    support = theta != 0
    grad_theta_outer, grad_lmbd_outer = problem.outer_gradients(theta, lmbd)
    if not bool(support.any()):
        return grad_lmbd_outer.clone(), JacobianState(support, None)
    signs = torch.sign(theta[support])
    alpha = problem.regularization(lmbd).expand(problem.n_features)[support]
    hessian = problem.support_hessian(theta, support)
    eigenvalues = torch.linalg.eigvalsh(hessian)
    largest = float(eigenvalues[-1])
    # H_SS is positive definite at a Lasso solution (X_S has full column
    # rank). At an iterate whose support is numerically rank-deficient (for
    # example |S| > n early in the iterations), J_S is not determined and the
    # iterations do not converge (they grow without bound): the estimate is
    # NaN, ``singular`` says why.
    smallest = float(eigenvalues[0])
    if smallest <= largest * torch.finfo(hessian.dtype).eps * len(eigenvalues):
        return (torch.full_like(grad_lmbd_outer, math.nan),
                JacobianState(support, None, 0, False, singular=True))
    kappa = largest / smallest
    step = 1.0 / largest
    weighted = lmbd.numel() > 1
    offset = torch.diag(alpha * signs) if weighted else (alpha * signs)[:, None]
    if jacobian0 is None:
        jacobian = torch.zeros_like(offset)
    else:
        jacobian = _warm_start(jacobian0, support, offset.shape[1], weighted, offset)
    # ||J*|| >= ||offset|| / L_S and ||J_0 - J*|| <= ||J_0|| + ||offset|| / mu_S.
    offset_norm = float(torch.linalg.matrix_norm(offset))
    initial_error = (float(torch.linalg.matrix_norm(jacobian)) * largest / offset_norm
                     + kappa) if offset_norm > 0 else 1.0
    needed = kappa * math.log(max(kappa * initial_error / tol, math.e)) + check_every
    budget = int(min(max_iterations, math.ceil(needed)))
    n_iterations, converged = 0, False
    if coordinate_descent:
        # Imported here: sparse_cd builds on this module's checks.
        from .sparse_cd import SupportJacobianDescent
        descent = SupportJacobianDescent(hessian, offset, jacobian)
    while True:
        check = n_iterations % check_every == 0 or n_iterations == budget
        residual = (torch.addmm(offset, hessian, jacobian)
                    if check or not coordinate_descent else None)
        if check:
            if float(torch.linalg.matrix_norm(residual)) <= tol * smallest * float(
                    torch.linalg.matrix_norm(jacobian)):
                converged = True
                break
        if n_iterations == budget:
            break
        if coordinate_descent:
            n_epochs = min(check_every, budget - n_iterations)
            jacobian = descent.run(n_epochs).jacobian
            n_iterations += n_epochs
        else:
            jacobian = torch.add(jacobian, residual, alpha=-step)
            n_iterations += 1
    projected = jacobian.T @ grad_theta_outer[support]
    gradient = grad_lmbd_outer.clone()
    if weighted:
        gradient[support] += projected
    else:
        gradient += projected
    return gradient, JacobianState(support, jacobian, n_iterations, converged)


def fista_with_support_solve(problem, lmbd, theta0, tol, max_iter, check_every=10):
    """theta*(lmbd) to a relative duality gap ``tol``: FISTA (Beck and
    Teboulle 2009) with gradient restart (O'Donoghue and Candes 2015); every
    ``check_every`` iterations, once the support has not changed since the
    previous check, the exact minimizer on that support and signs
    (``problem.support_solve``) is tried and kept if its signs agree and its
    gap reaches ``tol``. Returns theta (the last iterate if ``max_iter`` runs
    out first)."""
    step = 1.0 / problem.lipschitz
    theta, extrapolated, t = theta0.clone(), theta0.clone(), 1.0
    previous_support = None
    for iteration in range(max_iter + 1):
        if iteration % check_every == 0:
            if problem.duality_gap(theta, lmbd)[0] <= tol:
                return theta
            support = theta != 0
            if previous_support is not None and torch.equal(support, previous_support) \
                    and bool(support.any()):
                signs = torch.sign(theta[support])
                candidate = problem.support_solve(theta, lmbd, support, signs)
                if candidate is not None and torch.equal(torch.sign(candidate[support]), signs) \
                        and problem.duality_gap(candidate, lmbd)[0] <= tol:
                    return candidate
            previous_support = support
            if iteration == max_iter:
                break
        gradient = problem.smooth_gradient(extrapolated)
        new = problem.prox(extrapolated - step * gradient, step, lmbd)
        if float((extrapolated - new) @ (new - theta)) > 0:  # restart the momentum
            t, extrapolated = 1.0, new
        else:
            t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
            extrapolated = new + (t - 1) / t_new * (new - theta)
            t = t_new
        theta = new
    return theta


class OuterGradientDescent:
    """Gradient descent on lmbd with sparse-ho's adaptive step (Bertrand et
    al.'s experiments): steps of length ``step_size`` along -g / ||g|| for
    the first 20 iterations, until the validation loss first goes up; from
    then on the step is kept, and divided by 10 whenever the loss goes up.
    Kept as the paper's baseline (benchmarks/hyperparameter_search.py): from
    lmbd_max / 1000 it stalls far from the best lmbd, every increase of the
    loss dividing the step for good; the solvers use
    :class:`BacktrackingGradientDescent`."""

    def __init__(self, step_size):
        self.step_size = step_size
        self.rate, self.has_gone_up, self.previous_value, self.iteration = None, False, None, 0

    def update(self, lmbd, gradient, value):
        """The next lmbd, from the hypergradient and the validation loss at lmbd."""
        if self.previous_value is not None and value > self.previous_value:
            self.rate, self.has_gone_up = self.rate / 10, True
        if (self.rate is None or self.iteration < 20) and not self.has_gone_up:
            self.rate = self.step_size / (float(torch.linalg.vector_norm(gradient)) + 1e-12)
        self.previous_value, self.iteration = value, self.iteration + 1
        return lmbd - self.rate * gradient


class BacktrackingGradientDescent:
    """Gradient descent on lmbd with a backtracking line search on the
    validation loss h (Armijo, "Minimization of functions having Lipschitz
    continuous first partial derivatives", Pacific J. Math. 1966; Nocedal and
    Wright, "Numerical Optimization", 2006, Algorithm 3.1), one inner solve
    per trial point:

        first point lmbd_0: accepted, rate t = step_size / ||g_0|| (a step
            of length step_size in lmbd, i.e. in log(regularization))
        trial lmbd' = lmbd_a - t g_a from the last accepted point lmbd_a;
        h(lmbd') <= h(lmbd_a) - c t ||g_a||^2: accepted, t <- growth t;
        otherwise (also a NaN loss): rejected, t <- t / 2.

    ``update`` takes the point just evaluated (lmbd, hypergradient, loss) and
    returns the next trial; ``accepted`` is the best point so far, (lmbd,
    its loss), None before the first. t only shrinks on a failed sufficient
    decrease, so the iterates never go up and, where g is a descent
    direction, never stall at a rate fixed by an early increase (the failure
    of :class:`OuterGradientDescent`)."""

    def __init__(self, step_size, sufficient_decrease=1e-4, growth=2.0):
        self.step_size, self.c, self.growth = step_size, sufficient_decrease, growth
        self.rate, self.accepted, self._gradient = None, None, None

    def update(self, lmbd, gradient, value):
        if self.accepted is None:
            self.rate = self.step_size / (float(torch.linalg.vector_norm(gradient)) + 1e-12)
            self._accept(lmbd, gradient, value)
        elif value <= self.accepted[1] - self.c * self.rate * float(
                torch.linalg.vector_norm(self._gradient)) ** 2:
            self.rate *= self.growth
            self._accept(lmbd, gradient, value)
        else:
            self.rate /= 2
        return self.accepted[0] - self.rate * self._gradient

    def _accept(self, lmbd, gradient, value):
        self.accepted, self._gradient = (lmbd, value), gradient
