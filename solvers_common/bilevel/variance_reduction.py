"""Variance-reduced estimators of the oracles: a SAGA-style memory of
per-batch values, and the recursive (SARAH / STORM) estimator.

SAGA (Defazio et al. 2014), as used by SABA (Dagréou et al. 2022,
Algorithm 2): for one oracle (say grad_theta G_i), the table holds the last value computed
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


class RecursiveEstimator:
    """Recursive estimate of one oracle along the iterates z_0, z_1, ...:

        d_k = g_k(z_k) + (1 - a_k) (d_{k-1} - g_k(z_{k-1})),

    g_k one mini-batch's oracle, evaluated at the current and the previous
    iterate on the same mini-batch. a_k = 0 is SARAH (Nguyen et al. 2017,
    "SARAH: a novel method for machine learning problems using stochastic
    recursive gradient", Eq. (2)), restarted from a full-batch value by
    :meth:`reset` (SRBA, VRBO); 0 < a_k <= 1 is STORM's recursive momentum
    (Cutkosky and Orabona 2019, "Momentum-based variance reduction in
    non-convex SGD", Eq. (1)), as in MRBO, SUSTAIN and FSLA; a_k = 1 is
    plain SGD. The error of d_k is a martingale whose increments shrink with
    ||z_k - z_{k-1}||, which is what makes these estimators variance reduced.
    """

    def __init__(self):
        self.direction = None

    def reset(self, value):
        """Start (or restart) from ``value``, usually a full-batch oracle."""
        self.direction = value
        return value

    def update(self, value, previous_value, momentum=0.0):
        """d_k from ``value`` = g_k(z_k) and ``previous_value`` = g_k(z_{k-1});
        the first call, with no d_{k-1}, returns ``value``."""
        if self.direction is None:
            return self.reset(value)
        self.direction = value + (1 - momentum) * (self.direction - previous_value)
        return self.direction
