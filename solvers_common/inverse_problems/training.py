"""Training of denoisers and unrolled restoration networks.

- :class:`DenoiserTrainer`: a denoiser on pairs (clean image, image plus
  Gaussian noise of level ``sigma``, drawn anew at every batch), mean squared
  error, Adam: how the dictionary denoisers of Kowalski et al. (2024) and the
  DnCNN of plug-and-play are trained.
- :class:`RestorationTrainer`: an unrolled restorer end to end on
  (measurement, clean image) pairs, optionally with the layer-wise descending
  constraints of Hadou, NaderiAlizadeh & Ribeiro (2024). It is the
  primal-dual machinery of
  :class:`solvers_common.unrolled.ConstrainedUnrolledTrainer` (mini-batches,
  Adam on the Lagrangian, projected dual ascent after every batch, iterate
  noise injection through the ``iterate_noise`` hook), with the constraints of
  the GLOW-Prox experiment in place of the Lasso ones.

Both take a learning-rate schedule (``schedule(lr_schedule, total_steps)``,
:mod:`solvers_common.learning_rate`), stepped after every optimizer step.
"""
import torch
from torch import nn

from ..learning_rate import step_scheduler
from ..unrolled import ConstrainedUnrolledTrainer
from ..unrolled.training import ShuffledBatches, _adam, _check_positive
from .physics import data_gradient, measure
from .restorers import iterates_of


class ScheduledTrainer:
    """The learning-rate schedule of a trainer with an ``optimizer``."""

    scheduler = None

    def schedule(self, lr_schedule, total_steps):
        """Follow ``lr_schedule`` over ``total_steps`` optimizer steps (see
        :func:`solvers_common.learning_rate.step_scheduler`)."""
        self.scheduler = step_scheduler(self.optimizer, lr_schedule, total_steps)

    def step_schedule(self):
        if self.scheduler is not None:
            self.scheduler.step()


class DenoiserTrainer(ScheduledTrainer):
    """Adam on ``||denoiser(x + sigma n) - x||^2`` (summed over pixels,
    averaged over the batch). ``denoiser`` returns images or a tuple whose
    first item is the images (the dictionary denoisers)."""

    def __init__(self, denoiser, images, sigma, lr=1e-3, batch_size=16, generator=None):
        _check_positive(lr=lr, batch_size=batch_size)
        if not sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {sigma!r}.")
        if batch_size > images.shape[0]:
            raise ValueError(f"batch_size={batch_size} is larger than the {images.shape[0]} "
                             "training images.")
        self.denoiser, self.images, self.sigma = denoiser, images, float(sigma)
        self.batch_size = int(batch_size)
        self.generator = generator or torch.Generator(images.device).manual_seed(0)
        self.optimizer = _adam(denoiser.parameters(), lr=lr)
        self.batches = ShuffledBatches(images.shape[0], self.batch_size, self.generator,
                                       images.device)

    @property
    def steps_per_epoch(self):
        return self.batches.per_epoch

    def _next_batch(self):
        return self.images[self.batches.next()]

    def train(self, n_steps):
        self.denoiser.train()
        for _ in range(n_steps):
            clean = self._next_batch()
            noise = torch.randn(clean.shape, generator=self.generator, dtype=clean.dtype,
                                device=self.generator.device).to(clean.device)
            output = self.denoiser(clean + self.sigma * noise)
            if isinstance(output, tuple):
                output = output[0]
            loss = ((output - clean) ** 2).sum(dim=(1, 2, 3)).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.step_schedule()


class BoundRestorer(nn.Module):
    """``restorer`` with its ``physics`` fixed, as the unrolled trainers of
    :mod:`solvers_common.unrolled` call networks: ``module(y, iterate_noise=None)``
    returns the stacked iterates ``(L + 1, N, C, H, W)``. ``lipschitz`` is
    ``||A||^2``. The physics is not registered as a submodule, so the
    optimizer sees the restorer's parameters only."""

    def __init__(self, restorer, physics, lipschitz):
        super().__init__()
        self.restorer = restorer
        self.__dict__["physics"] = physics
        self.n_layers, self.lipschitz = int(restorer.n_layers), float(lipschitz)

    def forward(self, y, iterate_noise=None):
        return iterates_of(self.restorer, y, self.physics, iterate_noise)


class RestorationTrainer(ScheduledTrainer, ConstrainedUnrolledTrainer):
    """End-to-end training of an unrolled restorer (``n_layers`` attribute),
    loss ``||x_L - x||^2`` per image averaged over the batch (Hadou et al.'s
    MSE), Adam; measurements ``y = A x + noise_level n`` drawn once per
    training image.

    With ``constrained=True``, the descending constraints of Hadou,
    NaderiAlizadeh & Ribeiro (2024, GLOW-Prox, Section 5.2): with
    ``f(x, z) = 100 ||y - A x||^2 - log N(z; 0, I)``, the batch means
    ``g_l`` of ``||grad_x f(x_l)||`` and, for restorers that record latents
    (GLOW-Prox), of ``||grad_z f(z_l)|| = ||z_l||`` must shrink from layer to
    layer: ``c_l = g_{l+1} / g_l - (1 - epsilon) <= 0`` for ``l = 1..L-1``,
    one column per space. Dual ascent after every batch. ``noise_injection``
    adds noise of norm ``1 / (k + 1)`` per image to the iterates
    ``x_0 .. x_{L-2}`` before the next layer, clamped to [0, 1] (the authors'
    ``noisyOuts``). The constraint values of the last batch are in
    ``last_constraints``.
    """

    def __init__(self, restorer, physics, images, noise_level, lipschitz, constrained=False,
                 epsilon=0.05, lr_dual=1e-2, noise_injection=False, lr=1e-3, batch_size=8,
                 generator=None):
        generator = generator or torch.Generator(images.device).manual_seed(0)
        with torch.no_grad():
            measurements = measure(physics, images, noise_level, generator)
        bound = BoundRestorer(restorer, physics, lipschitz)
        super().__init__(bound, measurements, images, None, None, constraint="gradient",
                         epsilon=epsilon, lr_dual=lr_dual, dual_update="batch",
                         loss="supervised", lr=lr, batch_size=batch_size, generator=generator)
        self.restorer, self.physics = restorer, physics
        self.constrained, self.noise_injection = bool(constrained), bool(noise_injection)
        n_spaces = 2 if hasattr(restorer, "latents") else 1
        self.multipliers = torch.zeros(max(bound.n_layers - 1, 0), n_spaces,
                                       dtype=images.dtype, device=images.device)
        self.last_constraints = None

    def gradient_norms(self, iterates, y):
        """``(L, S)``: batch means of ``||A^T (A x_l - y)||`` (and ``||z_l||``)
        for ``l = 1..L``. The factor 200 of ``f`` cancels in the ratios."""
        norms = [torch.stack([torch.linalg.vector_norm(
            data_gradient(self.physics, x, y).flatten(1), dim=1).mean() for x in iterates[1:]])]
        latents = getattr(self.restorer, "latents", None)
        if latents is not None and len(latents) == len(iterates) - 1:
            norms.append(torch.stack([torch.linalg.vector_norm(z.flatten(1), dim=1).mean()
                                      for z in latents]))
        return torch.stack(norms, dim=1)

    def constraints(self, iterates, y, images):
        norms = self.gradient_norms(iterates, y)
        return norms[1:] / norms[:-1].clamp_min(1e-12) - (1 - self.epsilon)

    def data_loss(self, iterates, y, images):
        return ((iterates[-1] - images) ** 2).sum(dim=(1, 2, 3)).mean()

    def batch_loss(self, iterates, y, images):
        constraints = self.constraints(iterates, y, images)
        self._batch_constraints = self.last_constraints = constraints.detach()
        loss = self.data_loss(iterates, y, images)
        if self.constrained:
            loss = loss + (self.multipliers * constraints).sum()
        return loss

    def after_step(self):
        # UnrolledTrainer.train steps self.scheduler itself.
        if self.constrained:
            super().after_step()

    def _noise(self, y):
        if not self.noise_injection:
            return None
        last = self.network.n_layers - 2

        def inject(index, x):
            if index > last:
                return x
            noise = torch.randn(x.shape, generator=self.generator, dtype=x.dtype,
                                device=self.generator.device).to(x.device)
            norms = torch.linalg.vector_norm(noise.flatten(1), dim=1).clamp_min(1e-12)
            noise = noise / norms.view(-1, *([1] * (x.ndim - 1)))
            return (x + noise / (index + 1)).clamp(0, 1)
        return inject
