"""Proximal operators.

All operators act elementwise (or groupwise) on tensors of any shape and
broadcast ``threshold`` against ``z``.
"""
import torch


def soft_threshold(z, threshold):
    """Proximal operator of ``threshold * ||.||_1``:
    ``sign(z) * max(|z| - threshold, 0)``."""
    # sign has zero derivative: detaching it leaves the gradients unchanged
    # and saves autograd a branch of zeros.
    return torch.sign(z).detach() * torch.relu(z.abs() - threshold)


def nonnegative_soft_threshold(z, threshold):
    """Proximal operator of ``threshold * ||.||_1 + indicator(z >= 0)``:
    ``max(z - threshold, 0)``."""
    return torch.relu(z - threshold)


def group_soft_threshold(z, threshold, dim=-1, eps=1e-30):
    """Proximal operator of ``threshold * sum_g ||z_g||_2`` where the groups
    are the slices of ``z`` along ``dim`` (block soft-thresholding):
    ``z_g * max(1 - threshold / ||z_g||, 0)``."""
    norms = torch.linalg.vector_norm(z, dim=dim, keepdim=True)
    return z * torch.relu(1 - threshold / norms.clamp_min(eps))
