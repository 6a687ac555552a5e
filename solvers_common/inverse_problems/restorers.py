"""Restoration methods: modules ``restorer(y, physics, iterate_hook=None)``
that return the restored images ``x_K`` from measurements ``y`` of
``physics`` (a deepinv linear operator).

The contract, which the objective of ``benchmark_inverse_problems`` relies on:
the method is a ``torch.nn.Module``; it computes iterates ``x_0, ..., x_K``
(PnP or proximal-gradient iterations, or the layers of an unrolled network,
``x_0`` its initialization) and, when ``iterate_hook`` is given, replaces each
``x_k`` by ``iterate_hook(k, x_k)`` before going on (the hook observes the
iterates, or perturbs them), ``x_K`` included; it returns the last iterate.

- :class:`ProximalGradient`: forward-backward ``x <- prox(x - tau A^T (A x - y))``
  with any denoiser as the proximal step (plug-and-play, Venkatakrishnan,
  Bouman & Wohlberg 2013), for example deepinv's TV prox or a DnCNN;
- :class:`DictionaryPnP`: the same loop with an unrolled dictionary denoiser
  whose code is warm-started across outer iterations (Kowalski et al. 2024,
  Algorithm 2).
"""
import torch
from torch import nn

from .physics import data_gradient


def _identity_hook(index, x):
    return x


class ProximalGradient(nn.Module):
    """``n_iterations`` steps of ``x <- denoiser(x - step A^T (A x - y))``
    from ``x_0 = A^T y``. ``denoiser(x)`` maps images to images; ``clip``
    clamps each iterate to [0, 1]."""

    def __init__(self, denoiser, n_iterations, step, clip=False):
        super().__init__()
        self.denoiser, self.n_iterations, self.step = denoiser, int(n_iterations), float(step)
        self.clip = clip

    def forward(self, y, physics, iterate_hook=None):
        hook = iterate_hook or _identity_hook
        x = hook(0, physics.A_adjoint(y))
        for k in range(1, self.n_iterations + 1):
            x = self.denoiser(x - self.step * data_gradient(physics, x, y))
            if self.clip:
                x = x.clamp(0, 1)
            x = hook(k, x)
        return x


class TVProx(nn.Module):
    """The proximal operator of ``lmbd * step * TV`` by deepinv's TV prior
    (Chambolle-Pock inner solver, ``n_inner`` iterations)."""

    def __init__(self, lmbd, step, n_inner=50):
        super().__init__()
        import deepinv as dinv

        self.gamma = float(lmbd) * float(step)
        self.prior = dinv.optim.prior.TVPrior(n_it_max=int(n_inner))

    def forward(self, x):
        return self.prior.prox(x, gamma=self.gamma)


class DictionaryPnP(nn.Module):
    """Forward-backward plug-and-play with an unrolled dictionary denoiser
    (Kowalski, Malezieux, Moreau & Repetti 2024, Algorithm 2):

        x_tilde = x_k - tau A^T (A x_k - y)
        x_{k+1}, c_{k+1} = D_L(x_tilde, c_k if warm_start else 0)

    ``D_L`` is ``denoiser`` (a :class:`~.dictionary.ConvolutionalDictionaryDenoiser`)
    run for ``n_layers`` layers with regularization ``lmbd`` (default: the
    denoiser's training one). With warm start, ``L = 1`` and ``L = infinity``
    share their fixed points (Proposition 4.2 and 4.4 of the paper); without
    it, a small ``L`` stops short of the exact denoiser's.

    Warm-started, the analysis iteration with ``L = 1`` is the primal-dual
    algorithm of Loris & Verhoeven (2011) / Chen, Huang & Zhang (2013) for
    ``min 1/2 ||A x - y||^2 + lmbd / tau ||W x||_1``, which converges for a
    dual step ``gamma <= 1 / ||W||^2`` (the authors' convergence experiment
    uses ``1 / ||D||^2``): the denoiser's training step ``1.8 / ||W||^2`` is
    capped at ``1 / ||W||^2`` there (with 1.8, a trained 20/1 PnP fell from
    32 to 10.5 dB between iterations 1 and 30 on 32 x 32 deblurring, and
    reached 25.8 dB, 20/20's fixed point, with 1). The fixed point of a
    warm-started PnP does not depend on that step; a cold-started denoiser
    keeps its training step, which defines it.
    """

    def __init__(self, denoiser, n_iterations, step, n_layers=1, warm_start=True, lmbd=None):
        super().__init__()
        self.denoiser, self.n_iterations = denoiser, int(n_iterations)
        self.step, self.n_layers, self.warm_start = float(step), int(n_layers), bool(warm_start)
        self.lmbd = None if lmbd is None else float(lmbd)
        if self.lmbd is not None and not self.lmbd > 0:
            raise ValueError(f"lmbd must be positive, got {lmbd!r}.")

    def denoiser_step(self):
        scaling = self.denoiser.step_scaling
        if self.warm_start and self.denoiser.mode == "analysis":
            scaling = min(scaling, 1.0)
        return self.denoiser.step(scaling)

    def forward(self, y, physics, iterate_hook=None, return_code=False):
        hook = iterate_hook or _identity_hook
        x = hook(0, physics.A_adjoint(y))
        code = None
        gamma = self.denoiser_step()  # once: the weights do not change here
        for k in range(1, self.n_iterations + 1):
            x_tilde = x - self.step * data_gradient(physics, x, y)
            x, code = self.denoiser(x_tilde, code if self.warm_start else None,
                                    n_layers=self.n_layers, lmbd=self.lmbd, step=gamma)
            x = hook(k, x)
        return (x, code) if return_code else x


def iterates_of(restorer, y, physics, iterate_noise=None):
    """All iterates ``(K + 1, N, C, H, W)`` of ``restorer`` on ``y``, through
    its hook (``iterate_noise(k, x)``, when given, perturbs them first)."""
    iterates = []

    def record(index, x):
        if iterate_noise is not None:
            x = iterate_noise(index, x)
        iterates.append(x)
        return x

    restorer(y, physics, iterate_hook=record)
    return torch.stack(iterates)
