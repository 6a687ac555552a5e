"""Stochastic linearized Bregman iterations for sparse neural networks.

Bungert, Roith, Tenbrinck & Burger, "A Bregman learning framework for sparse
neural networks", JMLR 23 (2022). With a convex regularizer J, the elastic net
``J_delta(theta) = J(theta) + ||theta||^2 / (2 delta)`` and a stochastic
gradient ``g_k`` of the loss at ``theta_k``, LinBreg (their Algorithm 1) reads

    v_{k+1}     = v_k - lr g_k,
    theta_{k+1} = prox_{delta J}(delta v_{k+1}),

started from ``v_0 = theta_0 / delta + p_0`` with ``p_0`` a subgradient of J at
``theta_0``, so that ``prox_{delta J}(delta v_0) = theta_0``. ``v`` is a
subgradient of ``J_delta`` at ``theta``: a weight becomes non-zero only once
the accumulated gradients push ``|v|`` above the threshold ``lmbd``, which is
why training started sparse stays sparse and grows ("inverse scale space").
With ``J = 0`` and ``delta = 1`` it is plain stochastic gradient descent.

Both optimizers are ``torch.optim.Optimizer`` subclasses usable with any torch
model; each parameter group has its own ``regularizer`` (None for no
regularizer: biases, normalization parameters) and ``delta``. They update all
the parameters of a group at once with multi-tensor ``torch._foreach_*``
kernels, which keeps a step within a few percent of SGD's (or Adam's) time.
"""
import math

import torch

from .base import GroupwiseOptimizer
from .checks import check_nonnegative, check_positive, check_regularizer, check_unit_interval


class _BregmanOptimizer(GroupwiseOptimizer):
    """The part LinBreg and AdaBreg share: the dual variable ``v``, its
    initialization and the primal update ``theta = prox_{delta J}(delta v)``."""

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        self._check_group(self.param_groups[-1])

    def _check_group(self, group):
        check_nonnegative("lr", group["lr"])
        check_positive("delta", group["delta"])
        check_regularizer(group["regularizer"], group["params"])

    def _duals(self, params, group):
        """``v`` of each parameter, set on first use to
        ``theta_0 / delta + p_0`` with ``p_0`` in the subdifferential of J at
        ``theta_0`` (Bungert et al. 2022, initialization of Algorithm 1)."""
        duals = []
        for parameter in params:
            state = self.state[parameter]
            if "dual" not in state:
                dual = parameter.detach() / group["delta"]
                if group["regularizer"] is not None:
                    dual = dual + group["regularizer"].subgradient(parameter.detach())
                state["dual"] = dual
            duals.append(state["dual"])
        return duals

    @staticmethod
    def _primal_update(params, duals, group):
        """``theta = prox_{delta J}(delta v)``, written into the parameters."""
        torch._foreach_copy_(params, duals)
        if group["delta"] != 1:
            torch._foreach_mul_(params, group["delta"])
        if group["regularizer"] is not None:
            group["regularizer"].prox_(params, group["delta"])

    def _dual_step(self, params, grads, duals, group):
        """Move the dual variables ``duals`` of ``params`` along ``-grads``."""
        raise NotImplementedError

    def update_group(self, params, grads, group):
        duals = self._duals(params, group)
        self._dual_step(params, grads, duals, group)
        self._primal_update(params, duals, group)


class LinBreg(_BregmanOptimizer):
    """LinBreg, stochastic linearized Bregman iterations (Bungert, Roith,
    Tenbrinck & Burger, JMLR 2022, Algorithm 1), with optional momentum
    (their Algorithm 2):

        m_{k+1}     = momentum m_k + (1 - momentum) lr g_k    (m_0 = 0)
        v_{k+1}     = v_k - m_{k+1}                          (v_k - lr g_k without momentum)
        theta_{k+1} = prox_{delta J}(delta v_{k+1})

    Parameters
    ----------
    params : iterable of tensors or of dicts (parameter groups)
    lr : float >= 0
        Step size ``tau`` on the dual variable.
    regularizer : regularizer of :mod:`solvers_common.optim.regularizers` or None
        ``J``; None means ``J = 0``.
    delta : float > 0
        Elastic-net parameter: ``delta * lr`` is the effective step size on the
        non-zero weights.
    momentum : float in [0, 1)
    """

    def __init__(self, params, lr=0.1, regularizer=None, delta=1.0, momentum=0.0):
        defaults = dict(lr=lr, regularizer=regularizer, delta=delta, momentum=momentum)
        super().__init__(params, defaults)

    def _check_group(self, group):
        super()._check_group(group)
        check_unit_interval("momentum", group["momentum"])

    def _dual_step(self, params, grads, duals, group):
        momentum = group["momentum"]
        if momentum > 0:
            buffers = [self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                       for p in params]
            torch._foreach_mul_(buffers, momentum)
            torch._foreach_add_(buffers, grads, alpha=(1 - momentum) * group["lr"])
            torch._foreach_sub_(duals, buffers)
        else:
            torch._foreach_add_(duals, grads, alpha=-group["lr"])


class AdaBreg(_BregmanOptimizer):
    """AdaBreg, the Bregman version of Adam (Bungert, Roith, Tenbrinck &
    Burger, JMLR 2022, Algorithm 3): Adam's bias-corrected moments (Kingma &
    Ba 2015, Algorithm 1) drive the dual variable,

        m_{k+1}     = beta1 m_k + (1 - beta1) g_k
        s_{k+1}     = beta2 s_k + (1 - beta2) g_k^2
        v_{k+1}     = v_k - lr m_{k+1} / (1 - beta1^(k+1))
                           / (sqrt(s_{k+1} / (1 - beta2^(k+1))) + eps)
        theta_{k+1} = prox_{delta J}(delta v_{k+1})

    With ``J = 0`` and ``delta = 1`` it is Adam.

    Parameters
    ----------
    params : iterable of tensors or of dicts (parameter groups)
    lr : float >= 0
    regularizer : regularizer of :mod:`solvers_common.optim.regularizers` or None
    delta : float > 0
    betas : (float, float), each in [0, 1)
    eps : float > 0
    """

    def __init__(self, params, lr=1e-3, regularizer=None, delta=1.0, betas=(0.9, 0.999),
                 eps=1e-8):
        defaults = dict(lr=lr, regularizer=regularizer, delta=delta, betas=tuple(betas),
                        eps=eps)
        super().__init__(params, defaults)

    def _check_group(self, group):
        super()._check_group(group)
        betas = group["betas"]
        if len(betas) != 2:
            raise ValueError(f"betas={betas!r} must be a pair (beta1, beta2).")
        check_unit_interval("betas[0]", betas[0])
        check_unit_interval("betas[1]", betas[1])
        check_positive("eps", group["eps"])

    def _dual_step(self, params, grads, duals, group):
        beta1, beta2 = group["betas"]
        # Adam's bias corrections, per parameter (their step counts may
        # differ when some parameters had no gradient at some steps).
        first_moments, second_moments, step_sizes, second_corrections = [], [], [], []
        for parameter in params:
            state = self.state[parameter]
            if "step" not in state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(parameter)
                state["exp_avg_sq"] = torch.zeros_like(parameter)
            state["step"] += 1
            first_moments.append(state["exp_avg"])
            second_moments.append(state["exp_avg_sq"])
            step_sizes.append(-group["lr"] / (1 - beta1 ** state["step"]))
            second_corrections.append(math.sqrt(1 - beta2 ** state["step"]))

        torch._foreach_lerp_(first_moments, grads, 1 - beta1)
        torch._foreach_mul_(second_moments, beta2)
        torch._foreach_addcmul_(second_moments, grads, grads, value=1 - beta2)
        denominators = torch._foreach_sqrt(second_moments)
        torch._foreach_div_(denominators, second_corrections)
        torch._foreach_add_(denominators, group["eps"])
        torch._foreach_addcdiv_(duals, first_moments, denominators, step_sizes)
