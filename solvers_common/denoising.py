"""Image denoising as supervised learning: noisy (and optionally blurred)
images as inputs, the clean images as targets, the mean squared error as loss
and score, and a mini-batch training loop that shares
:class:`~solvers_common.classification.MiniBatchTrainer`'s.

The setting of the denoising autoencoder experiment of Bungert, Roith,
Tenbrinck & Burger ("A Bregman learning framework for sparse neural
networks", JMLR 2022) and of their notebook: images in [0, 1], Gaussian noise
of standard deviation 0.05 drawn once per image (a fixed noisy data set),
optionally after a Gaussian blur (kernel 9, sigma 5).
"""
import math
import numbers

import torch
import torch.nn.functional as F

from .classification import MiniBatchTrainer, random_crop_flip


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_denoising_options(noise_std, blur_sigma=None, blur_size=9):
    """Raise ValueError on a bad ``noise_std`` (a number >= 0), ``blur_sigma``
    (None, or a number >= 0; 0 and None mean no blur) or ``blur_size`` (an
    odd integer >= 1)."""
    if not _is_number(noise_std) or not 0 <= noise_std < math.inf:
        raise ValueError(f"noise_std={noise_std!r} must be a finite number >= 0.")
    if blur_sigma is not None and (not _is_number(blur_sigma)
                                   or not 0 <= blur_sigma < math.inf):
        raise ValueError(f"blur_sigma={blur_sigma!r} must be None (no blur) or a finite "
                         "number >= 0.")
    if (not isinstance(blur_size, numbers.Integral) or isinstance(blur_size, bool)
            or blur_size < 1 or blur_size % 2 == 0):
        raise ValueError(f"blur_size={blur_size!r} must be an odd integer >= 1.")


def to_unit_range(train_images, *other_images):
    """The training split and every other split (test, validation) mapped
    affinely, channel by channel, so that the training images span [0, 1]
    (their minimum to 0, their maximum to 1). On images that were [0, 1]
    images before a per-channel standardization (the image datasets of
    :mod:`solvers_common.data`) it undoes the standardization whenever the
    training split holds a 0 and a 1 in each channel (MNIST, digits). Other
    images may fall slightly outside [0, 1]."""
    low = train_images.amin(dim=(0, 2, 3), keepdim=True)
    high = train_images.amax(dim=(0, 2, 3), keepdim=True)
    scale = torch.where(high > low, high - low, torch.ones_like(high))
    return [(images - low) / scale for images in (train_images, *other_images)]


def gaussian_kernel(size, sigma):
    """The normalized ``size x size`` Gaussian kernel of standard deviation
    ``sigma`` (pixels), centred."""
    coordinates = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    profile = torch.exp(-coordinates ** 2 / (2 * sigma ** 2))
    kernel = torch.outer(profile, profile)
    return kernel / kernel.sum()


def gaussian_blur(images, sigma, size=9):
    """Each channel of ``images`` ``(N, C, H, W)`` convolved with
    :func:`gaussian_kernel` (zero padding, same size), as the blur of the
    authors' notebook (kernel 9, sigma 5)."""
    channels = images.shape[1]
    kernel = gaussian_kernel(size, sigma).to(images.dtype)
    weight = kernel.expand(channels, 1, size, size).to(images.device)
    return F.conv2d(images, weight, padding=size // 2, groups=channels)


def noisy_images(clean, noise_std, generator, blur_sigma=None, blur_size=9):
    """``blur(clean) + noise_std * e``, ``e`` standard Gaussian noise drawn
    on the CPU from ``generator`` (so the same seed gives the same numbers on
    every device), with no blur when ``blur_sigma`` is None or 0."""
    check_denoising_options(noise_std, blur_sigma, blur_size)
    degraded = clean
    if blur_sigma:
        degraded = gaussian_blur(clean, blur_sigma, blur_size)
    noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype)
    return degraded + noise_std * noise.to(clean.device)


@torch.no_grad()
def mse_and_psnr(model, X, Y, batch_size=1000):
    """Mean squared error of ``model(X)`` against the clean images ``Y``
    (over all pixels of all images; the output ``(N, C * H * W)`` is compared
    with ``Y`` flattened), and the PSNR of that error for images in [0, 1],
    ``10 log10(1 / mse)`` (dB). By batches cast to the model's dtype and
    device; the caller chooses the mode (``model.eval()`` for scores)."""
    parameter = next(model.parameters())
    total = 0.0
    for start in range(0, X.shape[0], batch_size):
        inputs = X[start:start + batch_size].to(parameter.device, parameter.dtype)
        targets = Y[start:start + batch_size].to(parameter.device, parameter.dtype)
        outputs = model(inputs)
        total += float(F.mse_loss(outputs, targets.reshape(outputs.shape), reduction="sum"))
    mse = total / Y.numel()
    psnr = 10 * math.log10(1 / mse) if mse > 0 else math.inf
    return mse, psnr


class DenoisingTrainer(MiniBatchTrainer):
    """:class:`~solvers_common.classification.MiniBatchTrainer` with the mean
    squared error between the network's output ``(B, C * H * W)`` and the
    clean images: ``X`` the noisy images, ``y`` the clean ones, both
    ``(N, C, H, W)``. ``augmentation="crop_flip"`` moves each noisy image and
    its clean target together."""

    def __init__(self, model, optimizer, X, y, batch_size, generator,
                 lr_schedule="constant", augmentation="none", epochs=None):
        if tuple(y.shape) != tuple(X.shape):
            raise ValueError(f"the clean images y of shape {tuple(y.shape)} must have the "
                             f"shape of the noisy ones X, {tuple(X.shape)}.")
        super().__init__(model, optimizer, X, y, batch_size, generator, lr_schedule,
                         augmentation, epochs)

    def loss(self, outputs, targets):
        return F.mse_loss(outputs, targets.reshape(outputs.shape))

    def augment(self, inputs, targets):
        channels = inputs.shape[1]
        both = random_crop_flip(torch.cat([inputs, targets], dim=1), self.generator)
        return both[:, :channels], both[:, channels:]
