"""Optimizers for sparse training, usable with any torch model.

:class:`LinBreg` and :class:`AdaBreg` (Bungert, Roith, Tenbrinck & Burger,
"A Bregman learning framework for sparse neural networks", JMLR 2022) and the
proximal baseline :class:`ProxSGD`, with the sparsity regularizers they take
(:func:`make_regularizer`) and :func:`regularized_parameter_groups`, which
splits a network into regularized weights and the other parameters::

    groups = regularized_parameter_groups(model, "l1", lmbd=1e-1)
    optimizer = LinBreg(groups, lr=0.1, delta=1.0)
"""
from .bregman import AdaBreg, LinBreg
from .parameter_groups import (
    regularized_parameter_groups,
    sparsifiable_modules,
    weight_decay_parameter_groups,
)
from .proximal import ProxSGD
from .regularizers import (
    L1,
    REGULARIZER_STRUCTURES,
    REGULARIZERS,
    L1Kernels,
    L1Rows,
    make_regularizer,
)

__all__ = [
    "AdaBreg",
    "L1",
    "L1Kernels",
    "L1Rows",
    "LinBreg",
    "ProxSGD",
    "REGULARIZERS",
    "REGULARIZER_STRUCTURES",
    "make_regularizer",
    "regularized_parameter_groups",
    "sparsifiable_modules",
    "weight_decay_parameter_groups",
]
