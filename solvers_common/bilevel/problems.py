"""Bilevel problems as oracle classes.

A bilevel problem is

    min over lmbd of h(lmbd) = F(theta*(lmbd), lmbd),
    theta*(lmbd) = argmin over theta of G(theta, lmbd),

with G an average over inner (training) samples and F an average over outer
(validation) samples. A problem class defines the two losses on a mini-batch
(``inner_loss`` and ``outer_loss``, averages over the samples of ``batch``);
every oracle a bilevel algorithm needs then has a generic implementation by
``torch.func`` autograd in :class:`BilevelProblem`. The three problems of the
suite override them with closed forms, which the tests check against the
generic path.

A ``batch`` is anything that indexes the first axis of the sample tensors: a
``slice`` (what :class:`~solvers_common.bilevel.sampling.MinibatchSampler`
hands out, a view without copy), an index tensor, or :data:`FULL_BATCH`; the
closed-form oracles of the three smooth problems below also take a
:class:`RowBatch` (row indices and weights), what the compiled iterations of
``fused.py`` hand them so that every mini-batch has the same shape.

Sign conventions: ``inner_hessian_vector(theta, lmbd, v) = d2_theta G v`` and
``inner_cross_vector(theta, lmbd, v) = d2_(lmbd, theta) G v`` (the gradient
in lmbd of ``<grad_theta G, v>``), so that

    grad h(lmbd) = grad_lmbd F - d2_(lmbd, theta) G [d2_theta G]^{-1} grad_theta F,

evaluated at theta*(lmbd) (implicit function theorem).
"""
import copy
from typing import NamedTuple

import torch
from torch.func import grad, jvp, vjp

FULL_BATCH = slice(None)


class RowBatch(NamedTuple):
    """A mini-batch as row indices (rows,) and per-row weights (rows,) that
    sum to 1: a block of b - 1 samples in a table of b rows repeats a row
    with weight 0, so that blocks of b and b - 1 samples have one shape."""
    index: torch.Tensor
    weight: torch.Tensor


def rows(tensor, batch):
    """The rows of ``tensor`` in ``batch``; those of a matrix, for a
    RowBatch, gathered once (:func:`materialized`: otherwise each product
    that reads them recomputes the row lookup of every entry in its loop;
    compiled SOBA on datacleaning 34 -> 30 us per iteration, MRBO 405 -> 263
    us)."""
    if isinstance(batch, RowBatch):
        selected = tensor[batch.index]
        return materialized(selected) if selected.dim() == 2 else selected
    return tensor[batch]


def batch_mean(values, batch):
    """The average of ``values`` (one row per sample of ``batch``)."""
    if isinstance(batch, RowBatch):
        return torch.tensordot(batch.weight, values, dims=1)
    return values.mean(0)


def sample_weights(batch, n_rows):
    """Each row's weight in a batch average: 1 / n_rows, or the RowBatch's
    weights."""
    return batch.weight if isinstance(batch, RowBatch) else 1 / n_rows


# A RowBatch's matrix products (a batch's rows times a matrix, and back) are
# written as broadcast multiply-sums, which inductor fuses into the compiled
# iteration's loops, rather than BLAS calls: at batch 64 on datacleaning
# (64 x 64 by 64 x 10) a torch.mm takes 4.7 to 6.1 us on this machine's AMD
# CPU (MKL's generic code path, mkl_blas_def_sgemm in perf; eager, one
# thread, 2026-11-30), and SOBA's compiled iteration made eight of them.
# Compiled SOBA went from 60 to 47 us per iteration. Matrix-vector products
# are left as they are: inductor fuses them already.
def rows_times(X, matrix, batch):
    """X @ matrix for the batch's rows X."""
    if isinstance(batch, RowBatch) and matrix.dim() == 2:
        return (X[:, :, None] * matrix).sum(1)
    return X @ matrix


def row_average(X, values, batch):
    """X^T values / n over the batch's rows X (values: one entry or row per
    sample), weighted for a RowBatch."""
    if isinstance(batch, RowBatch):
        if values.dim() == 1:
            return X.T @ (batch.weight * values)
        weighted = materialized(batch.weight[:, None] * values)
        return (X[:, :, None] * weighted[:, None, :]).sum(0)
    return X.T @ values / X.shape[0]


def materialized(values):
    """``values``, computed once into a buffer of its own when compiled.

    Inductor inlines a pointwise result into every loop that reads it: in
    the broadcast product of :func:`row_average`, the data-cleaning
    problem's softmax residuals (a division, the one-hot labels, the sample
    weights) were recomputed for each of the 65 features. An index_copy
    into a new tensor is a scatter, which inductor runs once, in its own
    loop: compiled SOBA on datacleaning went from 40 to 35 us per iteration
    (one thread, 2026-11-30). In eager mode it is one small copy."""
    rows = torch.arange(values.shape[0], device=values.device)
    return torch.empty_like(values).index_copy(0, rows, values)


class BilevelProblem:
    """Base class: mini-batch losses, generic oracles and full-data solvers.

    Subclasses set ``self.sample_tensors`` (names of the attributes holding
    per-sample or constant tensors, moved by :meth:`to`), ``n_inner_samples``
    and ``n_outer_samples``, and define :meth:`inner_loss`,
    :meth:`outer_loss` and :meth:`initial_point`.
    """

    sample_tensors = ()
    n_inner_samples = None
    n_outer_samples = None
    # G twice differentiable in theta: the oracles below exist. The
    # l1-regularized problems (sparse.py) set it to False; solvers that need
    # inner gradients and Hessians are skipped on them.
    smooth_inner = True
    # Tolerance of the reference theta*(lmbd) the objective scores against
    # (here ||grad_theta G||; a relative duality gap for sparse.py).
    reference_inner_tol = 1e-10
    # The closed-form oracles take a RowBatch: the compiled iterations
    # (fused.py) serve the problem. The generic autograd oracles do not.
    row_batches = False

    # -- the problem ---------------------------------------------------------
    def inner_loss(self, theta, lmbd, batch=FULL_BATCH):
        """G on the inner samples of ``batch`` (their average)."""
        raise NotImplementedError

    def outer_loss(self, theta, lmbd, batch=FULL_BATCH):
        """F on the outer samples of ``batch`` (their average)."""
        raise NotImplementedError

    def initial_point(self):
        """(theta0, lmbd0), the starting point of every solver."""
        raise NotImplementedError

    # -- device and precision ------------------------------------------------
    @property
    def device(self):
        return getattr(self, self.sample_tensors[0]).device

    @property
    def dtype(self):
        return getattr(self, self.sample_tensors[0]).dtype

    def to(self, device=None, dtype=None):
        """A copy whose tensors live on ``device`` in ``dtype`` (integer
        tensors, such as class labels, keep their dtype)."""
        moved = copy.copy(self)
        for name in self.sample_tensors:
            tensor = getattr(self, name)
            target = dtype if tensor.is_floating_point() else None
            setattr(moved, name, tensor.to(device=device, dtype=target))
        return moved

    # -- oracles (generic autograd; subclasses override with closed forms) ----
    def inner_gradient(self, theta, lmbd, batch=FULL_BATCH):
        """grad_theta G on ``batch``."""
        return grad(self.inner_loss)(theta, lmbd, batch)

    def outer_gradients(self, theta, lmbd, batch=FULL_BATCH):
        """(grad_theta F, grad_lmbd F) on ``batch``."""
        return grad(self.outer_loss, argnums=(0, 1))(theta, lmbd, batch)

    def inner_gradients(self, theta, lmbd, batch=FULL_BATCH):
        """(grad_theta G, grad_lmbd G) on ``batch``: the gradient in lmbd is
        what first-order methods (F2SA) use in place of second derivatives."""
        return grad(self.inner_loss, argnums=(0, 1))(theta, lmbd, batch)

    def inner_hessian_vector(self, theta, lmbd, v, batch=FULL_BATCH):
        """d2_theta G v on ``batch`` (forward-over-reverse)."""
        def gradient(theta_):
            return self.inner_gradient(theta_, lmbd, batch)
        return jvp(gradient, (theta,), (v,))[1]

    def inner_cross_vector(self, theta, lmbd, v, batch=FULL_BATCH):
        """d2_(lmbd, theta) G v on ``batch``: the gradient in lmbd of
        <grad_theta G(theta, lmbd), v>."""
        def gradient(lmbd_):
            return self.inner_gradient(theta, lmbd_, batch)
        return vjp(gradient, lmbd)[1](v)[0]

    def inner_hessian_operator(self, theta, lmbd, batch=FULL_BATCH):
        """v -> d2_theta G(theta, lmbd) v on ``batch``, for many v at one
        point (conjugate gradient): closed forms compute what depends only on
        the point once."""
        def hessian_vector(v):
            return self.inner_hessian_vector(theta, lmbd, v, batch)
        return hessian_vector

    def inner_oracles(self, theta, lmbd, v, batch=FULL_BATCH):
        """(grad_theta G, d2_theta G v, d2_(lmbd, theta) G v) on one batch, in
        one pass: the three quantities of a SOBA-type step."""
        return (self.inner_gradient(theta, lmbd, batch),
                self.inner_hessian_vector(theta, lmbd, v, batch),
                self.inner_cross_vector(theta, lmbd, v, batch))

    # -- full-data solvers ---------------------------------------------------
    def solve_inner(self, lmbd, theta0=None, tol=1e-10, max_iter=100):
        """theta*(lmbd) to ``||grad_theta G|| <= tol`` by Newton-CG."""
        from .linear_solvers import newton_cg
        theta0 = self.initial_point()[0] if theta0 is None else theta0
        return newton_cg(self, lmbd, theta0, tol=tol, max_iter=max_iter)

    def solve_linear_system(self, theta, lmbd, b, v0=None, tol=1e-10, max_iter=None):
        """v with d2_theta G(theta, lmbd) v = b, by conjugate gradient."""
        from .linear_solvers import conjugate_gradient
        return conjugate_gradient(self.inner_hessian_operator(theta, lmbd), b, v0, tol=tol,
                                  max_iter=max_iter)

    def hypergradient(self, theta, lmbd, v0=None, tol=1e-10):
        """(grad h, v): the implicit gradient at (theta, lmbd), exact when
        theta = theta*(lmbd), with v = [d2_theta G]^{-1} grad_theta F solved
        by CG to relative residual ``tol``."""
        grad_theta_outer, grad_lmbd_outer = self.outer_gradients(theta, lmbd)
        v = self.solve_linear_system(theta, lmbd, grad_theta_outer, v0=v0, tol=tol)
        return grad_lmbd_outer - self.inner_cross_vector(theta, lmbd, v), v


def _as_tensor(array, dtype=torch.float64):
    return torch.as_tensor(array).to(dtype)


class QuadraticProblem(BilevelProblem):
    """Quadratic inner and outer problems with closed forms.

    G_i(theta, lmbd) = 1/2 theta^T A_i theta + theta^T B_i lmbd + a_i^T theta
    F_j(theta, lmbd) = 1/2 theta^T H_j theta + theta^T C_j lmbd + b_j^T theta
                       + 1/2 lmbd^T E lmbd

    Per-sample matrices ``A`` (n_inner, p, p), ``B`` (n_inner, p, q),
    ``a`` (n_inner, p), ``H`` (n_outer, p, p), ``C`` (n_outer, p, q),
    ``b`` (n_outer, p), shared ``E`` (q, q). With the means A, B, a, H, C, b:
    theta*(lmbd) = P lmbd + r (P = -A^{-1} B, r = -A^{-1} a) and h is the
    quadratic 1/2 lmbd^T M lmbd + m^T lmbd + c of :meth:`value_function`.
    """

    sample_tensors = ("A", "B", "a", "H", "C", "b", "E")
    row_batches = True

    def __init__(self, A, B, a, H, C, b, E):
        for name, value in zip(self.sample_tensors, (A, B, a, H, C, b, E)):
            setattr(self, name, _as_tensor(value))
        self.n_inner_samples, self.n_outer_samples = self.A.shape[0], self.H.shape[0]

    def initial_point(self):
        zeros = dict(device=self.device, dtype=self.dtype)
        return torch.zeros(self.A.shape[1], **zeros), torch.zeros(self.B.shape[2], **zeros)

    def _mean(self, name, batch):
        """The batch average of the per-sample tensor ``name``."""
        return batch_mean(rows(getattr(self, name), batch), batch)

    def inner_loss(self, theta, lmbd, batch=FULL_BATCH):
        A, B, a = self._mean("A", batch), self._mean("B", batch), self._mean("a", batch)
        return 0.5 * theta @ A @ theta + theta @ B @ lmbd + a @ theta

    def outer_loss(self, theta, lmbd, batch=FULL_BATCH):
        H, C, b = self._mean("H", batch), self._mean("C", batch), self._mean("b", batch)
        return (0.5 * theta @ H @ theta + theta @ C @ lmbd + b @ theta
                + 0.5 * lmbd @ self.E @ lmbd)

    def inner_gradient(self, theta, lmbd, batch=FULL_BATCH):
        return (self._mean("A", batch) @ theta + self._mean("B", batch) @ lmbd
                + self._mean("a", batch))

    def outer_gradients(self, theta, lmbd, batch=FULL_BATCH):
        H, C = self._mean("H", batch), self._mean("C", batch)
        return H @ theta + C @ lmbd + self._mean("b", batch), C.T @ theta + self.E @ lmbd

    def inner_gradients(self, theta, lmbd, batch=FULL_BATCH):
        B = self._mean("B", batch)
        return self._mean("A", batch) @ theta + B @ lmbd + self._mean("a", batch), B.T @ theta

    def inner_hessian_vector(self, theta, lmbd, v, batch=FULL_BATCH):
        return self._mean("A", batch) @ v

    def inner_hessian_operator(self, theta, lmbd, batch=FULL_BATCH):
        return self._mean("A", batch).__matmul__

    def inner_cross_vector(self, theta, lmbd, v, batch=FULL_BATCH):
        return self._mean("B", batch).T @ v

    def inner_oracles(self, theta, lmbd, v, batch=FULL_BATCH):
        A, B = self._mean("A", batch), self._mean("B", batch)
        return A @ theta + B @ lmbd + self._mean("a", batch), A @ v, B.T @ v

    def solve_inner(self, lmbd, theta0=None, tol=None, max_iter=None):
        """theta*(lmbd) in closed form."""
        A, B, a = self.A.mean(0), self.B.mean(0), self.a.mean(0)
        return -torch.linalg.solve(A, B @ lmbd + a)

    def value_function(self):
        """(M, m, c): h(lmbd) = 1/2 lmbd^T M lmbd + m^T lmbd + c."""
        A, B, a = self.A.mean(0), self.B.mean(0), self.a.mean(0)
        H, C, b = self.H.mean(0), self.C.mean(0), self.b.mean(0)
        P, r = -torch.linalg.solve(A, B), -torch.linalg.solve(A, a)
        M = P.T @ H @ P + P.T @ C + C.T @ P + self.E
        m = P.T @ H @ r + C.T @ r + P.T @ b
        c = 0.5 * r @ H @ r + b @ r
        return 0.5 * (M + M.T), m, c

    def optimum(self):
        """(lmbd*, h*), the minimizer and minimum of h."""
        M, m, c = self.value_function()
        lmbd_star = -torch.linalg.solve(M, m)
        return lmbd_star, 0.5 * lmbd_star @ M @ lmbd_star + m @ lmbd_star + c


def make_quadratic_problem(generator, dim_inner=20, dim_outer=10, n_inner_samples=1024,
                           n_outer_samples=1024, mu_inner=0.1, L_inner=1.0,
                           mu_outer=0.1, L_outer=1.0, noise=0.1):
    """A random :class:`QuadraticProblem` whose mean inner Hessian A has
    eigenvalues spread geometrically in [mu_inner, L_inner] and whose value
    function h has curvatures in [mu_outer, L_outer]; ``noise`` scales the
    per-sample deviations of every matrix and vector from its mean (relative
    to L_inner). ``generator`` is a ``numpy.random.Generator``."""
    for name, value in dict(dim_inner=dim_inner, dim_outer=dim_outer,
                            n_inner_samples=n_inner_samples,
                            n_outer_samples=n_outer_samples).items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    if not 0 < mu_inner <= L_inner:
        raise ValueError(f"mu_inner and L_inner must satisfy 0 < mu_inner <= L_inner, "
                         f"got mu_inner={mu_inner}, L_inner={L_inner}.")
    if not 0 < mu_outer < L_outer:
        raise ValueError(f"mu_outer and L_outer must satisfy 0 < mu_outer < L_outer, "
                         f"got mu_outer={mu_outer}, L_outer={L_outer}.")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise}.")
    p, q = dim_inner, dim_outer

    def centered(n, *shape):
        # Per-sample deviations with exact zero mean, so that the means are
        # the chosen matrices.
        deviations = generator.standard_normal((n, *shape))
        return noise * L_inner * (deviations - deviations.mean(0)) / max(shape[-1], 1) ** 0.5

    def symmetric(matrices):
        return 0.5 * (matrices + matrices.swapaxes(-1, -2))

    basis = torch.linalg.qr(torch.as_tensor(generator.standard_normal((p, p))))[0]
    spectrum = torch.logspace(torch.log10(torch.tensor(mu_inner)),
                              torch.log10(torch.tensor(L_inner)), p, dtype=torch.float64)
    A_mean = (basis * spectrum) @ basis.T
    A = A_mean.numpy() + symmetric(centered(n_inner_samples, p, p))
    B = generator.standard_normal((p, q)) / p ** 0.5 + centered(n_inner_samples, p, q)
    a = generator.standard_normal(p) + centered(n_inner_samples, p)
    H_root = generator.standard_normal((p, p)) / p ** 0.5
    H = (H_root @ H_root.T) + symmetric(centered(n_outer_samples, p, p))
    C = generator.standard_normal((p, q)) / p ** 0.5 + centered(n_outer_samples, p, q)
    b = generator.standard_normal(p) + centered(n_outer_samples, p)
    problem = QuadraticProblem(A, B, a, H, C, b, E=torch.zeros(q, q))
    # h's Hessian is linear in the outer data (H, C, b, E): with E = shift I
    # and all outer data scaled by `scale`, it is scale (M0 + shift I), whose
    # spectrum is mapped onto [mu_outer, L_outer].
    spectrum = torch.linalg.eigvalsh(problem.value_function()[0])
    scale = (L_outer - mu_outer) / float(spectrum[-1] - spectrum[0])
    shift = mu_outer / scale - float(spectrum[0])
    problem.E = shift * torch.eye(q, dtype=torch.float64)
    for name in ("H", "C", "b", "E"):
        setattr(problem, name, scale * getattr(problem, name))
    return problem


def _logistic_loss(margins):
    """mean log(1 + exp(-margins)), stable for large |margins|."""
    return torch.nn.functional.softplus(-margins).mean()


class LogisticRegressionProblem(BilevelProblem):
    """Binary logistic regression with one l2 regularization per feature.

    G(theta, lmbd) = mean_i log(1 + exp(-y_i x_i^T theta))
                     + 1/2 sum_k exp(lmbd_k) theta_k^2   (inner: training set)
    F(theta, lmbd) = mean_j log(1 + exp(-y_j x_j^T theta))  (outer: validation)

    Labels in {-1, +1}. ``X_test, y_test`` (optional) are only used to score.
    The regularization is part of every mini-batch loss G_i.
    """

    sample_tensors = ("X_inner", "y_inner", "X_outer", "y_outer")
    row_batches = True

    def __init__(self, X_inner, y_inner, X_outer, y_outer):
        self.X_inner, self.y_inner = _as_tensor(X_inner), _as_tensor(y_inner)
        self.X_outer, self.y_outer = _as_tensor(X_outer), _as_tensor(y_outer)
        for y in (self.y_inner, self.y_outer):
            if not bool(((y == 1) | (y == -1)).all()):
                raise ValueError("y_inner and y_outer must hold labels in {-1, +1}.")
        self.n_inner_samples, self.n_outer_samples = len(self.y_inner), len(self.y_outer)

    def initial_point(self):
        zeros = torch.zeros(self.X_inner.shape[1], device=self.device, dtype=self.dtype)
        return zeros, zeros.clone()

    def inner_loss(self, theta, lmbd, batch=FULL_BATCH):
        margins = rows(self.y_inner, batch) * (rows(self.X_inner, batch) @ theta)
        return (batch_mean(torch.nn.functional.softplus(-margins), batch)
                + 0.5 * (torch.exp(lmbd) * theta ** 2).sum())

    def outer_loss(self, theta, lmbd, batch=FULL_BATCH):
        margins = rows(self.y_outer, batch) * (rows(self.X_outer, batch) @ theta)
        return batch_mean(torch.nn.functional.softplus(-margins), batch)

    @staticmethod
    def _loss_gradient(X, y, theta, batch):
        # d/dz log(1 + exp(-y z)) = -y sigmoid(-y z)
        return row_average(X, -y * torch.sigmoid(-y * (X @ theta)), batch)

    def inner_gradient(self, theta, lmbd, batch=FULL_BATCH):
        return (self._loss_gradient(rows(self.X_inner, batch), rows(self.y_inner, batch), theta,
                                    batch)
                + torch.exp(lmbd) * theta)

    def outer_gradients(self, theta, lmbd, batch=FULL_BATCH):
        grad_theta = self._loss_gradient(rows(self.X_outer, batch), rows(self.y_outer, batch),
                                         theta, batch)
        return grad_theta, torch.zeros_like(lmbd)

    def inner_gradients(self, theta, lmbd, batch=FULL_BATCH):
        regularization = torch.exp(lmbd)
        return (self.inner_gradient(theta, lmbd, batch), 0.5 * regularization * theta ** 2)

    def inner_hessian_vector(self, theta, lmbd, v, batch=FULL_BATCH):
        X = rows(self.X_inner, batch)
        probabilities = torch.sigmoid(X @ theta)
        curvature = probabilities * (1 - probabilities)  # the same for y = +-1
        return row_average(X, curvature * (X @ v), batch) + torch.exp(lmbd) * v

    def inner_hessian_operator(self, theta, lmbd, batch=FULL_BATCH):
        X = self.X_inner[batch]
        probabilities = torch.sigmoid(X @ theta)
        weights = probabilities * (1 - probabilities) / X.shape[0]
        regularization = torch.exp(lmbd)

        def hessian_vector(v):
            return X.T @ (weights * (X @ v)) + regularization * v
        return hessian_vector

    def inner_cross_vector(self, theta, lmbd, v, batch=FULL_BATCH):
        return torch.exp(lmbd) * theta * v

    def inner_oracles(self, theta, lmbd, v, batch=FULL_BATCH):
        X, y = rows(self.X_inner, batch), rows(self.y_inner, batch)
        z = X @ theta
        probabilities = torch.sigmoid(z)
        regularization = torch.exp(lmbd)
        gradient = row_average(X, -y * torch.sigmoid(-y * z), batch) + regularization * theta
        hessian_vector = (row_average(X, probabilities * (1 - probabilities) * (X @ v), batch)
                          + regularization * v)
        return gradient, hessian_vector, regularization * theta * v

    @staticmethod
    def scores(theta, X, y):
        """(mean logistic loss, accuracy) of the linear classifier theta."""
        margins = y * (X @ theta)
        return float(_logistic_loss(margins)), float((margins > 0).to(X.dtype).mean())


class DataCleaningProblem(BilevelProblem):
    """Data cleaning: multinomial logistic regression on corrupted training
    labels, one weight sigmoid(lmbd_i) per training sample (Franceschi et al.
    2017, "Forward and reverse gradient-based hyperparameter optimization").

    G(theta, lmbd) = mean_i sigmoid(lmbd_i) CE(x_i^T theta, y_i)
                     + l2_regularization / 2 ||theta||^2
    F(theta, lmbd) = mean_j CE(x_j^T theta, y_j)   (clean validation set)

    theta has shape (n_features, n_classes), lmbd (n_inner_samples,). A
    mini-batch of inner samples touches only its own entries of lmbd.
    """

    sample_tensors = ("X_inner", "y_inner", "X_outer", "y_outer", "Y_inner", "Y_outer")
    row_batches = True

    def __init__(self, X_inner, y_inner, X_outer, y_outer, n_classes,
                 l2_regularization=1e-3):
        if not l2_regularization > 0:
            raise ValueError(f"l2_regularization must be > 0, got {l2_regularization}.")
        self.X_inner, self.X_outer = _as_tensor(X_inner), _as_tensor(X_outer)
        self.y_inner = torch.as_tensor(y_inner).long()
        self.y_outer = torch.as_tensor(y_outer).long()
        self.n_classes, self.l2_regularization = int(n_classes), float(l2_regularization)
        self.n_inner_samples, self.n_outer_samples = len(self.y_inner), len(self.y_outer)
        # The labels one-hot, as a table of the data's dtype: the residuals
        # read it rather than comparing integer labels to each class, which
        # a compiled iteration would redo inside every product's loop.
        self.Y_inner, self.Y_outer = (
            torch.nn.functional.one_hot(y, self.n_classes).to(self.X_inner.dtype)
            for y in (self.y_inner, self.y_outer))

    @property
    def dtype(self):
        return self.X_inner.dtype

    def initial_point(self):
        options = dict(device=self.device, dtype=self.dtype)
        return (torch.zeros(self.X_inner.shape[1], self.n_classes, **options),
                torch.zeros(self.n_inner_samples, **options))

    def _cross_entropy(self, X, y, theta, batch=FULL_BATCH):
        """Per-sample cross-entropies of the logits X theta."""
        return torch.nn.functional.cross_entropy(rows_times(X, theta, batch), y,
                                                 reduction="none")

    def inner_loss(self, theta, lmbd, batch=FULL_BATCH):
        losses = self._cross_entropy(rows(self.X_inner, batch), rows(self.y_inner, batch), theta,
                                     batch)
        return (batch_mean(torch.sigmoid(rows(lmbd, batch)) * losses, batch)
                + 0.5 * self.l2_regularization * (theta ** 2).sum())

    def outer_loss(self, theta, lmbd, batch=FULL_BATCH):
        return batch_mean(self._cross_entropy(rows(self.X_outer, batch),
                                              rows(self.y_outer, batch), theta, batch), batch)

    @staticmethod
    def _residuals(X, one_hot, theta, batch=FULL_BATCH):
        # d CE / d logits = softmax(logits) - one_hot(y)
        # Out of place, so that autograd can differentiate through it (ITD).
        return torch.softmax(rows_times(X, theta, batch), dim=1) - one_hot

    @staticmethod
    def _per_sample_of_lmbd(lmbd, batch, values):
        """A vector shaped like lmbd holding ``values`` at the batch's
        samples, 0 elsewhere: only the batch's entries of lmbd appear in G on
        this batch. Added, not assigned, for a RowBatch, whose repeated
        padding row carries 0."""
        result = torch.zeros_like(lmbd)
        if isinstance(batch, RowBatch):
            return result.index_add(0, batch.index, values)
        result[batch] = values
        return result

    def inner_gradient(self, theta, lmbd, batch=FULL_BATCH):
        X = rows(self.X_inner, batch)
        weights = torch.sigmoid(rows(lmbd, batch))
        residuals = self._residuals(X, rows(self.Y_inner, batch), theta, batch)
        return (row_average(X, weights[:, None] * residuals, batch)
                + self.l2_regularization * theta)

    def outer_gradients(self, theta, lmbd, batch=FULL_BATCH):
        X = rows(self.X_outer, batch)
        residuals = self._residuals(X, rows(self.Y_outer, batch), theta, batch)
        return row_average(X, residuals, batch), torch.zeros_like(lmbd)

    def inner_gradients(self, theta, lmbd, batch=FULL_BATCH):
        X, y = rows(self.X_inner, batch), rows(self.y_inner, batch)
        weights = torch.sigmoid(rows(lmbd, batch))
        grad_lmbd = (weights * (1 - weights) * self._cross_entropy(X, y, theta, batch)
                     * sample_weights(batch, X.shape[0]))
        return (self.inner_gradient(theta, lmbd, batch),
                self._per_sample_of_lmbd(lmbd, batch, grad_lmbd))

    def inner_hessian_vector(self, theta, lmbd, v, batch=FULL_BATCH):
        X = rows(self.X_inner, batch)
        weights = torch.sigmoid(rows(lmbd, batch))
        probabilities = torch.softmax(rows_times(X, theta, batch), dim=1)
        direction = rows_times(X, v, batch)
        # Softmax Jacobian applied to the logit direction: diag(p) - p p^T.
        logits_direction = probabilities * (
            direction - (probabilities * direction).sum(1, keepdim=True))
        return (row_average(X, weights[:, None] * logits_direction, batch)
                + self.l2_regularization * v)

    def inner_hessian_operator(self, theta, lmbd, batch=FULL_BATCH):
        X = self.X_inner[batch]
        weights = (torch.sigmoid(lmbd[batch]) / X.shape[0])[:, None]
        probabilities = torch.softmax(X @ theta, dim=1)

        def hessian_vector(v):
            direction = X @ v
            logits_direction = probabilities * (
                direction - (probabilities * direction).sum(1, keepdim=True))
            return X.T @ (weights * logits_direction) + self.l2_regularization * v
        return hessian_vector

    def inner_cross_vector(self, theta, lmbd, v, batch=FULL_BATCH):
        X = rows(self.X_inner, batch)
        weights = torch.sigmoid(rows(lmbd, batch))
        residuals = self._residuals(X, rows(self.Y_inner, batch), theta, batch)
        # d sigmoid(l) / dl = sigmoid(l) (1 - sigmoid(l)).
        per_sample = (weights * (1 - weights) * (residuals * rows_times(X, v, batch)).sum(1)
                      * sample_weights(batch, X.shape[0]))
        return self._per_sample_of_lmbd(lmbd, batch, per_sample)

    @staticmethod
    def scores(theta, X, y):
        """(mean cross-entropy, accuracy) of the linear classifier theta."""
        logits = X @ theta
        loss = torch.nn.functional.cross_entropy(logits, y)
        return float(loss), float((logits.argmax(1) == y).to(X.dtype).mean())
