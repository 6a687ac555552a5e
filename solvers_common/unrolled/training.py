"""Training loops of unrolled networks.

``UnrolledTrainer`` minimizes a supervised (``1/2 ||z_L - z*||^2``, as Hadou
et al. 2024) or unsupervised (``F_x(z_L)``, as Ablin et al. 2019) loss with
Adam on mini-batches. ``ConstrainedUnrolledTrainer`` adds the layer-wise
descending constraints of Hadou, NaderiAlizadeh & Ribeiro (2024), "Robust
Stochastically-Descending Unrolled Networks", solved in the dual.
"""
import torch

from ..lasso import lasso_gradient, lasso_objective, proximal_gradient_mapping
from ..learning_rate import check_lr_schedule, step_scheduler
from .metrics import accepts_iterate_noise

LOSSES = ("supervised", "unsupervised")
CONSTRAINTS = ("distance", "gradient")
DUAL_UPDATES = ("epoch", "batch", "epoch_running")
NOISE_SCALINGS = ("constant", "log_gradient_norm")
AUTOCAST_DTYPES = (None, torch.bfloat16)


def _adam(parameters, lr):
    """``torch.optim.Adam``, with its fused implementation (one kernel per
    step instead of about ten passes over the weights) where torch has one for
    the parameters' device and dtype. The two agree up to float rounding."""
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    except RuntimeError:
        return torch.optim.Adam(parameters, lr=lr)


def _check_positive(**values):
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}.")


class ShuffledBatches:
    """Indices of mini-batches of ``batch_size`` of ``range(n_samples)``
    without replacement: a fresh permutation (drawn from ``generator``) each
    epoch, the incomplete last batch dropped. ``next()`` returns the next
    batch's indices on ``device``; ``epoch_ended`` says whether that batch was
    the epoch's last."""

    def __init__(self, n_samples, batch_size, generator, device):
        self.n_samples, self.batch_size = int(n_samples), int(batch_size)
        self.generator, self.device = generator, device
        self.per_epoch = self.n_samples // self.batch_size
        self._position, self.epoch_ended = 0, False

    def next(self):
        if self._position == 0:
            self._order = torch.randperm(self.n_samples, generator=self.generator,
                                         device=self.generator.device).to(self.device)
        index = self._order[self._position:self._position + self.batch_size]
        self._position += self.batch_size
        if self._position + self.batch_size > self.n_samples:
            self._position = 0
        self.epoch_ended = self._position == 0
        return index


class UnrolledTrainer:
    """Adam on mini-batches of ``(x, z*(x))`` pairs.

    Parameters
    ----------
    network : a module mapping signals ``(N, n)`` to iterates ``(L + 1, N, m)``;
        with ``noise_level > 0``, one whose ``forward`` takes ``iterate_noise``
        (an ``UnrolledNetwork``)
    X, z_star : tensors ``(N, n)`` and ``(N, m)``, on the network's device
    D, lmbd : the Lasso problem (for the unsupervised loss and the constraints)
    loss : ``"supervised"`` or ``"unsupervised"``
    lr, batch_size : Adam's learning rate and the mini-batch size
    generator : ``torch.Generator`` that draws the mini-batches and the noise
    noise_level : standard deviation of the Gaussian noise injected into each
        iterate ``z_1 .. z_{L-1}`` before the next layer during training
    noise_scaling : ``"constant"``, or ``"log_gradient_norm"`` to multiply it,
        per signal, by ``log ||D^T (D z_l - x)||`` as the code of Hadou et al.
    autocast_dtype : None, or ``torch.bfloat16`` to run the forward pass and
        the loss of each step under ``torch.autocast`` (mixed precision: the
        matrix products in bfloat16; the weights, their gradients and Adam's
        state stay in the network's own dtype, the "master weights")
    lr_schedule, total_steps : the learning-rate schedule of
        :mod:`solvers_common.learning_rate` (``"constant"``, ``"cosine"``,
        ``"step"``) over ``total_steps`` Adam steps (needed unless constant),
        stepped after every Adam step
    """

    def __init__(self, network, X, z_star, D, lmbd, loss="supervised", lr=1e-3,
                 batch_size=128, generator=None, noise_level=0.0,
                 noise_scaling="constant", autocast_dtype=None, lr_schedule="constant",
                 total_steps=None):
        check_lr_schedule(lr_schedule)
        if lr_schedule != "constant" and total_steps is None:
            raise ValueError(f"lr_schedule={lr_schedule!r} needs total_steps, the number of "
                             "Adam steps of the whole training.")
        if loss not in LOSSES:
            raise ValueError(f"loss={loss!r} is unknown; accepted: {list(LOSSES)}.")
        if noise_scaling not in NOISE_SCALINGS:
            raise ValueError(f"noise_scaling={noise_scaling!r} is unknown; "
                             f"accepted: {list(NOISE_SCALINGS)}.")
        _check_positive(lr=lr, batch_size=batch_size)
        if noise_level < 0:
            raise ValueError(f"noise_level must be >= 0, got {noise_level}.")
        if noise_level > 0 and not accepts_iterate_noise(network):
            raise ValueError(
                f"noise_level={noise_level} injects noise through the iterate_noise argument "
                f"of the network's forward, which {type(network).__qualname__} does not take "
                "(subclass solvers_common.unrolled.UnrolledNetwork).")
        if batch_size > X.shape[0]:
            raise ValueError(f"batch_size={batch_size} is larger than the "
                             f"{X.shape[0]} training signals.")
        if autocast_dtype not in AUTOCAST_DTYPES:
            raise ValueError(f"autocast_dtype={autocast_dtype!r} is not supported; accepted: "
                             f"{list(AUTOCAST_DTYPES)}.")
        self.network, self.X, self.z_star, self.D, self.lmbd = network, X, z_star, D, lmbd
        if generator is None:
            generator = torch.Generator(device=X.device).manual_seed(0)
        self.loss, self.batch_size, self.generator = loss, int(batch_size), generator
        self.noise_level, self.noise_scaling = noise_level, noise_scaling
        self.autocast_dtype = autocast_dtype
        self.optimizer = _adam(network.parameters(), lr=lr)
        self.scheduler = step_scheduler(self.optimizer, lr_schedule,
                                        0 if total_steps is None else total_steps)
        self.batches = ShuffledBatches(X.shape[0], self.batch_size, generator, X.device)
        self.epochs_done = 0

    @property
    def steps_per_epoch(self):
        return self.batches.per_epoch

    def _next_batch(self):
        index = self.batches.next()
        return self.X[index], self.z_star[index]

    def after_step(self):
        pass

    def end_of_epoch(self):
        self.epochs_done += 1

    def _noise(self, x):
        if self.noise_level == 0:
            return None
        last_layer = self.network.n_layers
        log_scaling = self.noise_scaling == "log_gradient_norm"
        n, m = self.D.shape
        # The gradient D^T (D z - x) of the smooth part costs two products
        # with D per layer, or one with the Gram matrix D^T D once x D is
        # known (the two agree up to float rounding): the cheaper when m < 2n.
        use_gram = log_scaling and m < 2 * n
        if use_gram:
            with torch.no_grad():
                gram, Dtx = self._gram(), x @ self.D

        def inject(layer, z):
            if layer == last_layer:
                return z
            scale = self.noise_level
            if log_scaling:
                with torch.no_grad():
                    if use_gram:  # z D^T D - x D
                        gradient = torch.addmm(Dtx, z, gram, beta=-1)
                    else:
                        gradient = lasso_gradient(z, x, self.D)
                    gradient_norm = torch.linalg.vector_norm(gradient, dim=-1, keepdim=True)
                    scale = scale * torch.log(gradient_norm.clamp_min(1e-12))
            noise = torch.randn(z.shape, generator=self.generator,
                                device=self.generator.device, dtype=z.dtype)
            return z + scale * noise.to(z.device)
        return inject

    def _gram(self):
        """``D^T D``, computed once for the dictionary ``self.D``."""
        if getattr(self, "_gram_of", None) is not self.D:
            self._gram_of, self._gram_matrix = self.D, self.D.T @ self.D
        return self._gram_matrix

    def data_loss(self, iterates, x, z_star):
        # In the data's precision: under autocast the iterates are bfloat16.
        z_last = iterates[-1].to(z_star.dtype)
        if self.loss == "supervised":
            return 0.5 * ((z_last - z_star) ** 2).sum(-1).mean()
        with self.autocast(enabled=False):
            return lasso_objective(z_last, x, self.D, self.lmbd).mean()

    def batch_loss(self, iterates, x, z_star):
        return self.data_loss(iterates, x, z_star)

    def autocast(self, enabled=True):
        """The mixed-precision context of a step; a no-op without
        ``autocast_dtype`` or with ``enabled=False``."""
        return torch.autocast(self.X.device.type, dtype=self.autocast_dtype,
                              enabled=enabled and self.autocast_dtype is not None)

    def forward(self, x):
        """The iterates of one training step on the batch ``x``."""
        noise = self._noise(x)
        # Without noise, a plain module (no iterate_noise argument) trains too.
        return self.network(x) if noise is None else self.network(x, iterate_noise=noise)

    def train(self, n_steps):
        """Take ``n_steps`` Adam steps (epochs roll over as needed)."""
        self.network.train()
        for _ in range(n_steps):
            x, z_star = self._next_batch()
            with self.autocast():
                iterates = self.forward(x)
                loss = self.batch_loss(iterates, x, z_star)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            self.after_step()
            if self.batches.epoch_ended:
                self.end_of_epoch()

    def train_epoch(self):
        self.train(self.steps_per_epoch)


class ConstrainedUnrolledTrainer(UnrolledTrainer):
    """Primal-dual training with one descending constraint per layer
    (Hadou, NaderiAlizadeh & Ribeiro 2024, problem (6) and Algorithm 1).

    For layer ``l = 1..L`` the constraint is ``c_l = mean_i r_l(x_i) - (1 - eps)
    <= 0`` with ``r_l = ||z_l - z*|| / ||z_{l-1} - z*||`` (``"distance"``, the
    authors' code) or the same ratio of the norms of the proximal-gradient
    mapping of ``F_x`` (``"gradient"``). Adam descends the Lagrangian
    ``loss + sum_l nu_l c_l`` in the weights; the multipliers follow projected
    dual ascent ``nu_l <- max(0, nu_l + lr_dual c_l)``:

    - ``dual_update="epoch"``: once per epoch, with the constraints evaluated
      on the whole training set by one more forward pass at the end of the
      epoch (the authors' code);
    - ``"epoch_running"``: once per epoch, with the constraints averaged over
      the epoch's own training forward passes, no extra pass. It differs from
      the authors' rule in what the mean is taken over: each batch's ratios
      come from the weights of its step (not the end-of-epoch weights), with
      the training noise when ``noise_level > 0``, and the signals are those
      of the epoch's batches (all of them when the batch size divides their
      number). With frozen weights and no noise the two agree;
    - ``"batch"``: after every batch, with the batch's constraints.
    """

    def __init__(self, network, X, z_star, D, lmbd, constraint="distance",
                 epsilon=0.05, lr_dual=1e-3, dual_update="epoch", **kwargs):
        if constraint not in CONSTRAINTS:
            raise ValueError(f"constraint={constraint!r} is unknown; "
                             f"accepted: {list(CONSTRAINTS)}.")
        if dual_update not in DUAL_UPDATES:
            raise ValueError(f"dual_update={dual_update!r} is unknown; "
                             f"accepted: {list(DUAL_UPDATES)}.")
        _check_positive(lr_dual=lr_dual)
        if not 0 <= epsilon < 1:
            raise ValueError(f"epsilon must be in [0, 1), got {epsilon}.")
        super().__init__(network, X, z_star, D, lmbd, **kwargs)
        self.constraint, self.epsilon = constraint, epsilon
        self.lr_dual, self.dual_update = lr_dual, dual_update
        self.multipliers = torch.zeros(network.n_layers, dtype=X.dtype, device=X.device)
        # epoch_running: the epoch's sums of ratios and counts of signals
        self._epoch_sums = torch.zeros(2, network.n_layers, dtype=X.dtype, device=X.device)
        self.step_size = 1.0 / float(getattr(network, "lipschitz", None)
                                     or torch.linalg.matrix_norm(D, ord=2) ** 2)

    def constraints(self, iterates, x, z_star):
        """``c_l`` for ``l = 1..L``, shape ``(L,)``."""
        ratio_sums, counts = self.ratio_sums(iterates, x, z_star)
        return ratio_sums / counts.clamp_min(1) - (1 - self.epsilon)

    def ratio_sums(self, iterates, x, z_star):
        """Sums over the signals of the ratios ``r_l``, and the numbers of
        signals whose ratio is defined, for ``l = 1..L``: two ``(L,)``."""
        iterates = iterates.to(z_star.dtype)
        if self.constraint == "distance":
            if torch.is_grad_enabled() and iterates.requires_grad:
                norms = torch.linalg.vector_norm(iterates - z_star, dim=-1)
            else:  # the same norms layer by layer, without an (L+1, N, m) temporary
                norms = torch.stack([torch.linalg.vector_norm(z - z_star, dim=-1)
                                     for z in iterates])
        else:
            norms = torch.linalg.vector_norm(proximal_gradient_mapping(
                iterates, x, self.D, self.lmbd, self.step_size), dim=-1)
        # A signal whose previous iterate is already at z* (for example
        # z* = 0 = z_0) has no defined ratio: it is left out of the mean
        # instead of dividing by zero.
        floor = 1e-6 * norms[0].mean().clamp_min(1e-30)
        defined = norms[:-1] > floor
        ratios = torch.where(defined, norms[1:] / norms[:-1].clamp_min(floor), 0)
        return ratios.sum(-1), defined.sum(-1).to(ratios.dtype)

    def dual_ascent(self, constraints):
        self.multipliers = torch.relu(self.multipliers + self.lr_dual * constraints.detach())

    def batch_loss(self, iterates, x, z_star):
        with self.autocast(enabled=False):
            ratio_sums, counts = self.ratio_sums(iterates, x, z_star)
        constraints = ratio_sums / counts.clamp_min(1) - (1 - self.epsilon)
        self._batch_constraints = constraints.detach()
        if self.dual_update == "epoch_running":
            self._epoch_sums += torch.stack([ratio_sums.detach(), counts])
        return self.data_loss(iterates, x, z_star) + (self.multipliers * constraints).sum()

    def after_step(self):
        # Primal step with the current multipliers, then the dual step.
        if self.dual_update == "batch":
            self.dual_ascent(self._batch_constraints)

    def end_of_epoch(self):
        super().end_of_epoch()
        if self.dual_update == "epoch_running":
            ratio_sums, counts = self._epoch_sums
            self.dual_ascent(ratio_sums / counts.clamp_min(1) - (1 - self.epsilon))
            self._epoch_sums = torch.zeros_like(self._epoch_sums)
        if self.dual_update == "epoch":
            with torch.no_grad():
                self.network.eval()
                iterates = self.network(self.X)
                self.dual_ascent(self.constraints(iterates, self.X, self.z_star))
                self.network.train()
