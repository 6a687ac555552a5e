"""Bilevel problems whose inner problem is non-smooth: l1-regularized (Lasso-type) models.

Held-out selection of the regularization of a sparse linear model (Bertrand,
Klopfenstein, Massias, Blondel, Vaiter, Gramfort and Salmon, "Implicit
differentiation of Lasso-type models for hyperparameter optimization", ICML
2020; JMLR 2022):

    theta*(lmbd) = argmin over theta of G(theta, lmbd),
    G(theta, lmbd) = f(X_inner theta) + sum_j exp(lmbd_j) |theta_j|,
    h(lmbd) = F(theta*(lmbd)), F a loss on the validation (outer) samples,

with f the mean training loss (``1/(2 n) ||y - X theta||^2`` for the Lasso, the
logistic loss for sparse logistic regression). ``lmbd`` has one entry (one
regularization for every feature) or, for the weighted models, one per
feature. G is not differentiable, so these problems have no
``inner_gradient`` / ``inner_hessian_vector``: they declare
``smooth_inner = False`` and instead expose the pieces proximal algorithms
need: the smooth part's gradient, the soft-thresholding, a Lipschitz
constant, the curvature of f and a duality gap.

The hypergradient (Bertrand et al. 2022, Theorem 2). Where theta*(lmbd) has
support S and signs s, and the Hessian H_SS = X_S^T diag(f'') X_S of f on S is
invertible, theta* is differentiable with dtheta*_{S^c} = 0 and

    H_SS dtheta*_S / dlmbd = -diag(exp(lmbd) s)      (weighted: one column per feature of S)

so that grad h = -exp(lmbd) s * (H_SS^{-1} grad_S F) (summed over S when lmbd
is a scalar). :meth:`SparseBilevelProblem.hypergradient` evaluates it with a
direct solve, the reference of the suite; the algorithms that estimate it
live in :mod:`.sparse_hypergradients`.
"""
import math

import torch

from ..prox import soft_threshold
from .problems import FULL_BATCH, BilevelProblem, _as_tensor


def check_design(X_inner, y_inner, X_outer, y_outer):
    """Raise ``ValueError`` naming the argument when the designs and targets
    do not fit together."""
    for name, X in (("X_inner", X_inner), ("X_outer", X_outer)):
        if X.ndim != 2:
            raise ValueError(f"{name} must be a matrix (n_samples, n_features), "
                             f"got shape {tuple(X.shape)}.")
    for name, y, X_name, X in (("y_inner", y_inner, "X_inner", X_inner),
                               ("y_outer", y_outer, "X_outer", X_outer)):
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(f"{name} must be a vector of the {X.shape[0]} samples of "
                             f"{X_name}, got shape {tuple(y.shape)}.")
    if X_inner.shape[1] != X_outer.shape[1]:
        raise ValueError(f"X_outer has {X_outer.shape[1]} features but X_inner has "
                         f"{X_inner.shape[1]}; they must have the same columns.")


class SparseBilevelProblem(BilevelProblem):
    """Base of the l1-regularized problems; subclasses define the training
    loss through :meth:`datafit` (f on predictions), :meth:`datafit_gradient`
    (df/dz, one entry per sample, the 1/n included), :meth:`datafit_curvature`
    (d2f/dz2 per sample), :meth:`dual_value` and the outer loss.

    ``weighted``: one regularization exp(lmbd_j) per feature (the weighted
    Lasso) instead of one for all.
    """

    smooth_inner = False
    # Relative duality gap of the reference inner solution (the objective's).
    reference_inner_tol = 1e-12
    sample_tensors = ("X_inner", "y_inner", "X_outer", "y_outer")
    # Upper bound on the curvature of the loss of one sample (f'').
    curvature_bound = 1.0

    def __init__(self, X_inner, y_inner, X_outer, y_outer, weighted=False):
        self.X_inner, self.y_inner = _as_tensor(X_inner), _as_tensor(y_inner)
        self.X_outer, self.y_outer = _as_tensor(X_outer), _as_tensor(y_outer)
        check_design(self.X_inner, self.y_inner, self.X_outer, self.y_outer)
        self.weighted = bool(weighted)
        self.n_inner_samples, self.n_outer_samples = len(self.y_inner), len(self.y_outer)
        self.n_features = self.X_inner.shape[1]
        # Lipschitz constant of grad f: ||X||_2^2 f''_max / n (float64, once).
        spectral_norm = float(torch.linalg.matrix_norm(self.X_inner, ord=2))
        self.lipschitz = spectral_norm ** 2 * self.curvature_bound / self.n_inner_samples

    # -- the problem ---------------------------------------------------------
    def regularization(self, lmbd):
        """exp(lmbd), broadcastable against theta."""
        return torch.exp(lmbd)

    def lmbd_max(self):
        """log of the smallest regularization with theta* = 0:
        log ||grad f(0)||_inf."""
        zero = torch.zeros(self.n_features, dtype=self.dtype, device=self.device)
        return math.log(float(self.smooth_gradient(zero).abs().max()))

    def initial_point(self):
        """theta = 0 and exp(lmbd) = lmbd_max / 10 (Bertrand et al.'s start)."""
        size = self.n_features if self.weighted else 1
        options = dict(dtype=self.dtype, device=self.device)
        return (torch.zeros(self.n_features, **options),
                torch.full((size,), self.lmbd_max() - math.log(10.0), **options))

    def inner_loss(self, theta, lmbd, batch=FULL_BATCH):
        z = self.X_inner[batch] @ theta
        return (self.datafit(z, self.y_inner[batch])
                + (self.regularization(lmbd) * theta.abs()).sum())

    def smooth_gradient(self, theta):
        """grad f(theta) on the full training data."""
        return self.X_inner.T @ self.datafit_gradient(self.X_inner @ theta, self.y_inner)

    def prox(self, z, step, lmbd):
        """Proximal operator of step sum_j exp(lmbd_j) |.|."""
        return soft_threshold(z, step * self.regularization(lmbd))

    def support_hessian(self, theta, support):
        """H_SS = X_S^T diag(f''(X theta)) X_S, the Hessian of f on the
        features ``support`` (a boolean mask) at theta."""
        X_S = self.X_inner[:, support]
        curvature = self.datafit_curvature(self.X_inner @ theta, self.y_inner)
        return X_S.T @ (curvature[:, None] * X_S)

    def duality_gap(self, theta, lmbd):
        """(relative duality gap, primal value) at theta. The dual point is
        -n grad f(X theta) rescaled into the dual feasible set
        {|X_j^T xi| / n <= exp(lmbd_j)}."""
        z = self.X_inner @ theta
        gradient = self.datafit_gradient(z, self.y_inner)
        alpha = self.regularization(lmbd)
        scale = torch.clamp(((self.X_inner.T @ gradient).abs() / alpha).max(), min=1.0)
        primal = self.datafit(z, self.y_inner) + (alpha * theta.abs()).sum()
        dual = self.dual_value(-gradient * self.n_inner_samples / scale)
        return float((primal - dual) / primal.abs().clamp_min(1e-300)), float(primal)

    # -- full-data solvers ---------------------------------------------------
    def solve_inner(self, lmbd, theta0=None, tol=None, max_iter=100_000):
        """theta*(lmbd) to a relative duality gap ``tol`` (default
        ``reference_inner_tol``): FISTA with gradient restart, and every 10
        iterations an exact solve on the current support and signs, kept when
        the signs agree and the duality gap reaches ``tol``. Runs in the
        problem's dtype (float64 for the references)."""
        from .sparse_hypergradients import fista_with_support_solve
        tol = self.reference_inner_tol if tol is None else tol
        theta0 = torch.zeros(self.n_features, dtype=self.dtype, device=self.device) \
            if theta0 is None else theta0
        return fista_with_support_solve(self, lmbd, theta0, tol, max_iter)

    def support_solve(self, theta, lmbd, support, signs):
        """Minimizer of G restricted to ``support`` with the signs ``signs``
        fixed (a smooth problem): Newton's method from theta (one step for
        the Lasso). None when the Hessian on the support is singular."""
        alpha = self.regularization(lmbd).expand(self.n_features)[support]
        theta = theta.clone()
        for _ in range(self.support_newton_steps):
            gradient = self.smooth_gradient(theta)[support] + alpha * signs
            hessian = self.support_hessian(theta, support)
            factor, info = torch.linalg.cholesky_ex(hessian)
            if int(info) != 0:
                return None
            theta[support] -= torch.cholesky_solve(gradient[:, None], factor)[:, 0]
            if float(gradient.abs().max()) < 1e-15 * max(1.0, float(alpha.max())):
                break
        return theta

    def hypergradient(self, theta, lmbd, v0=None, tol=None):
        """(grad h, v): the implicit hypergradient on the support S of theta,
        v = H_SS^{-1} grad_S F (zero off S), exact at theta = theta*(lmbd)
        where H_SS is invertible. Solved directly (``v0`` and ``tol`` are
        accepted for the smooth problems' signature and unused)."""
        support = theta != 0
        grad_theta_outer, grad_lmbd_outer = self.outer_gradients(theta, lmbd)
        v = torch.zeros_like(theta)
        if bool(support.any()):
            v[support] = solve_symmetric(self.support_hessian(theta, support),
                                         grad_theta_outer[support])
        return grad_lmbd_outer + self.lmbd_gradient(theta, lmbd, v), v

    def lmbd_gradient(self, theta, lmbd, v):
        """-d/dlmbd of the optimality condition applied to v:
        -exp(lmbd) sign(theta) v, summed over features for a scalar lmbd."""
        product = -self.regularization(lmbd) * torch.sign(theta) * v
        return product if self.weighted else product.sum().reshape(1)


def solve_symmetric(matrix, right_hand_side):
    """matrix^{-1} b for a symmetric positive semi-definite matrix: Cholesky,
    or least squares (minimum norm) when it is singular."""
    factor, info = torch.linalg.cholesky_ex(matrix)
    if int(info) == 0:
        return torch.cholesky_solve(right_hand_side[:, None], factor)[:, 0]
    return torch.linalg.lstsq(matrix, right_hand_side[:, None], driver="gelsd"
                              if matrix.device.type == "cpu" else None).solution[:, 0]


class LassoProblem(SparseBilevelProblem):
    """Held-out Lasso: G = 1/(2 n) ||y_inner - X_inner theta||^2 +
    sum_j exp(lmbd_j) |theta_j|, F = 1/n_outer ||y_outer - X_outer theta||^2
    (the validation mean squared error, sparse-ho's HeldOutMSE).
    ``weighted=True``: the weighted Lasso, one lmbd_j per feature."""

    curvature_bound = 1.0
    support_newton_steps = 1
    quadratic_datafit = True

    def datafit(self, z, y):
        return 0.5 * ((z - y) ** 2).mean()

    def datafit_gradient(self, z, y):
        return (z - y) / len(y)

    def datafit_curvature(self, z, y):
        return torch.full_like(z, 1.0 / len(y))

    def dual_value(self, xi):
        # max over xi of 1/(2n) (||y||^2 - ||y - xi||^2)
        y = self.y_inner
        return 0.5 * ((y ** 2).sum() - ((y - xi) ** 2).sum()) / len(y)

    def outer_loss(self, theta, lmbd, batch=FULL_BATCH):
        return ((self.X_outer[batch] @ theta - self.y_outer[batch]) ** 2).mean()

    def outer_gradients(self, theta, lmbd, batch=FULL_BATCH):
        X, y = self.X_outer[batch], self.y_outer[batch]
        return 2 * X.T @ (X @ theta - y) / len(y), torch.zeros_like(lmbd)


class SparseLogisticRegressionProblem(SparseBilevelProblem):
    """Held-out sparse logistic regression: G = mean_i log(1 + exp(-y_i
    x_i^T theta)) + sum_j exp(lmbd_j) |theta_j| on the training set, F the
    mean logistic loss on the validation set. Labels in {-1, +1}."""

    curvature_bound = 0.25
    support_newton_steps = 30
    quadratic_datafit = False

    def __init__(self, X_inner, y_inner, X_outer, y_outer, weighted=False):
        super().__init__(X_inner, y_inner, X_outer, y_outer, weighted)
        for y in (self.y_inner, self.y_outer):
            if not bool(((y == 1) | (y == -1)).all()):
                raise ValueError("y_inner and y_outer must hold labels in {-1, +1}.")

    def datafit(self, z, y):
        return torch.nn.functional.softplus(-y * z).mean()

    def datafit_gradient(self, z, y):
        return -y * torch.sigmoid(-y * z) / len(y)

    def datafit_curvature(self, z, y):
        probabilities = torch.sigmoid(z)
        return probabilities * (1 - probabilities) / len(y)

    def dual_value(self, xi):
        # xi_i = y_i sigma(-y_i z_i) rescaled: the dual is the mean binary
        # entropy of p_i = y_i xi_i in [0, 1].
        p = (self.y_inner * xi).clamp(0.0, 1.0)
        return (torch.special.entr(p) + torch.special.entr(1 - p)).mean()

    def outer_loss(self, theta, lmbd, batch=FULL_BATCH):
        margins = self.y_outer[batch] * (self.X_outer[batch] @ theta)
        return torch.nn.functional.softplus(-margins).mean()

    def outer_gradients(self, theta, lmbd, batch=FULL_BATCH):
        X, y = self.X_outer[batch], self.y_outer[batch]
        return X.T @ (-y * torch.sigmoid(-y * (X @ theta))) / len(y), torch.zeros_like(lmbd)

    @staticmethod
    def scores(theta, X, y):
        """(mean logistic loss, accuracy) of the linear classifier theta."""
        margins = y * (X @ theta)
        loss = torch.nn.functional.softplus(-margins).mean()
        return float(loss), float((margins > 0).to(X.dtype).mean())


def correlated_regression(generator, n_samples, n_features, correlation=0.5, density=0.05,
                          snr=3.0):
    """(X, y, theta_true): Gaussian design whose features k, l have
    correlation ``correlation ** |k - l|`` (rho between neighbours), a true
    coefficient vector with ``density * n_features`` non-zero N(0, 1) entries
    at random places, and y = X theta_true + noise with
    ||X theta_true|| / ||noise|| = ``snr``. ``generator``: numpy Generator."""
    import numpy as np
    if not -1 < correlation < 1:
        raise ValueError(f"correlation must be in (-1, 1), got {correlation}.")
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density}.")
    if not snr > 0:
        raise ValueError(f"snr must be > 0, got {snr}.")
    # AR(1) features: x_k = rho x_{k-1} + sqrt(1 - rho^2) e_k.
    noise = generator.standard_normal((n_samples, n_features))
    X = np.empty((n_samples, n_features))
    X[:, 0] = noise[:, 0]
    for k in range(1, n_features):
        X[:, k] = correlation * X[:, k - 1] + math.sqrt(1 - correlation ** 2) * noise[:, k]
    theta = np.zeros(n_features)
    n_nonzero = max(1, int(round(density * n_features)))
    theta[generator.choice(n_features, n_nonzero, replace=False)] = \
        generator.standard_normal(n_nonzero)
    signal = X @ theta
    epsilon = generator.standard_normal(n_samples)
    y = signal + epsilon * np.linalg.norm(signal) / (snr * np.linalg.norm(epsilon))
    return X, y, theta


def standardize_splits(X, y, n_inner, center_y=True):
    """Features centered and scaled to unit variance, and (``center_y``)
    targets centered and scaled, with the statistics of the first
    ``n_inner`` (training) rows; numpy arrays."""
    import numpy as np
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    mean, scale = X[:n_inner].mean(0), X[:n_inner].std(0)
    X = (X - mean) / np.where(scale > 0, scale, 1.0)
    if center_y:
        y = (y - y[:n_inner].mean()) / max(y[:n_inner].std(), 1e-300)
    return X, y


SPARSE_PROBLEMS = ("lasso", "weighted_lasso", "sparse_logreg")


def make_sparse_problem(kind, X_inner, y_inner, X_outer, y_outer):
    """The problem ``kind`` (one of ``SPARSE_PROBLEMS``) on these splits;
    ``sparse_logreg`` takes labels in {-1, +1}."""
    if kind not in SPARSE_PROBLEMS:
        raise ValueError(f"problem={kind!r}; accepted: {', '.join(map(repr, SPARSE_PROBLEMS))}.")
    if kind == "sparse_logreg":
        return SparseLogisticRegressionProblem(X_inner, y_inner, X_outer, y_outer)
    return LassoProblem(X_inner, y_inner, X_outer, y_outer, weighted=kind == "weighted_lasso")
