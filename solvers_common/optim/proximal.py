"""Proximal stochastic gradient descent, the sparse-training baseline of
Bungert, Roith, Tenbrinck & Burger (JMLR 2022) in their experiments."""
import torch

from .base import GroupwiseOptimizer
from .checks import check_nonnegative, check_regularizer, check_unit_interval


class ProxSGD(GroupwiseOptimizer):
    """Proximal stochastic gradient descent: a gradient step on the loss, then
    the proximal step of the regularizer (the forward-backward splitting of
    Combettes & Wajs 2005, "Signal recovery by proximal forward-backward
    splitting", its forward-backward algorithm, with stochastic gradients as in Rosasco, Villa & Vu
    2014, "Convergence of stochastic proximal gradient algorithm"):

        d_{k+1}     = momentum d_k + g_k        (d_{k+1} = g_k without momentum)
        theta_{k+1} = prox_{lr J}(theta_k - lr d_{k+1})

    The momentum buffer follows ``torch.optim.SGD`` (its first value is the
    first gradient), so that with ``J = 0`` this is exactly ``torch.optim.SGD``.
    Unlike LinBreg, a weight set to zero by the proximal step comes back as
    soon as one gradient step moves it past the threshold ``lr * lmbd``, and a
    dense start is thinned from above.

    Parameters
    ----------
    params : iterable of tensors or of dicts (parameter groups)
    lr : float >= 0
    regularizer : regularizer of :mod:`solvers_common.optim.regularizers` or None
    momentum : float in [0, 1)
    """

    def __init__(self, params, lr=0.1, regularizer=None, momentum=0.0):
        super().__init__(params, dict(lr=lr, regularizer=regularizer, momentum=momentum))

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        check_nonnegative("lr", group["lr"])
        check_unit_interval("momentum", group["momentum"])
        check_regularizer(group["regularizer"], group["params"])

    def update_group(self, params, grads, group):
        directions = grads
        if group["momentum"] > 0:
            # A zero buffer times momentum plus the first gradient is that
            # gradient: torch.optim.SGD's first buffer, exactly.
            directions = [self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                          for p in params]
            torch._foreach_mul_(directions, group["momentum"])
            torch._foreach_add_(directions, grads)
        torch._foreach_add_(params, directions, alpha=-group["lr"])
        if group["regularizer"] is not None:
            group["regularizer"].prox_(params, group["lr"])
