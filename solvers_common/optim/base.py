"""The part of a ``torch.optim.Optimizer`` step that every optimizer of this
package shares: the closure, and the walk over the parameter groups."""
import torch


class GroupwiseOptimizer(torch.optim.Optimizer):
    """An optimizer whose step updates each parameter group at once, with
    multi-tensor kernels: subclasses define ``update_group(params, grads,
    group)`` for the group's parameters that received a gradient."""

    def update_group(self, params, grads, group):
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self.update_group(params, [p.grad for p in params], group)
        return loss
