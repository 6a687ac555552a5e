"""Metrics of trained networks: sparsity and density counts, FLOPs, and the
coding rates, compression and token sparsity of transformers, layer by
layer."""
from .coding_rate import (
    EPS_SQUARED,
    coding_rate,
    compression_coding_rate,
    images_per_second,
    is_transformer,
    last_layer_class_attention,
    parameter_count,
    transformer_layer_metrics,
    zero_fraction,
)
from .sparsity import density, flops_ratio, kernel_density, neuron_density, neurons_per_layer

__all__ = [
    "EPS_SQUARED",
    "coding_rate",
    "compression_coding_rate",
    "density",
    "flops_ratio",
    "images_per_second",
    "is_transformer",
    "kernel_density",
    "last_layer_class_attention",
    "neuron_density",
    "neurons_per_layer",
    "parameter_count",
    "transformer_layer_metrics",
    "zero_fraction",
]
