"""Metrics of trained networks: sparsity and density counts, FLOPs."""
from .sparsity import density, flops_ratio, kernel_density, neuron_density

__all__ = ["density", "flops_ratio", "kernel_density", "neuron_density"]
