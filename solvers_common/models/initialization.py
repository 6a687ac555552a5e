"""Seeded (sparse) initialization of a network's parameters.

Bungert, Roith, Tenbrinck & Burger, "A Bregman learning framework for sparse
neural networks", JMLR 2022, sparse initialization: each weight of a layer
with ``n`` inputs is non-zero with probability ``r`` (a Bernoulli mask) and,
where non-zero, drawn from ``N(0, 2 / (r n))``. A neuron then sums about
``r n`` non-zero terms, so the variance of its pre-activation is that of
Kaiming (He) initialization, ``2 / n`` for ``n`` dense inputs (He, Zhang, Ren
& Sun 2015, "Delving deep into rectifiers", eq. 10), and signals neither vanish
nor explode through the layers however small ``r`` is. ``r = 1`` is Kaiming's
normal initialization.

A model may declare, in an attribute ``weight_init_std``, the standard
deviation ``s`` of its dense initialization instead of Kaiming's: its weights
are then ``N(0, s^2 / r)`` where non-zero (the same variance rule) and its
biases zero. The transformers do (``s = 0.02``): from Kaiming's scale their
attention starts concentrated on each token itself and they train far worse
(on digits, CRATE reaches 66% test accuracy after 30 epochs of AdamW from
Kaiming's scale against 90% from 0.02). A module that holds parameters of
another kind (a transformer's class token and position embeddings) draws them
itself in a method ``initialize_own_parameters_(generator)``, which this
initialization calls.
"""
import math
import numbers

import torch
from torch import nn

from ..optim.parameter_groups import sparsifiable_modules

STRUCTURES = ("entries", "rows", "kernels")

# Normalization layers have deterministic initial values (weight 1, bias 0)
# that reset_parameters restores.
_DETERMINISTIC_MODULES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def check_density(density):
    if (not isinstance(density, numbers.Real) or isinstance(density, bool)
            or not 0 < density <= 1):
        raise ValueError(f"density={density!r} must be a number in (0, 1].")


def _mask(weight, density, structure, generator):
    """Bernoulli(density) mask of ``weight``'s shape, drawn per entry, per row
    (``structure="rows"``) or per 2-D convolution kernel
    (``structure="kernels"``, per entry for matrices)."""
    if structure == "rows":
        shape = (weight.shape[0],) + (1,) * (weight.dim() - 1)
    elif structure == "kernels" and weight.dim() > 2:
        shape = weight.shape[:2] + (1,) * (weight.dim() - 2)
    else:
        shape = weight.shape
    draws = torch.rand(shape, generator=generator, dtype=weight.dtype)
    return (draws < density).to(weight.dtype)


@torch.no_grad()
def sparse_initialization_(model, density, generator, structure="entries"):
    """Draw all parameters of ``model`` from ``generator``, in place.

    Linear and convolution weights: a Bernoulli(``density``) mask times
    ``N(0, 2 / (density * fan_in))`` (Bungert et al. 2022, sparse
    initialization); ``fan_in`` is the number of inputs of one output unit
    (``in_features``, or input channels times kernel size). Their biases:
    uniform on ``[0, 1 / sqrt(fan_in)]``, non-negative as in the authors'
    experiments, so that a ReLU unit whose incoming weights are all zero still
    passes a gradient and can grow weights. Normalization layers: weight 1,
    bias 0. When ``model.weight_init_std`` is set, weights are
    ``N(0, weight_init_std^2 / density)`` where non-zero and biases zero.
    Modules with a method ``initialize_own_parameters_(generator)``: their
    own (non-recursive) parameters are drawn by that method.

    Parameters
    ----------
    model : torch.nn.Module
        On any device: the values are drawn on the CPU and copied, so they do
        not depend on the device.
    density : float in (0, 1]
        Expected fraction of non-zero weights.
    generator : torch.Generator
        A CPU generator.
    structure : {"entries", "rows", "kernels"}
        What the mask switches on together: single weights, whole rows
        (neurons, or output filters of convolutions), or 2-D convolution
        kernels (single weights of linear layers).

    Raises
    ------
    ValueError
        On a bad ``density`` or ``structure``, or when ``model`` holds
        parameters of another kind of layer, whose initialization this
        function would not control.
    """
    check_density(density)
    if structure not in STRUCTURES:
        raise ValueError(
            f"structure={structure!r} is unknown; accepted values: "
            f"{', '.join(map(repr, STRUCTURES))}."
        )
    layers = sparsifiable_modules(model)
    normalizations = [module for module in model.modules()
                      if isinstance(module, _DETERMINISTIC_MODULES)]
    self_initialized = [module for module in model.modules()
                        if callable(getattr(module, "initialize_own_parameters_", None))]
    handled = {id(parameter) for module in layers + normalizations + self_initialized
               for parameter in module.parameters(recurse=False)}
    unhandled = [name for name, parameter in model.named_parameters()
                 if id(parameter) not in handled]
    if unhandled:
        raise ValueError(
            f"model holds parameters that sparse_initialization_ does not draw: "
            f"{', '.join(unhandled[:5])}; accepted layers: Linear, convolutions, "
            "normalization layers and modules with initialize_own_parameters_."
        )
    model_std = getattr(model, "weight_init_std", None)
    for module in layers:
        weight = module.weight
        fan_in = weight[0].numel()
        if model_std is None:
            standard_deviation = math.sqrt(2 / (density * fan_in))
        else:
            standard_deviation = model_std / math.sqrt(density)
        values = standard_deviation * torch.randn(weight.shape, generator=generator,
                                                  dtype=weight.dtype)
        if density < 1:
            values *= _mask(weight, density, structure, generator)
        # Drawn on the CPU and copied, so the numbers do not depend on the device.
        weight.copy_(values)
        if module.bias is not None and model_std is not None:
            module.bias.zero_()
        elif module.bias is not None:
            draws = torch.rand(module.bias.shape, generator=generator, dtype=weight.dtype)
            module.bias.copy_(draws / math.sqrt(fan_in))
    for module in normalizations:
        module.reset_parameters()
    for module in self_initialized:
        module.initialize_own_parameters_(generator)
    return model
