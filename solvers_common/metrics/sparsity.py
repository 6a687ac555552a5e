"""How sparse a network is: non-zero weights, neurons and kernels, and the
multiply-adds of a forward pass that skips zero weights (with a transformer's
attention products, which involve no weight, counted in full).

Only the weights of linear and convolution layers count (biases and
normalization parameters excluded), the quantities that Bungert, Roith,
Tenbrinck & Burger (JMLR 2022) report for their sparse networks. Counts are
pooled over layers (a fraction of all weights, not a mean of per-layer
fractions); a metric for a kind of layer the model lacks is NaN.
"""
import torch
from torch import nn

from ..optim.parameter_groups import sparsifiable_modules


def _ratio(numerator, denominator):
    return numerator / denominator if denominator else float("nan")


@torch.no_grad()
def density(model):
    """Fraction of non-zero entries over all linear and convolution weights."""
    weights = [module.weight for module in sparsifiable_modules(model)]
    return _ratio(sum(int(torch.count_nonzero(weight)) for weight in weights),
                  sum(weight.numel() for weight in weights))


@torch.no_grad()
def neuron_density(model):
    """Fraction of the rows of linear weights that hold a non-zero entry (a
    zero row is a neuron that ignores all its inputs)."""
    rows = [module.weight.reshape(module.weight.shape[0], -1)
            for module in model.modules() if isinstance(module, nn.Linear)]
    return _ratio(sum(int(torch.count_nonzero(row.abs().amax(dim=1))) for row in rows),
                  sum(row.shape[0] for row in rows))


@torch.no_grad()
def neurons_per_layer(model):
    """The number of active neurons of each linear layer, in the order of
    ``model.modules()``: rows of its weight that hold a non-zero entry (the
    width row-group sparsity leaves it; Bungert et al. 2022, their node
    sparsity, as a count)."""
    return [int(torch.count_nonzero(module.weight.abs().amax(dim=1)))
            for module in model.modules() if isinstance(module, nn.Linear)]


@torch.no_grad()
def kernel_density(model):
    """Fraction of the 2-D kernels ``W[o, i, :, :]`` of 2-D convolutions that
    hold a non-zero entry."""
    kernels = [module.weight.flatten(start_dim=2)
               for module in model.modules() if isinstance(module, nn.Conv2d)]
    return _ratio(sum(int(torch.count_nonzero(kernel.abs().amax(dim=2))) for kernel in kernels),
                  sum(kernel.shape[0] * kernel.shape[1] for kernel in kernels))


@torch.no_grad()
def flops_ratio(model, input_shape):
    """Multiply-adds of one forward pass counting only non-zero weights, over
    the count with all weights.

    A linear or convolution weight entry is used once per output position
    (once for a linear layer on a vector, once per token for a transformer's,
    ``H_out * W_out`` times for a 2-D convolution), so a layer costs
    ``positions * nonzero(W)`` multiply-adds against ``positions * numel(W)``
    dense. A transformer also multiplies activations with activations: its
    attention's scores ``Q_k K_k^T`` and mixing ``A_k V_k``, ``2 T^2 p`` per
    head of ``p`` dimensions on ``T`` tokens, ``2 T^2 width`` per layer. No
    weight takes part in them, so sparse weights do not reduce them: they
    count in full in both counts, ::

        flops_ratio = (sum_W positions_W nonzero(W) + A)
                      / (sum_W positions_W numel(W) + A),

    ``A`` the sum of ``module.activation_multiply_adds(T)`` over the calls of
    every module that has this method (the attentions of
    :mod:`solvers_common.models.transformers`), ``T`` the token count of the
    call's first input ``(..., T, width)``, once per token set; ``A = 0`` for
    models without attention (mlp, convnet, resnet18). Positions and token
    counts are read from a forward pass on one zero image of shape
    ``input_shape``.
    """
    layers = sparsifiable_modules(model)
    attentions = [module for module in model.modules()
                  if callable(getattr(module, "activation_multiply_adds", None))]
    positions = {}
    activation_products = 0

    def record(module, inputs, output):
        # Output shape (1, features, *spatial) for convolutions and
        # (1, ..., features) for linear layers: all but the features. A
        # linear layer may be called several times (a transformer's tokens)
        # and with its transpose (the dictionaries of CRATE, whose outputs
        # then have in_features entries): every call adds its positions.
        features = output.shape[-1] if isinstance(module, nn.Linear) else output.shape[1]
        positions[module] = positions.get(module, 0) + output.numel() // features

    def record_attention(module, inputs, output):
        nonlocal activation_products
        tokens = inputs[0]  # (..., T, width)
        token_sets = tokens.numel() // (tokens.shape[-2] * tokens.shape[-1])
        activation_products += token_sets * module.activation_multiply_adds(tokens.shape[-2])

    handles = ([module.register_forward_hook(record) for module in layers]
               + [module.register_forward_hook(record_attention) for module in attentions])
    was_training = model.training
    parameter = next(model.parameters())
    try:
        model.eval()
        model(torch.zeros((1, *input_shape), dtype=parameter.dtype, device=parameter.device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    sparse = sum(positions.get(layer, 0) * int(torch.count_nonzero(layer.weight))
                 for layer in layers)
    dense = sum(positions.get(layer, 0) * layer.weight.numel() for layer in layers)
    return _ratio(sparse + activation_products, dense + activation_products)
