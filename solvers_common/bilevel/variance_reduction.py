"""SAGA-style memory of per-batch oracle values (Defazio et al. 2014), as
used by SABA (Dagréou et al. 2022, Algorithm 2).

For one oracle (say grad_theta G_i), the table holds the last value computed
on each block of samples and their weighted average. When block i gives a
new value g, the variance-reduced direction is

    g - table[i] + mean_j weight_j table[j],

an unbiased estimate of the full-data value whose variance vanishes as the
iterates converge; then table[i] = g and the average is updated in O(size).
"""
import torch


class SagaMemory:
    """Memory of one oracle over ``len(weights)`` blocks.

    Parameters
    ----------
    weights : sequence of float
        Share of the samples in each block (they sum to 1).
    shape : tuple
        Shape of the oracle's value.
    device, dtype : torch device and dtype of the table.
    """

    def __init__(self, weights, shape, device=None, dtype=None):
        self.weights = list(weights)
        self.table = torch.zeros(len(self.weights), *shape, device=device, dtype=dtype)
        self.average = torch.zeros(shape, device=device, dtype=dtype)

    def direction(self, batch_id, value):
        """The variance-reduced direction for ``value`` computed on block
        ``batch_id``; stores ``value`` in the table."""
        difference = value - self.table[batch_id]
        direction = difference + self.average
        self.average += self.weights[batch_id] * difference
        self.table[batch_id] = value
        return direction
