"""Unrolled restoration networks: learned proximal gradient and GLOW-Prox.

Both follow the restorer contract of :mod:`.restorers`
(``network(y, physics, iterate_hook=None)`` returns ``x_L``, the hook sees
``x_0 = A^T y, x_1, ..., x_L``) and are trained end to end by
:class:`~.training.RestorationTrainer`.
"""
import normflows as nf
import torch
import torch.nn.functional as F
from torch import nn

from .physics import data_gradient


def _identity_hook(index, x):
    return x


PROX_INITS = ("smoothing", "identity")
# The binomial 3 x 3 low-pass filter, (1, 2, 1)^T (1, 2, 1) / 16.
BINOMIAL_3X3 = torch.tensor([1.0, 2.0, 1.0])[:, None] * torch.tensor([1.0, 2.0, 1.0]) / 16


class SmallDenoiserCNN(nn.Module):
    """``x -> x + f(x)``, ``f`` three 3 x 3 convolutions (replicate padding)
    with ReLUs. ``init``:

    - ``"identity"``: the last convolution at zero, so that the block starts
      as the identity;
    - ``"smoothing"``: the block starts as the binomial 3 x 3 low-pass filter
      ``G``, exactly: the first ``2 C`` channels carry ``relu(x)`` and
      ``relu(-x)`` through the first two convolutions and the last one applies
      ``G - 1`` to their difference, so ``f(x) = (G - 1) x``; the other
      channels keep torch's random initialization and reach the output
      through weights that start at zero (their gradients do not: those
      channels are active). Needs ``width >= 2 C``.
    """

    def __init__(self, n_channels, width=16, init="smoothing"):
        super().__init__()
        if init not in PROX_INITS:
            raise ValueError(f"init={init!r} is unknown; accepted: {list(PROX_INITS)}.")
        if init == "smoothing" and width < 2 * n_channels:
            raise ValueError(f"width={width} is below 2 * n_channels = {2 * n_channels}, "
                             "which the smoothing initialization needs.")
        self.net = nn.Sequential(
            nn.Conv2d(n_channels, width, 3, padding=1, padding_mode="replicate"), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, padding_mode="replicate"), nn.ReLU(),
            nn.Conv2d(width, n_channels, 3, padding=1, padding_mode="replicate"))
        first, second, last = self.net[0], self.net[2], self.net[4]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        if init == "identity":
            return
        with torch.no_grad():
            c = n_channels
            for module in (first, second):
                module.weight[:2 * c].zero_()
                module.bias[:2 * c].zero_()
            for channel in range(c):
                first.weight[channel, channel, 1, 1] = 1.0
                first.weight[c + channel, channel, 1, 1] = -1.0
            for channel in range(2 * c):
                second.weight[channel, channel, 1, 1] = 1.0
            high_pass = BINOMIAL_3X3.to(last.weight.dtype).clone()
            high_pass[1, 1] -= 1.0
            for channel in range(c):
                last.weight[channel, channel] = high_pass
                last.weight[channel, c + channel] = -high_pass

    def forward(self, x):
        return x + self.net(x)


class UnrolledProximalGradient(nn.Module):
    """``L`` layers ``x <- P_l(x - mu_l A^T (A x - y))`` with a learned prox
    ``P_l`` (a small residual CNN per layer) and learned steps ``mu_l``
    (Gregor & LeCun 2010's unrolling idea applied to images, as in
    Adler & Oktem 2018's learned proximal operators). ``step`` is
    ``1 / ||A||^2``; ``mu_l = step * relu(s_l)``, ``s_l = 1`` at
    initialization. ``prox_init`` (see :class:`SmallDenoiserCNN`):
    ``"smoothing"`` starts the network as ``L`` iterations of plug-and-play
    proximal gradient with a binomial low-pass filter as the denoiser (a
    restoration method already: it fills inpainting holes, which the
    gradient step alone never does, since with step ``1 / ||A||^2`` it only
    resets the observed pixels); ``"identity"`` starts it as plain gradient
    descent on the data term (``A^T y`` itself for inpainting)."""

    def __init__(self, n_layers, n_channels, step, width=16, prox_init="smoothing"):
        super().__init__()
        self.n_layers, self.step = int(n_layers), float(step)
        self.proxes = nn.ModuleList(SmallDenoiserCNN(n_channels, width, init=prox_init)
                                    for _ in range(self.n_layers))
        self.step_scales = nn.Parameter(torch.ones(self.n_layers))

    def forward(self, y, physics, iterate_hook=None):
        hook = iterate_hook or _identity_hook
        x = hook(0, physics.A_adjoint(y))
        for layer, prox in enumerate(self.proxes):
            mu = self.step * F.relu(self.step_scales[layer])
            x = hook(layer + 1, prox(x - mu * data_gradient(physics, x, y)))
        return x


class SoftClampedScale(nn.Module):
    """The parameter map of an affine coupling with its log-scales (the odd
    output channels, normflows' layout) soft-clamped to ``(-clamp, clamp)``
    by ``clamp * tanh(s / clamp)`` (the soft clamping of Ardizzone, Lueth,
    Rother & Koethe 2019, "Guided Image Generation with Conditional Invertible
    Neural Networks", Section 3.1, which uses ``atan``). Glow's scale
    ``sigmoid(s + 2)`` then stays in ``[sigmoid(2 - clamp), sigmoid(2 + clamp)]``,
    so that no coupling can amplify a latent by more than
    ``1 / sigmoid(2 - clamp)`` when decoding."""

    def __init__(self, param_map, clamp):
        super().__init__()
        self.param_map, self.clamp = param_map, float(clamp)

    def forward(self, x):
        param = self.param_map(x)
        shift, log_scale = param[:, 0::2], param[:, 1::2]
        log_scale = self.clamp * torch.tanh(log_scale / self.clamp)
        return torch.stack([shift, log_scale], dim=2).flatten(1, 2)


class Glow(nn.Module):
    """A multiscale Glow (Kingma & Dhariwal 2018) made of normflows blocks:
    ``n_levels`` levels, each a squeeze, ``depth`` Glow steps (ActNorm,
    invertible 1 x 1 convolution, affine coupling with ``hidden_channels``)
    and, except the last, a split that factors out half of the channels.

    ``encode(x)`` maps images (sides divisible by ``2 ** n_levels``) to the
    list of latents of every level, the last one last; ``decode`` inverts it.
    Images are centred (``x - 0.5``) before the flow, as in Glow's code.
    (normflows' ``forward`` is the generative direction, latent to data.)
    ``scale_clamp`` (None: Glow's unbounded log-scales) soft-clamps every
    coupling's log-scale, see :class:`SoftClampedScale`.
    """

    def __init__(self, n_channels, n_levels=2, depth=4, hidden_channels=32, scale_clamp=None):
        super().__init__()
        if int(n_levels) != n_levels or n_levels < 1:
            raise ValueError(f"n_levels must be an integer >= 1, got {n_levels!r}.")
        self.n_levels = int(n_levels)
        self.squeeze = nf.flows.Squeeze()
        self.levels = nn.ModuleList()
        channels = n_channels
        for level in range(self.n_levels):
            channels *= 4
            self.levels.append(nn.ModuleList(
                nf.flows.GlowBlock(channels, hidden_channels, split_mode="channel",
                                   scale=True)
                for _ in range(int(depth))))
            if level < self.n_levels - 1:
                channels //= 2
        if scale_clamp is not None:
            if not scale_clamp > 0:
                raise ValueError(f"scale_clamp must be positive or None, got {scale_clamp!r}.")
            for blocks in self.levels:
                for block in blocks:
                    coupling = block.flows[0].flows[1]  # Split, AffineCoupling, Merge
                    coupling.param_map = SoftClampedScale(coupling.param_map, scale_clamp)

    def check_size(self, x):
        factor = 2 ** self.n_levels
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(f"images of size {tuple(x.shape[-2:])} cannot pass {self.n_levels} "
                             f"squeezes: their sides must be multiples of 2 ** n_levels = "
                             f"{factor}.")

    def encode(self, x):
        self.check_size(x)
        h, latents = x - 0.5, []
        for level, blocks in enumerate(self.levels):
            h, _ = self.squeeze.inverse(h)
            for block in blocks:
                h, _ = block.inverse(h)
            if level < self.n_levels - 1:
                h, factored = h.chunk(2, dim=1)
                latents.append(factored)
        latents.append(h)
        return latents

    def decode(self, latents):
        h = latents[-1]
        for level in range(self.n_levels - 1, -1, -1):
            if level < self.n_levels - 1:
                h = torch.cat([h, latents[level]], dim=1)
            for block in reversed(self.levels[level]):
                h, _ = block.forward(h)
            h, _ = self.squeeze.forward(h)
        return h + 0.5


class GlowProx(nn.Module):
    """GLOW-Prox (Hadou, NaderiAlizadeh & Ribeiro 2024, Section 5.2): an
    unrolled proximal gradient whose prox is a Glow per layer,

        x <- x - mu_l A^T (A x - y)
        z = G_l^{-1}(x);  z_last <- z_last / (1 + lmbd_l);  x = clamp(G_l(z), 0, 1)

    (dividing the last level's latent by ``1 + lmbd_l`` is the prox of
    ``lmbd_l / 2 ||z_last||^2``, a Gaussian prior in the flow's latent space).
    ``mu_l = step * relu(s_l)`` and ``lmbd_l = relu(t_l)``; the authors draw
    ``s_l, t_l`` from N(0, 0.01^2), here ``s_l = 1`` and ``t_l = 0.01`` so
    that no layer starts with a dead ReLU. The authors' code takes the step
    with the opposite sign, ``x + mu A^T (A x - y)``; this module descends.
    ``latents`` holds, after a forward pass, the last-level latent of each
    layer (for the descending constraints in z). ``scale_clamp`` soft-clamps
    the couplings' log-scales (:class:`SoftClampedScale`; None: Glow's,
    unbounded, as the authors): decoding a shrunk latent divides by the
    coupling scales, and with unbounded ones training at Adam 1e-4 or 1e-5
    diverged, constrained or not, on 24 x 24 faces (one coupling took a
    latent from 74 to 35,818, the next to 8e19, then inf); with
    ``scale_clamp=2`` both trained.
    """

    def __init__(self, n_layers, n_channels, step, n_levels=2, depth=4, hidden_channels=32,
                 scale_clamp=None):
        super().__init__()
        if int(n_layers) != n_layers or n_layers < 1:
            raise ValueError(f"n_layers must be an integer >= 1, got {n_layers!r}.")
        self.n_layers, self.step = int(n_layers), float(step)
        self.flows = nn.ModuleList(Glow(n_channels, n_levels, depth, hidden_channels,
                                        scale_clamp=scale_clamp)
                                   for _ in range(self.n_layers))
        self.step_scales = nn.Parameter(torch.ones(self.n_layers))
        self.prior_weights = nn.Parameter(torch.full((self.n_layers,), 0.01))
        self.latents = []

    def __getstate__(self):
        # The latents of the last pass belong to its graph: not copied.
        return {**self.__dict__, "latents": []}

    def prox(self, layer, x):
        flow = self.flows[layer]
        latents = flow.encode(x)
        latents[-1] = latents[-1] / (1 + F.relu(self.prior_weights[layer]))
        return flow.decode(latents).clamp(0, 1), latents[-1]

    def forward(self, y, physics, iterate_hook=None):
        hook = iterate_hook or _identity_hook
        x = hook(0, physics.A_adjoint(y))
        self.latents = []
        for layer in range(self.n_layers):
            mu = self.step * F.relu(self.step_scales[layer])
            x, latent = self.prox(layer, x - mu * data_gradient(physics, x, y))
            self.latents.append(latent)
            x = hook(layer + 1, x)
        return x
