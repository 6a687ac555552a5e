"""Randomness from benchopt's seeds.

benchopt hands every Dataset, Objective and Solver an integer seed through
``self.get_seed(...)``; all randomness of the suite flows from it through the
helpers below, so the same seed gives the same numbers.
"""
import numpy as np
import torch


def torch_generator(seed, device="cpu"):
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed) % 2**63)
    return generator


def numpy_generator(seed):
    """A ``numpy.random.Generator`` seeded with ``seed``."""
    return np.random.default_rng(int(seed) % 2**63)


def seed_torch(seed):
    """Seed torch's global generator, for code that draws from it (for example
    ``torch.nn`` default initializations)."""
    torch.manual_seed(int(seed) % 2**63)
