"""Sparsity-promoting regularizers J of network weights, as small objects with
a value, a proximal operator and a subgradient: what the Bregman and proximal
optimizers of :mod:`solvers_common.optim` need.

The regularizers of the experiments of Bungert, Roith, Tenbrinck & Burger, "A
Bregman learning framework for sparse neural networks", JMLR 23 (2022): the l1
norm, and the group norm ``sum_g sqrt(|g|) ||theta_g||_2`` whose groups are the
rows of a weight matrix (neurons) or the 2-D kernels of a convolution.
Weighting each group by the square root of its size keeps the thresholds of
groups of different sizes comparable, as the group lasso of Yuan & Lin (2006,
"Model selection and estimation in regression with grouped variables").

Every ``prox(z, step)`` is the proximal operator of ``step * J``:
``argmin_x 1/2 ||x - z||^2 + step * J(x)``.
"""
import math

import torch

from ..prox import group_soft_threshold, soft_threshold
from .checks import check_nonnegative

REGULARIZERS = ("l1", "l1_rows", "l1_kernels")

# Which entries a sparse initialization switches on together, so that it starts
# inside the sparsity pattern the regularizer produces (see
# solvers_common.models.initialization).
REGULARIZER_STRUCTURES = {"l1": "entries", "l1_rows": "rows", "l1_kernels": "kernels"}


class _Regularizer:
    """``lmbd`` times a norm; ``lmbd >= 0``."""

    def __init__(self, lmbd):
        check_nonnegative("lmbd", lmbd)
        self.lmbd = float(lmbd)

    def __repr__(self):
        return f"{type(self).__name__}(lmbd={self.lmbd})"


class L1(_Regularizer):
    """``J(theta) = lmbd ||theta||_1``; its proximal operator is
    soft-thresholding at ``step * lmbd`` (Bungert et al. 2022, the l1 norm of
    their experiments)."""

    name = "l1"
    structure = "entries"

    def check_parameter(self, parameter):
        """Any tensor has entries: nothing to check."""

    def value(self, parameter):
        return self.lmbd * parameter.abs().sum()

    def prox(self, z, step):
        return soft_threshold(z, step * self.lmbd)

    def prox_(self, tensors, step):
        """Replace every tensor of the list ``tensors`` by its proximal point,
        in place. Soft-thresholding is written ``z - clip(z, -t, t)``, which is
        exactly zero where ``|z| <= t``, so that a whole list is thresholded by
        four multi-tensor (``torch._foreach_*``) kernels instead of several
        kernels per tensor."""
        threshold = step * self.lmbd
        clipped = torch._foreach_clamp_min(tensors, -threshold)
        torch._foreach_clamp_max_(clipped, threshold)
        torch._foreach_sub_(tensors, clipped)

    def subgradient(self, parameter):
        """``lmbd sign(theta)``, the element of the subdifferential that is 0
        where ``theta`` is 0."""
        return self.lmbd * torch.sign(parameter)


class _GroupL1(_Regularizer):
    """``J(theta) = lmbd sum_g sqrt(|g|) ||theta_g||_2`` over the groups that
    ``groups`` lays out as the rows of a matrix. Its proximal operator is block
    soft-thresholding at ``step * lmbd * sqrt(|g|)``."""

    structure = None

    def groups(self, parameter):
        raise NotImplementedError

    def check_parameter(self, parameter):
        self.groups(parameter)

    def _weight(self, grouped):
        return self.lmbd * math.sqrt(grouped.shape[1])

    def value(self, parameter):
        grouped = self.groups(parameter)
        return self._weight(grouped) * torch.linalg.vector_norm(grouped, dim=1).sum()

    def prox(self, z, step):
        grouped = self.groups(z)
        return group_soft_threshold(grouped, step * self._weight(grouped), dim=1).reshape(
            z.shape)

    def prox_(self, tensors, step):
        for tensor in tensors:
            tensor.copy_(self.prox(tensor, step))

    def subgradient(self, parameter):
        """``lmbd sqrt(|g|) theta_g / ||theta_g||`` on the groups that are not
        zero, 0 on the others (an element of the subdifferential)."""
        grouped = self.groups(parameter)
        norms = torch.linalg.vector_norm(grouped, dim=1, keepdim=True)
        direction = torch.where(norms > 0, grouped / norms.clamp_min(1e-30), 0.0)
        return (self._weight(grouped) * direction).reshape(parameter.shape)


class L1Rows(_GroupL1):
    """Group norm over the rows of a weight: the incoming weights of one neuron
    of a linear layer, or one output filter of a convolution (Bungert et al.
    2022, the row-wise group sparsity of their neuron-sparsity
    experiments)."""

    name = "l1_rows"
    structure = "rows"

    def groups(self, parameter):
        if parameter.dim() < 2:
            raise ValueError(
                f"regularizer='l1_rows' needs weights with rows (2 or more "
                f"dimensions); got a tensor of shape {tuple(parameter.shape)}."
            )
        return parameter.reshape(parameter.shape[0], -1)


class L1Kernels(_GroupL1):
    """Group norm over the 2-D kernels ``W[o, i, :, :]`` of a convolution
    weight (Bungert et al. 2022, the kernel group sparsity of their
    convolutional experiments)."""

    name = "l1_kernels"
    structure = "kernels"

    def groups(self, parameter):
        if parameter.dim() < 3:
            raise ValueError(
                f"regularizer='l1_kernels' needs convolution weights (3 or more "
                f"dimensions); got a tensor of shape {tuple(parameter.shape)}."
            )
        return parameter.reshape(parameter.shape[0] * parameter.shape[1], -1)


_CLASSES = {"l1": L1, "l1_rows": L1Rows, "l1_kernels": L1Kernels}


def make_regularizer(name, lmbd):
    """The regularizer named ``name`` (one of :data:`REGULARIZERS`) with
    weight ``lmbd``."""
    if name not in _CLASSES:
        raise ValueError(
            f"regularizer={name!r} is unknown; accepted values: "
            f"{', '.join(map(repr, REGULARIZERS))}."
        )
    return _CLASSES[name](lmbd)
