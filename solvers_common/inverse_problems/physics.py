"""Degradations of image restoration, as deepinv physics operators.

``y = A x + sigma n``, ``n`` standard Gaussian, with ``A`` one of

- ``"inpainting"``: a random pixel mask that removes a fraction ``mask_ratio``
  of the pixels (the same mask on every channel and image);
- ``"inpainting_center"``: a centred square hole covering a fraction
  ``mask_ratio`` of the image (Hadou, NaderiAlizadeh & Ribeiro 2024 remove a
  centre 24 x 24 of 64 x 64, ``mask_ratio = 0.14``);
- ``"blur"``: a Gaussian blur of standard deviation ``blur_sigma`` pixels,
  circular boundary (Kowalski et al. 2024 use a Levin kernel instead);
- ``"denoising"``: the identity.

The noise is drawn here from a ``torch.Generator`` rather than by deepinv's
noise model, so that all randomness comes from benchopt's seeds.
"""
import math

import deepinv as dinv
import torch
from deepinv.physics.functional.blur import gaussian_blur

DEGRADATIONS = ("inpainting", "inpainting_center", "blur", "denoising")


def check_degradation(degradation, mask_ratio=0.5, noise_level=0.0, blur_sigma=1.0):
    """ValueError naming the parameter when a degradation is not valid."""
    if degradation not in DEGRADATIONS:
        raise ValueError(f"degradation={degradation!r} is unknown; accepted: "
                         f"{list(DEGRADATIONS)}.")
    if degradation.startswith("inpainting") and not 0 < mask_ratio < 1:
        raise ValueError(f"mask_ratio must be in (0, 1) (the fraction of missing pixels), "
                         f"got {mask_ratio!r}.")
    if not (noise_level >= 0 and math.isfinite(noise_level)):
        raise ValueError(f"noise_level must be a finite number >= 0, got {noise_level!r}.")
    if degradation == "blur" and not (blur_sigma > 0 and math.isfinite(blur_sigma)):
        raise ValueError(f"blur_sigma must be positive, got {blur_sigma!r}.")


def make_mask(degradation, image_shape, mask_ratio, generator=None):
    """The inpainting mask ``(1, 1, H, W)`` (1 observed, 0 missing), float64."""
    height, width = image_shape[-2:]
    if degradation == "inpainting":
        generator = generator or torch.Generator().manual_seed(0)
        keep = torch.rand(height, width, generator=generator, dtype=torch.float64)
        mask = (keep >= mask_ratio).to(torch.float64)
    else:
        side_h = max(1, round(height * math.sqrt(mask_ratio)))
        side_w = max(1, round(width * math.sqrt(mask_ratio)))
        top, left = (height - side_h) // 2, (width - side_w) // 2
        mask = torch.ones(height, width, dtype=torch.float64)
        mask[top:top + side_h, left:left + side_w] = 0
    return mask[None, None]


def make_physics(degradation, image_shape, mask_ratio=0.5, blur_sigma=1.0, generator=None,
                 noise_level=0.0):
    """The deepinv operator ``A`` of ``degradation`` for images of shape
    ``image_shape = (C, H, W)``, in float64 on the CPU (``.to(device, dtype)``
    moves it). ``noise_level`` is only checked here: noise is added by
    :func:`measure`."""
    check_degradation(degradation, mask_ratio, noise_level, blur_sigma)
    if degradation.startswith("inpainting"):
        mask = make_mask(degradation, image_shape, mask_ratio, generator)
        return dinv.physics.Inpainting(img_size=tuple(image_shape), mask=mask[0])
    if degradation == "blur":
        kernel = gaussian_blur(sigma=(blur_sigma, blur_sigma)).to(torch.float64)
        return dinv.physics.Blur(filter=kernel, padding="circular")
    return dinv.physics.Denoising()


def measure(physics, images, noise_level, generator=None):
    """``A x + noise_level * n`` with ``n`` drawn from ``generator``."""
    clean = physics.A(images)
    if noise_level == 0:
        return clean
    noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype,
                        device=getattr(generator, "device", None) or clean.device)
    return clean + noise_level * noise.to(clean.device)


def operator_norm(physics, image_shape, n_iter=100, dtype=torch.float64, device="cpu"):
    """``||A||_2^2``, the Lipschitz constant of ``x -> A^T (A x - y)``, by power
    iteration on images of shape ``image_shape`` (deterministic start)."""
    x = torch.ones((1, *image_shape), dtype=dtype, device=device)
    x = x + 0.01 * torch.arange(x.numel(), dtype=dtype, device=device).reshape(x.shape).sin()
    norm = torch.zeros((), dtype=dtype)
    for _ in range(n_iter):
        x = x / torch.linalg.vector_norm(x)
        x = physics.A_adjoint(physics.A(x))
        norm = torch.linalg.vector_norm(x)
    return float(norm)


def data_gradient(physics, x, y):
    """``A^T (A x - y)``, the gradient of ``1/2 ||A x - y||^2``."""
    return physics.A_adjoint(physics.A(x) - y)
