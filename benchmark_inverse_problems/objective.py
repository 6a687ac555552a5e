"""Image restoration: restore held-out test images from their degraded
measurements ``y = A x + sigma n`` (inpainting, blur or denoising, deepinv
physics, see :mod:`solvers_common.inverse_problems.physics`).

A dataset gives training, validation and test images (three disjoint sets)
and the degradation; the objective draws the operator (the inpainting mask)
and the test and validation measurements from its seed. A solver learns what
it needs from the training images (it gets them clean, with the operator and
the noise level; never the validation or test images) and returns a
restoration method: ``{"restorer": module}``, a ``torch.nn.Module`` with
``restorer(y, physics, iterate_hook=None) -> x`` that passes every iterate
``x_0, ..., x_K`` through ``iterate_hook(k, x_k)`` (the contract of
:mod:`solvers_common.inverse_problems.restorers`). The objective copies it to
the CPU in float64 and reports, on the test images:

- ``value`` (the mean squared error per pixel of ``x_K``, monitored), ``psnr``
  and ``mse`` of the final restoration;
- ``psnr_input``: the PSNR of ``A^T y``, the start of every method here (the
  bar a restoration has to clear), the same at every evaluation;
- ``validation_psnr``: ``psnr`` on the validation images (measured like the
  test ones), for choosing hyperparameters without looking at the test images
  (``validation_metric``);
- ``psnr_iter_<k>``: the PSNR of iterate ``k`` (PnP iteration or layer), for
  every ``k <= 10`` then 20, 50, 100, ... and the last one;
- ``gradient_descent_rate``: the fraction of (iteration, image) pairs where
  ``||A^T (A x_k - y)||`` decreased from the previous iterate, and
  ``gradient_norm_iter_<k>`` its mean at the recorded iterations;
- ``psnr_iterate_noise_<sigma>``: the final PSNR when every intermediate
  iterate ``x_k`` is perturbed by Gaussian noise of standard deviation
  ``sigma / k`` per pixel (Hadou et al. 2024's perturbed layers);
- ``seconds_per_image``: the wall-clock time of the restoration of the test
  set on the CPU in float64, per image, the objective's own bookkeeping
  subtracted;
- ``multiplier_x_<l>`` (and ``multiplier_z_<l>``): for solvers trained with
  descending constraints, which also return ``multipliers`` (one row per
  constraint ``l = 1..L-1``, one column per space, x then z), the dual
  multiplier of layer ``l``'s constraint at that point of training.

At the end of a run the first test images, their measurements ``A^T y`` and
their restorations are kept for the ``restored_images`` plot
(``save_final_results``).

Parameters: ``n_iterations``, the number of outer iterations ``K`` of the
iterative methods (plug-and-play, TV; unrolled networks have their own number
of layers), and ``noise_levels``, one quoted string of comma-separated levels
(``-o "Image restoration[noise_levels='0.02,0.05']"``; empty for none).
A method that takes no ``iterate_hook`` gets NaN for the per-iterate and
perturbation metrics, with one warning.
"""
import copy
import inspect
import math
import time
import warnings

import numpy as np
import torch
from benchopt import BaseObjective
from torch import nn

from solvers_common.inverse_problems import (
    ProximalGradient,
    make_physics,
    measure,
    operator_norm,
    psnr,
)
from solvers_common.inverse_problems.metrics import (
    IterateRecorder,
    iterate_perturbation,
    recorded_iterations,
)
from solvers_common.optim.checks import check_integer
from solvers_common.parameters import parse_noise_levels
from solvers_common.seeding import torch_generator

# Test images kept at the end of a run for the restored_images plot.
N_SHOWN = 4


def accepts_iterate_hook(restorer):
    try:
        parameters = inspect.signature(restorer.forward).parameters
    except (AttributeError, TypeError, ValueError):
        return False
    return "iterate_hook" in parameters


class Objective(BaseObjective):
    name = "Image restoration"
    # What the benchmark is judged on (reports rank solvers by it): the PSNR
    # of the restored test images, with the restoration time beside it.
    primary_metric = {"name": "psnr", "better": "higher", "beside": ["seconds_per_image"]}
    # What a tuner selects hyperparameters on: the same PSNR on the validation images.
    validation_metric = {"name": "validation_psnr", "better": "higher"}
    url = "https://github.com/learnopt-bench/learnopt-bench"
    min_benchopt_version = "1.9"
    requirements = ["pip::torch", "pip::deepinv", "pip::scikit-image", "pip::normflows",
                    "pip::numpy"]

    parameters = {
        "n_iterations": [50],
        # One string: a tuple here would be a grid of objectives.
        "noise_levels": ["0.02,0.05"],
    }
    test_config = {"objective": {"n_iterations": 3}}

    def skip(self, unavailable=None, **data):
        if unavailable is not None:
            return True, unavailable
        return False, None

    def set_data(self, train_images, test_images, validation_images, degradation, mask_ratio,
                 noise_level, blur_sigma):
        check_integer("n_iterations", self.n_iterations)
        self.sigmas = parse_noise_levels(self.noise_levels)
        self.train_images = torch.as_tensor(train_images, dtype=torch.float32)
        self.test_images = torch.as_tensor(test_images, dtype=torch.float64)
        self.validation_images = torch.as_tensor(validation_images, dtype=torch.float64)
        self.degradation, self.noise_level = degradation, float(noise_level)
        generator = torch_generator(self.get_seed(use_repetition=True))
        # The operator (an inpainting mask) and the test measurements are the
        # objective's draws: every solver restores the same y.
        self.physics = make_physics(degradation, tuple(self.test_images.shape[1:]),
                                    mask_ratio=mask_ratio, blur_sigma=blur_sigma,
                                    generator=generator, noise_level=noise_level)
        self.physics = self.physics.to(torch.float64)
        self.y_test = measure(self.physics, self.test_images, self.noise_level, generator)
        self.perturbation_seed = int(torch.randint(2**31, (1,), generator=generator))
        # Drawn after the test draws, which stay those of a run without validation images.
        self.y_validation = measure(self.physics, self.validation_images, self.noise_level,
                                    generator)
        self.psnr_input = float(psnr(self.physics.A_adjoint(self.y_test),
                                     self.test_images).mean())
        self.lipschitz = operator_norm(self.physics, tuple(self.test_images.shape[1:]))
        self.warned_without_hook = set()

    def get_objective(self):
        return dict(train_images=self.train_images,
                    physics=copy.deepcopy(self.physics).to(torch.float32),
                    noise_level=self.noise_level, lipschitz=self.lipschitz,
                    n_iterations=self.n_iterations)

    def _warn_without_hook(self, restorer):
        name = type(restorer).__qualname__
        if name not in self.warned_without_hook:
            self.warned_without_hook.add(name)
            warnings.warn(f"{name}.forward takes no iterate_hook argument: the per-iterate "
                          "and perturbation metrics of this method are NaN.", UserWarning)

    def evaluate_result(self, restorer, multipliers=None):
        if not isinstance(restorer, nn.Module):
            raise ValueError(f"restorer must be a torch.nn.Module, got a "
                             f"{type(restorer).__name__}.")
        restorer = copy.deepcopy(restorer).to(device="cpu", dtype=torch.float64).eval()
        clean, y = self.test_images, self.y_test
        has_hook = accepts_iterate_hook(restorer)
        if not has_hook:
            self._warn_without_hook(restorer)
        recorder = IterateRecorder(self.physics, y, clean)
        with torch.no_grad():
            start = time.perf_counter()
            x = (restorer(y, self.physics, iterate_hook=recorder) if has_hook
                 else restorer(y, self.physics))
            seconds = time.perf_counter() - start - recorder.hook_seconds
            x = x.to(torch.float64)
            mse = ((x - clean) ** 2).mean(dim=(1, 2, 3))
            metrics = dict(value=float(mse.mean()), psnr=float(psnr(x, clean).mean()),
                           mse=float(mse.mean()),
                           seconds_per_image=seconds / clean.shape[0],
                           psnr_input=self.psnr_input,
                           validation_psnr=self.validation_psnr(restorer))
            if has_hook:
                n_iterations = len(recorder.psnr) - 1
                metrics["gradient_descent_rate"] = recorder.descent_rate()
                for k in recorded_iterations(n_iterations):
                    metrics[f"psnr_iter_{k}"] = recorder.psnr[k]
                    metrics[f"gradient_norm_iter_{k}"] = float(
                        recorder.gradient_norms[k].mean())
            generator = torch_generator(self.perturbation_seed)
            for sigma in self.sigmas:
                if not has_hook:
                    metrics[f"psnr_iterate_noise_{sigma}"] = math.nan
                    continue
                perturbed = restorer(y, self.physics, iterate_hook=iterate_perturbation(
                    sigma, n_iterations, generator))
                metrics[f"psnr_iterate_noise_{sigma}"] = float(
                    psnr(perturbed.to(torch.float64), clean).mean())
        if multipliers is not None:
            for space, column in zip("xz", torch.as_tensor(multipliers).T):
                for layer, value in enumerate(column.tolist(), start=1):
                    metrics[f"multiplier_{space}_{layer}"] = value
        return metrics

    def validation_psnr(self, restorer):
        """Mean PSNR of ``restorer`` on the validation images (no gradient)."""
        with torch.no_grad():
            x = restorer(self.y_validation, self.physics).to(torch.float64)
        return float(psnr(x, self.validation_images).mean())

    def save_final_results(self, restorer, multipliers=None):
        """The first ``N_SHOWN`` test images (``clean``), their ``A^T y``
        (``measured``) and their restoration (``restored``), ``(N, H, W)``
        or ``(N, H, W, 3)`` clipped to [0, 1], for the ``restored_images``
        plot."""
        restorer = copy.deepcopy(restorer).to(device="cpu", dtype=torch.float64).eval()
        clean, y = self.test_images[:N_SHOWN], self.y_test[:N_SHOWN]
        with torch.no_grad():
            restored = restorer(y, self.physics).to(torch.float64)
            measured = self.physics.A_adjoint(y)

        def shown(images):
            images = images.clamp(0, 1).permute(0, 2, 3, 1)
            return np.ascontiguousarray((images[..., 0] if images.shape[-1] == 1
                                         else images).numpy())
        return dict(clean=shown(clean), measured=shown(measured), restored=shown(restored))

    def get_one_result(self):
        return dict(restorer=ProximalGradient(nn.Identity(), self.n_iterations,
                                              1.0 / self.lipschitz))
