"""Proximal coordinate descent for the Lasso-type inner problems, and its
derivatives (Bertrand, Klopfenstein, Massias, Blondel, Vaiter, Gramfort and
Salmon, "Implicit differentiation of Lasso-type models for hyperparameter
optimization", ICML 2020 / JMLR 2022, Algorithms 1 and 2 and Sect. 3: the
inner solver of every method there).

One epoch updates the coordinates j = 1, ..., p in turn (cyclic), with the
residual r = y - X theta kept up to date and L_j = ||X_j||^2 / n:

    z_j = theta_j + X_j^T r / (n L_j),   theta_j <- ST(z_j, exp(lmbd_j) / L_j),
    r <- r - X_j (theta_j^new - theta_j^old).

Forward mode carries J = dtheta / dlmbd (p x q, q = 1 or p for the weighted
Lasso) and dr = -X J through the same updates (Algorithm 1):

    dz_j = J_j + X_j^T dr / (n L_j),
    J_j <- |s_j| dz_j - exp(lmbd_j) s_j e_j / L_j,   s_j = sign(theta_j^new),

with e_j the column(s) of lmbd acting on j. Reverse mode runs the adjoint of
each coordinate update backwards over the recorded signs (one int8 row per
epoch: theta_j's sign right after its update is its sign at the end of the
epoch). The adjoint of update j is v_j <- 0 after

    g <- g - v_j exp(lmbd_j) s_j e_j / L_j,   v <- v - |s_j| v_j X^T X_j / (n L_j)

(dz_j / dtheta_j = 0, so v_j always ends at 0); v is kept as a - X^T u / n
so that one update costs O(n), as a forward one does. Implicit forward
(Algorithm 2) runs the forward recursion with theta fixed at a solution: on
its support S that is cyclic coordinate descent (Gauss-Seidel) on H_SS J_S =
-exp(lmbd_S) s_S E.

Only the quadratic loss (the Lasso and the weighted Lasso): a coordinate
update of another loss has no closed form, and the problem's ``ISTA`` path
(:mod:`.sparse_hypergradients`) covers it. The updates are sequential, so
they run compiled (numba) on the CPU in the problem's dtype, whatever the
problem's device; results come back as tensors on that device.
"""
import numba
import numpy as np
import torch

from .sparse_hypergradients import InnerIterations, check_iterations, check_truncation

# fastmath lets numba reassociate the sums of the dot products, which then
# vectorize: an epoch on the 200 x 1,000 design is 4.6 times faster (a solve
# at lmbd_max / 100: 0.62 s -> 0.13 s) and the results change at rounding
# level (forward and reverse mode still agree to 1e-15).

@numba.njit(cache=True, fastmath=True)
def _soft_threshold(z, threshold):
    if z > threshold:
        return z - threshold
    if z < -threshold:
        return z + threshold
    return 0.0 * z


@numba.njit(cache=True, fastmath=True)
def _column_dot(X, j, vector):
    total = 0.0 * vector[0]
    for i in range(X.shape[0]):
        total += X[i, j] * vector[i]
    return total


@numba.njit(cache=True, fastmath=True)
def _cd_epochs(X, lipschitz, alpha, theta, residual, n_epochs, signs, first_row):
    """``n_epochs`` epochs in place; the signs after epoch k go to row
    ``first_row + k`` of ``signs`` (when it has rows)."""
    n_samples, n_features = X.shape
    for epoch in range(n_epochs):
        for j in range(n_features):
            if lipschitz[j] == 0:
                continue
            old = theta[j]
            z = old + _column_dot(X, j, residual) / (n_samples * lipschitz[j])
            new = _soft_threshold(z, alpha[j] / lipschitz[j])
            if new != old:
                theta[j] = new
                for i in range(n_samples):
                    residual[i] -= X[i, j] * (new - old)
        if signs.shape[0] > 0:
            for j in range(n_features):
                signs[first_row + epoch, j] = np.sign(theta[j])


@numba.njit(cache=True, fastmath=True)
def _cd_epochs_with_jacobian(X, lipschitz, alpha, theta, residual, jacobian,
                             jacobian_residual, n_epochs, weighted):
    """Forward mode: epochs that also update J (p x q) and dr = -X J (n x q,
    Fortran order: its columns are contiguous)."""
    n_samples, n_features = X.shape
    n_columns = jacobian.shape[1]
    for _ in range(n_epochs):
        for j in range(n_features):
            if lipschitz[j] == 0:
                continue
            scale = 1.0 / (n_samples * lipschitz[j])
            old = theta[j]
            z = old + _column_dot(X, j, residual) * scale
            new = _soft_threshold(z, alpha[j] / lipschitz[j])
            sign = np.sign(new)
            for c in range(n_columns):
                derivative = 0.0 * z
                if sign != 0:
                    derivative = jacobian[j, c] + _column_dot(X, j, jacobian_residual[:, c]) * scale
                    if c == (j if weighted else 0):
                        derivative -= alpha[j] * sign / lipschitz[j]
                change = derivative - jacobian[j, c]
                if change != 0:
                    jacobian[j, c] = derivative
                    for i in range(n_samples):
                        jacobian_residual[i, c] -= X[i, j] * change
            if new != old:
                theta[j] = new
                for i in range(n_samples):
                    residual[i] -= X[i, j] * (new - old)


@numba.njit(cache=True, fastmath=True)
def _cd_adjoint(X, lipschitz, alpha, signs, first_row, last_row, adjoint, gradient):
    """Reverse mode over the epochs ``last_row`` down to ``first_row`` (rows
    of ``signs``), from the adjoint of theta at the end of ``last_row``;
    accumulates into ``gradient`` (one entry per feature)."""
    n_samples, n_features = X.shape
    explicit = adjoint.copy()  # v = explicit - X^T lazy / n
    lazy = np.zeros(n_samples, dtype=adjoint.dtype)
    for epoch in range(last_row, first_row - 1, -1):
        for j in range(n_features - 1, -1, -1):
            if lipschitz[j] == 0:
                continue
            correction = _column_dot(X, j, lazy) / n_samples
            v_j = explicit[j] - correction
            sign = signs[epoch, j]
            if sign == 0:
                explicit[j] = correction  # v_j <- 0
            else:
                gradient[j] -= v_j * alpha[j] * sign / lipschitz[j]
                factor = v_j / lipschitz[j]
                for i in range(n_samples):
                    lazy[i] += factor * X[i, j]


@numba.njit(cache=True, fastmath=True)
def _cd_support_jacobian(hessian, offset, jacobian, n_epochs):
    """Gauss-Seidel epochs on hessian J = -offset (J: Fortran order)."""
    n_support, n_columns = jacobian.shape
    for _ in range(n_epochs):
        for j in range(n_support):
            for c in range(n_columns):
                product = 0.0 * offset[j, c]
                for k in range(n_support):
                    product += hessian[k, j] * jacobian[k, c]
                jacobian[j, c] -= (product + offset[j, c]) / hessian[j, j]


def _numpy(tensor):
    return tensor.detach().cpu().numpy()


class UnrolledCoordinateDescent(InnerIterations):
    """Cyclic proximal coordinate descent on G(., lmbd) from theta0 (a
    constant for differentiation): the interface of
    :class:`~.sparse_hypergradients.UnrolledProximalGradient` (``run``,
    ``solve``, ``theta``, ``n_iterations`` = epochs, ``forward_hypergradient``,
    ``backward_hypergradient``), one iteration being one epoch over the p
    coordinates."""

    def __init__(self, problem, lmbd, theta0, forward=False, record=False):
        if not getattr(problem, "quadratic_datafit", False):
            raise ValueError(f"inner_solver='cd' needs a quadratic datafit (the Lasso); "
                             f"{type(problem).__name__} has none: use inner_solver='ista'.")
        self.problem, self.lmbd = problem, lmbd
        self.X = np.asfortranarray(_numpy(problem.X_inner))
        dtype = self.X.dtype
        self.lipschitz = (self.X ** 2).sum(axis=0) / problem.n_inner_samples
        self.alpha = np.broadcast_to(_numpy(problem.regularization(lmbd)),
                                     (problem.n_features,)).astype(dtype)
        self.weighted = lmbd.numel() > 1
        self._theta = _numpy(theta0).astype(dtype, copy=True)
        self.residual = _numpy(problem.y_inner).astype(dtype) - self.X @ self._theta
        self.n_iterations = 0
        self.jacobian = None
        if forward:
            self.jacobian = np.zeros((problem.n_features, lmbd.numel()), dtype=dtype)
            self.jacobian_residual = np.zeros((problem.n_inner_samples, lmbd.numel()),
                                              dtype=dtype, order="F")
        self.record = record
        self._signs = np.empty((0 if not record else 16, problem.n_features), dtype=np.int8)

    @property
    def theta(self):
        return torch.from_numpy(self._theta.copy()).to(self.problem.X_inner.device)

    def run(self, n_iterations):
        """``n_iterations`` more epochs."""
        check_iterations("n_iterations", n_iterations, minimum=0)
        if self.jacobian is not None:
            _cd_epochs_with_jacobian(self.X, self.lipschitz, self.alpha, self._theta,
                                     self.residual, self.jacobian, self.jacobian_residual,
                                     n_iterations, self.weighted)
        else:
            if self.record and self.n_iterations + n_iterations > self._signs.shape[0]:
                grown = np.empty((max(self.n_iterations + n_iterations,
                                      2 * self._signs.shape[0]), self._signs.shape[1]),
                                 dtype=np.int8)
                grown[:self.n_iterations] = self._signs[:self.n_iterations]
                self._signs = grown
            _cd_epochs(self.X, self.lipschitz, self.alpha, self._theta, self.residual,
                       n_iterations, self._signs, self.n_iterations)
        self.n_iterations += n_iterations
        return self

    def forward_hypergradient(self):
        """J_N^T grad_theta F(theta_N) + grad_lmbd F (forward mode)."""
        theta = self.theta
        grad_theta_outer, grad_lmbd_outer = self.problem.outer_gradients(theta, self.lmbd)
        jacobian = torch.from_numpy(self.jacobian).to(theta.device)
        return grad_lmbd_outer + jacobian.T @ grad_theta_outer

    def backward_hypergradient(self, truncation=None):
        """The same derivative by reverse mode over the last ``truncation``
        epochs (None: all), theta at the start of those epochs held constant."""
        if not self.record:
            raise ValueError("backward_hypergradient needs record=True.")
        check_truncation(truncation, self.n_iterations)
        n = self.n_iterations
        first = n - (n if truncation is None else truncation)
        theta = self.theta
        grad_theta_outer, grad_lmbd_outer = self.problem.outer_gradients(theta, self.lmbd)
        gradient = np.zeros(self.problem.n_features, dtype=self.X.dtype)
        if n > first:
            _cd_adjoint(self.X, self.lipschitz, self.alpha, self._signs, first, n - 1,
                        _numpy(grad_theta_outer).astype(self.X.dtype), gradient)
        gradient = torch.from_numpy(gradient).to(theta.device)
        if not self.weighted:
            gradient = gradient.sum().reshape(1)
        return grad_lmbd_outer + gradient


class SupportJacobianDescent:
    """Gauss-Seidel epochs (coordinate descent, Bertrand et al. Algorithm 2)
    on H_SS J_S = -offset from ``jacobian``, H_SS the Hessian on the support
    S: ``run(n_epochs)``, then ``jacobian`` (a tensor on the device of
    ``jacobian``). One epoch costs |S|^2 q with H_SS formed (the problem
    forms it anyway to certify the error), n |S| q through X_S."""

    def __init__(self, hessian, offset, jacobian):
        self.device = jacobian.device
        self.hessian = np.asfortranarray(_numpy(hessian))
        self.offset = np.asfortranarray(_numpy(offset))
        self._jacobian = np.asfortranarray(_numpy(jacobian)).copy(order="F")

    @property
    def jacobian(self):
        return torch.from_numpy(np.ascontiguousarray(self._jacobian)).to(self.device)

    def run(self, n_epochs):
        _cd_support_jacobian(self.hessian, self.offset, self._jacobian, n_epochs)
        return self
