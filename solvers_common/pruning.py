"""Iterative global magnitude pruning, the usual way to get a sparse network:
train dense, and remove the smallest weights step by step.

Gradual pruning of Zhu & Gupta, "To prune, or not to prune: exploring the
efficacy of pruning for model compression", ICLR workshop 2018, eq. (1): the
density after step ``t`` of a schedule from ``t_0`` to ``t_0 + n`` is

    d_t = d_f + (1 - d_f) (1 - (t - t_0) / n)^3,

so most weights go early, while the network still adapts easily, and the last
ones slowly. Here a step is an epoch and the smallest weights in absolute value
over all linear and convolution layers at once (global pruning, as in Blalock
et al. 2020, "What is the state of neural network pruning?") are masked with
``torch.nn.utils.prune``; a masked weight stays zero for the rest of training.
"""
import copy
import math
import numbers

import torch
from torch.nn.utils import prune

from .models import check_density
from .optim.parameter_groups import sparsifiable_modules


def cubic_density_schedule(epoch, target_density, start_epoch, end_epoch):
    """Density ``d_t`` of Zhu & Gupta (2018, eq. 1) after ``epoch`` epochs:
    1 before ``start_epoch``, ``target_density`` from ``end_epoch`` on, the
    cubic in between."""
    if epoch < start_epoch:
        return 1.0
    if epoch >= end_epoch:
        return float(target_density)
    progress = (epoch - start_epoch) / (end_epoch - start_epoch)
    return target_density + (1 - target_density) * (1 - progress) ** 3


class GlobalMagnitudePruning:
    """Prunes ``model``'s linear and convolution weights to
    :func:`cubic_density_schedule` when :meth:`step` is called after each
    epoch.

    Parameters
    ----------
    model : torch.nn.Module
    target_density : float in (0, 1]
        Fraction of weights kept at the end.
    start_epoch, end_epoch : int, 0 <= start_epoch < end_epoch
        The first pruning happens after epoch ``start_epoch + 1`` (at
        ``start_epoch`` the schedule's density is still 1); the target is
        reached after epoch ``end_epoch``.
    """

    def __init__(self, model, target_density, start_epoch, end_epoch):
        check_density(target_density)
        for name, value in (("start_epoch", start_epoch), ("end_epoch", end_epoch)):
            if not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"{name}={value!r} must be an integer >= 0.")
        if not start_epoch < end_epoch:
            raise ValueError(f"start_epoch={start_epoch} must be smaller than "
                             f"end_epoch={end_epoch}.")
        self.model, self.target_density = model, float(target_density)
        self.start_epoch, self.end_epoch = int(start_epoch), int(end_epoch)
        self.modules = sparsifiable_modules(model)
        self.n_weights = sum(module.weight.numel() for module in self.modules)
        self.n_pruned = 0

    def _current_weight(self, module):
        # After pruning, `module.weight` is recomputed from weight_orig and
        # weight_mask only at the next forward pass: rank the current values.
        if prune.is_pruned(module):
            return module.weight_orig * module.weight_mask
        return module.weight

    @torch.no_grad()
    def step(self, epoch):
        """Prune to the schedule's density after ``epoch`` epochs."""
        density = cubic_density_schedule(epoch, self.target_density, self.start_epoch,
                                         self.end_epoch)
        n_pruned = self.n_weights - math.ceil(density * self.n_weights)
        if n_pruned <= self.n_pruned:
            return
        # `amount` counts weights among the ones not pruned yet.
        prune.global_unstructured(
            [(module, "weight") for module in self.modules],
            pruning_method=prune.L1Unstructured,
            importance_scores={(module, "weight"): self._current_weight(module)
                               for module in self.modules},
            amount=n_pruned - self.n_pruned,
        )
        self.n_pruned = n_pruned

    def pruned_copy(self):
        """A copy of the model with the masks applied for good (plain weight
        parameters, zeros where pruned)."""
        for module in self.modules:
            if prune.is_pruned(module):
                # The forward pre-hook of torch.nn.utils.prune recomputes
                # `weight` at every forward pass; a training pass leaves it
                # attached to the autograd graph, which deepcopy refuses.
                module.weight = (module.weight_orig * module.weight_mask).detach()
        model = copy.deepcopy(self.model)
        for module in sparsifiable_modules(model):
            if prune.is_pruned(module):
                prune.remove(module, "weight")
        return model
