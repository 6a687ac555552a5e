"""Supervised image classification: the cross-entropy loss, its evaluation on
a whole data set, and a mini-batch training loop around any torch optimizer
(:class:`MiniBatchTrainer`, which :mod:`solvers_common.denoising` shares)."""
import math
import numbers

import torch
import torch.nn.functional as F

from .learning_rate import STEP_SCHEDULES, check_lr_schedule, step_scheduler

# The per-step schedules of solvers_common.learning_rate, and the plateau
# schedule of Bungert et al. (2022), which reads the epoch's training loss.
LR_SCHEDULES = (*STEP_SCHEDULES, "plateau")
AUGMENTATIONS = ("none", "crop_flip")


@torch.no_grad()
def loss_and_accuracy(model, X, y, batch_size=1000):
    """Mean cross-entropy and accuracy of ``model`` on ``(X, y)``, by batches
    of ``batch_size`` images cast to the model's dtype and device. The caller
    chooses the mode (``model.eval()`` for scores)."""
    parameter = next(model.parameters())
    total_loss, correct = 0.0, 0
    for start in range(0, X.shape[0], batch_size):
        inputs = X[start:start + batch_size].to(parameter.device, parameter.dtype)
        labels = y[start:start + batch_size].to(parameter.device)
        logits = model(inputs)
        total_loss += float(F.cross_entropy(logits, labels, reduction="sum"))
        correct += int((logits.argmax(dim=1) == labels).sum())
    return total_loss / X.shape[0], correct / X.shape[0]


def random_crop_flip(images, generator, padding=4):
    """Random translations by up to ``padding`` pixels (zero padding, then a
    crop of the original size) and random horizontal flips, one draw per
    image: the CIFAR-10 augmentation of He et al. (2016, "Deep residual
    learning for image recognition", section 4.2)."""
    n, _, height, width = images.shape
    padded = F.pad(images, (padding,) * 4)
    shifts = torch.randint(0, 2 * padding + 1, (2, n), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    rows = (shifts[0][:, None] + torch.arange(height)).to(images.device)
    columns = shifts[1][:, None] + torch.arange(width)
    columns = torch.where(flips[:, None], columns.flip(1), columns).to(images.device)
    batch = torch.arange(n, device=images.device)[:, None, None]
    # padded[i, :, rows[i], columns[i]] for every image i at once.
    cropped = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], columns[:, None, :]]
    return cropped.permute(0, 3, 1, 2)


class MiniBatchTrainer:
    """Mini-batch training of ``model`` on inputs ``X`` and targets ``y``
    with the loss of a subclass (:meth:`loss`).

    Each epoch visits the training images once in an order drawn from
    ``generator`` (the last batch may be smaller). Batch orders and
    augmentations are drawn on the CPU, so the same seed gives the same
    batches on every device.

    Parameters
    ----------
    model : torch.nn.Module
    optimizer : torch.optim.Optimizer
        Any optimizer over ``model``'s parameters (SGD, Adam, LinBreg, ...).
    X : tensor ``(N, C, H, W)`` on the model's device
    y : tensor of ``N`` targets on the model's device
    batch_size : int >= 1
    generator : torch.Generator (CPU)
    lr_schedule : {"constant", "cosine", "step", "plateau"}
        ``"plateau"`` halves the learning rate when the mean training loss of an
        epoch has not decreased by 1% for 5 epochs, the schedule of Bungert
        et al. (2022) (``torch.optim.lr_scheduler.ReduceLROnPlateau`` with
        factor 0.5, patience 5, threshold 0.01). ``"cosine"`` and ``"step"``:
        the schedules of :mod:`solvers_common.learning_rate` over ``T = epochs
        * batches per epoch`` steps, updated at every step.
    augmentation : {"none", "crop_flip"}
        ``"crop_flip"``: :func:`random_crop_flip` on each batch (through
        :meth:`augment`).
    epochs : int or None
        Number of epochs the training will last; needed by ``"cosine"`` and
        ``"step"``.
    """

    def __init__(self, model, optimizer, X, y, batch_size, generator,
                 lr_schedule="constant", augmentation="none", epochs=None):
        check_training_options(batch_size, lr_schedule, augmentation)
        if X.shape[0] != y.shape[0] or X.dim() != 4:
            raise ValueError(f"X of shape {tuple(X.shape)} must be (N, C, H, W) with N = "
                             f"{y.shape[0]} targets.")
        self.model, self.optimizer, self.X, self.y = model, optimizer, X, y
        self.batch_size, self.generator = int(batch_size), generator
        self.augmentation = augmentation
        self.scheduler = self.step_scheduler = None
        if lr_schedule == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, factor=0.5, patience=5, threshold=0.01)
        if lr_schedule in STEP_SCHEDULES:
            if (not isinstance(epochs, numbers.Integral) or isinstance(epochs, bool)
                    or epochs < 0) and lr_schedule != "constant":
                raise ValueError(f"epochs={epochs!r} must be an integer >= 0 for "
                                 f"lr_schedule={lr_schedule!r}.")
            total_steps = (epochs or 0) * math.ceil(X.shape[0] / self.batch_size)
            self.step_scheduler = step_scheduler(optimizer, lr_schedule, total_steps)
        self.epochs_done = 0

    def loss(self, outputs, targets):
        """The mean loss of a batch of network outputs against its targets."""
        raise NotImplementedError

    def augment(self, inputs, targets):
        """The batch ``(inputs, targets)`` after augmentation; the targets of
        a classifier (labels) do not change."""
        return random_crop_flip(inputs, self.generator), targets

    def train_epoch(self):
        """One pass over the training set; returns its mean batch loss."""
        self.model.train()
        order = torch.randperm(self.X.shape[0], generator=self.generator).to(self.X.device)
        losses = []
        for start in range(0, self.X.shape[0], self.batch_size):
            index = order[start:start + self.batch_size]
            inputs, targets = self.X[index], self.y[index]
            if self.augmentation == "crop_flip":
                inputs, targets = self.augment(inputs, targets)
            loss = self.loss(self.model(inputs), targets)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.step_scheduler is not None:
                self.step_scheduler.step()
            losses.append(loss.detach())
        mean_loss = float(torch.stack(losses).mean())
        if self.scheduler is not None:
            self.scheduler.step(mean_loss)
        self.epochs_done += 1
        return mean_loss


class ClassificationTrainer(MiniBatchTrainer):
    """:class:`MiniBatchTrainer` with the cross-entropy loss: ``y`` holds
    ``N`` int64 labels.

    Parameters
    ----------
    model, optimizer, X, y, batch_size, generator, lr_schedule, augmentation, epochs
        As for :class:`MiniBatchTrainer`.
    label_smoothing : float in [0, 1)
        The targets are ``(1 - label_smoothing)`` on the label plus
        ``label_smoothing / n_classes`` on every class (Szegedy et al.,
        CVPR 2016, section 7), as ``F.cross_entropy(..., label_smoothing)``.
    """

    def __init__(self, model, optimizer, X, y, batch_size, generator,
                 lr_schedule="constant", augmentation="none", epochs=None,
                 label_smoothing=0.0):
        check_training_options(batch_size, lr_schedule, augmentation, label_smoothing)
        super().__init__(model, optimizer, X, y, batch_size, generator, lr_schedule,
                         augmentation, epochs)
        self.label_smoothing = float(label_smoothing)

    def loss(self, outputs, targets):
        return F.cross_entropy(outputs, targets, label_smoothing=self.label_smoothing)


def check_training_options(batch_size, lr_schedule="constant", augmentation="none",
                           label_smoothing=0.0):
    """Raise ValueError on a bad ``batch_size``, ``lr_schedule``,
    ``augmentation`` or ``label_smoothing``."""
    if (not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool)
            or batch_size < 1):
        raise ValueError(f"batch_size={batch_size!r} must be an integer >= 1.")
    check_lr_schedule(lr_schedule, LR_SCHEDULES)
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"augmentation={augmentation!r} is unknown; accepted values: "
                         f"{', '.join(map(repr, AUGMENTATIONS))}.")
    if (not isinstance(label_smoothing, numbers.Real) or isinstance(label_smoothing, bool)
            or not 0 <= label_smoothing < 1):
        raise ValueError(f"label_smoothing={label_smoothing!r} must be a number in [0, 1).")
