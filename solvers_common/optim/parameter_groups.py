"""Split a network's parameters into optimizer groups: the weights of its
linear and convolution layers, which carry a sparsity regularizer, and
everything else (biases, normalization parameters), which does not."""
from torch import nn

from .regularizers import L1, REGULARIZERS, make_regularizer


def sparsifiable_modules(model):
    """The linear and convolution layers of ``model``, whose weights are the
    ones sparse training makes sparse and the sparsity metrics count."""
    return [module for module in model.modules()
            if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd))]


def regularized_parameter_groups(model, regularizer, lmbd, **options):
    """Parameter groups for :class:`~solvers_common.optim.LinBreg`,
    :class:`~solvers_common.optim.AdaBreg` or
    :class:`~solvers_common.optim.ProxSGD`, as in the experiments of Bungert
    et al. (2022) in their experiments.

    Parameters
    ----------
    model : torch.nn.Module
    regularizer : {"l1", "l1_rows", "l1_kernels"}
        ``"l1"``: every linear and convolution weight gets ``lmbd ||W||_1``.
        ``"l1_rows"``: they get the group norm over rows (neurons of linear
        layers, output filters of convolutions). ``"l1_kernels"``: convolution
        weights get the group norm over 2-D kernels and linear weights the l1
        norm, the setting of the paper's convolutional experiments.
    lmbd : float
        Regularization weight, >= 0.
    **options
        Added to the two regularized groups (for example ``delta``).

    Returns
    -------
    list of dict
        The non-empty groups among: linear weights, convolution weights (with
        key ``regularizer``), and all other parameters with
        ``regularizer=None`` and ``delta=1``, so that a Bregman optimizer
        trains them with plain (stochastic) gradient steps.
    """
    if regularizer not in REGULARIZERS:
        raise ValueError(
            f"regularizer={regularizer!r} is unknown; accepted values: "
            f"{', '.join(map(repr, REGULARIZERS))}."
        )
    linear_regularizer = L1(lmbd) if regularizer == "l1_kernels" else make_regularizer(
        regularizer, lmbd)
    convolution_regularizer = make_regularizer(regularizer, lmbd)

    linear, convolution, regularized = [], [], set()
    for module in sparsifiable_modules(model):
        weight = module.weight
        (linear if isinstance(module, nn.Linear) else convolution).append(weight)
        regularized.add(id(weight))
    others = [p for p in model.parameters() if id(p) not in regularized]

    groups = []
    if linear:
        groups.append(dict(params=linear, regularizer=linear_regularizer, **options))
    if convolution:
        groups.append(dict(params=convolution, regularizer=convolution_regularizer,
                           **options))
    if others:
        groups.append(dict(params=others, regularizer=None, delta=1.0))
    return groups


def weight_decay_parameter_groups(model, weight_decay):
    """Two parameter groups for a decoupled weight-decay optimizer
    (``torch.optim.AdamW``): the weights of linear and convolution layers
    with ``weight_decay``, and every other parameter (biases, normalization
    parameters, a transformer's class token and position embeddings) without
    it, the usual split for vision transformers (no decay on 1-D parameters
    and embeddings in the reference ViT implementations)."""
    decayed = [module.weight for module in sparsifiable_modules(model)]
    decayed_ids = {id(weight) for weight in decayed}
    others = [parameter for parameter in model.parameters() if id(parameter) not in decayed_ids]
    groups = [dict(params=decayed, weight_decay=weight_decay)]
    if others:
        groups.append(dict(params=others, weight_decay=0.0))
    return groups
