"""Scores of a restoration, computed from the iterates a restorer hands to its
``iterate_hook`` (see :mod:`.restorers`)."""
import time

import torch

from .physics import data_gradient

_PSNR = None


def psnr(x, clean):
    """Per-image PSNR in dB of ``x`` against ``clean`` (pixel range [0, 1]),
    deepinv's ``PSNR`` metric; shape ``(N,)``."""
    global _PSNR
    if _PSNR is None:
        import deepinv as dinv

        _PSNR = dinv.metric.PSNR(max_pixel=1.0)
    return _PSNR(x, clean)


def recorded_iterations(n_iterations, every_up_to=10):
    """Iteration indices whose PSNR is reported: all up to ``every_up_to``,
    then 20, 50, 100, 200, 500, 1000, ... and the last one."""
    indices = set(range(min(n_iterations, every_up_to) + 1))
    scale = 10
    while scale <= n_iterations:
        indices.update(v for v in (2 * scale, 5 * scale, 10 * scale) if v <= n_iterations)
        scale *= 10
    indices.add(n_iterations)
    return sorted(indices)


class IterateRecorder:
    """A restorer's ``iterate_hook`` that records, for every iterate ``x_k``,
    the mean PSNR against ``clean`` and the per-image norms of the
    data-fidelity gradient ``A^T (A x_k - y)``. ``perturb(k, x)``, when given,
    changes the iterate first (robustness tests). ``hook_seconds`` is the
    time spent inside the hook, to subtract from a timed restoration."""

    def __init__(self, physics, y, clean, perturb=None):
        self.physics, self.y, self.clean, self.perturb = physics, y, clean, perturb
        self.psnr, self.gradient_norms, self.hook_seconds = [], [], 0.0

    def __call__(self, index, x):
        start = time.perf_counter()
        if self.perturb is not None:
            x = self.perturb(index, x)
        with torch.no_grad():
            xd = x.detach().to(self.clean.dtype)
            self.psnr.append(float(psnr(xd, self.clean).mean()))
            self.gradient_norms.append(torch.linalg.vector_norm(
                data_gradient(self.physics, xd, self.y).flatten(1), dim=1))
        self.hook_seconds += time.perf_counter() - start
        return x

    def descent_rate(self):
        """Fraction of (iteration, image) pairs whose gradient norm decreased
        from the previous iterate; NaN with a single iterate."""
        if len(self.gradient_norms) < 2:
            return float("nan")
        norms = torch.stack(self.gradient_norms)
        return float((norms[1:] < norms[:-1]).to(torch.float64).mean())


def iterate_perturbation(sigma, n_iterations, generator):
    """Hook adding Gaussian noise of standard deviation ``sigma / k`` per pixel
    to the intermediate iterates ``x_k``, ``k = 1 .. K-1`` (Hadou et al. 2024
    perturb each intermediate layer with noise that shrinks as ``1 / k``)."""
    def perturb(index, x):
        if index < 1 or index >= n_iterations:
            return x
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        return x + (sigma / index) * noise
    return perturb
