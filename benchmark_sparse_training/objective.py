"""Sparse training of image classifiers (and denoisers): a solver trains the
network ``model`` on the training images and hands it over; the objective
scores it, in eval mode, on the training set and on held-out test images, and
counts how sparse it is (Bungert, Roith, Tenbrinck & Burger, "A Bregman
learning framework for sparse neural networks", JMLR 2022).

``task`` chooses what the network learns: ``classification`` (the labels,
cross-entropy) or ``denoising`` (the same images as targets, scaled to
[0, 1], from copies degraded once, with benchopt's seed, by an optional
Gaussian blur ``blur_sigma`` of size ``blur_size`` and Gaussian noise of
standard deviation ``noise_std``, 0 for none; mean squared error), the
architecture search experiment of the same paper, where row-group sparsity
lets a deep fully connected network (``model=mlp_deep``) find its widths.

Datasets hand over a validation split (``X_validation``, ``y_validation``)
carved out of the training images and disjoint from the test images;
``validation_acc`` (denoising: ``validation_mse``), scored on it exactly as
``test_acc`` (``test_mse``) on the test images, is what tuning selects on
(``validation_metric``), so that the test images never choose a setting.

For the transformers (``vit``, ``crate``, ``crate_alpha``; sizes ``width``,
``depth``, ``heads``, ``patch_size``, None for the defaults) it also reports,
layer by layer on a fixed batch of test images, the coding rate, the
compression term (CRATE models) and the token sparsity, and the parameter
count and forward speed (Yu et al., "White-box transformers via sparse rate
reduction", NeurIPS 2023).
"""
import math
import numbers

import numpy as np
import torch
from benchopt import BaseObjective

from solvers_common.classification import loss_and_accuracy
from solvers_common.denoising import (
    check_denoising_options,
    mse_and_psnr,
    noisy_images,
    to_unit_range,
)
from solvers_common.device import to_cpu_float64
from solvers_common.metrics import (
    density,
    flops_ratio,
    images_per_second,
    is_transformer,
    kernel_density,
    last_layer_class_attention,
    neuron_density,
    neurons_per_layer,
    parameter_count,
    transformer_layer_metrics,
)
from solvers_common.models import MODELS, build_model, sparse_initialization_
from solvers_common.seeding import torch_generator

# The transformer metrics use the first test images: the same batch for every
# evaluation, solver and model.
N_METRIC_IMAGES = 128
# Test images whose class-token attention maps are kept at the end of a run.
N_ATTENTION_IMAGES = 4
# Options of the model (None: the model's default): the sizes of the
# transformers and of mlp_deep, and mlp_deep's skip connections (not
# "skip": benchopt's objectives have a method of that name).
MODEL_SIZES = ("width", "depth", "heads", "patch_size", "skip_connections")
TASKS = ("classification", "denoising")


class Objective(BaseObjective):
    name = "Sparse training"
    # What the benchmark is judged on (reports rank solvers by it): held-out
    # accuracy (the denoising task: held-out mean squared error), with the
    # fraction of non-zero weights beside it.
    primary_metric = [
        {"name": "test_acc", "better": "higher", "beside": ["density"]},
        {"name": "test_mse", "better": "lower", "beside": ["density"]},
    ]
    # What tuning selects on (ci/tune.py): the first of these that a run
    # reports, the held-out score of its task on the validation split.
    validation_metric = [
        {"name": "validation_acc", "better": "higher"},
        {"name": "validation_mse", "better": "lower"},
    ]
    url = "https://github.com/learnopt-bench/learnopt-bench"
    min_benchopt_version = "1.9"
    requirements = ["pip::torch", "pip::torchvision", "pip::numpy"]

    parameters = {
        "model": ["mlp"],
        **{size: [None] for size in MODEL_SIZES},
        "task": ["classification"],
        "noise_std": [0.05],
        "blur_sigma": [None],
        "blur_size": [9],
    }
    test_config = {"dataset": {"name": "simulated"}}

    @property
    def parameter_template(self):
        # Sizes left at None (the model's defaults) stay out of the name, and
        # so does the task when it is classification, so that runs read
        # "Sparse training[model=mlp]", "Sparse training[model=crate,width=192]"
        # or "Sparse training[model=mlp_deep,task=denoising,noise_std=0.05]".
        shown = ["model"] + [size for size in MODEL_SIZES
                             if self._parameters.get(size) is not None]
        if self._parameters.get("task", "classification") != "classification":
            shown += ["task", "noise_std"]
            if self._parameters.get("blur_sigma"):
                shown += ["blur_sigma", "blur_size"]
        return ",".join(f"{name}={{{name}}}" for name in shown)

    @property
    def model_options(self):
        return {size: getattr(self, size) for size in MODEL_SIZES}

    def check_parameters(self):
        """Raise ValueError on an unknown ``model`` or ``task``, a size that
        is not None or an integer >= 1, or a bad denoising option: values no
        data set can take. Sizes a model does not take, or that do not fit
        the images, skip the pairing instead (``skip``)."""
        if self.model not in MODELS:
            raise ValueError(f"model={self.model!r} is unknown; accepted values: "
                             f"{', '.join(map(repr, MODELS))}.")
        if self.task not in TASKS:
            raise ValueError(f"task={self.task!r} is unknown; accepted values: "
                             f"{', '.join(map(repr, TASKS))}.")
        for size in ("width", "depth", "heads", "patch_size"):
            value = getattr(self, size)
            if value is not None and (not isinstance(value, numbers.Integral)
                                      or isinstance(value, bool) or value < 1):
                raise ValueError(f"{size}={value!r} must be None (the model's default) or "
                                 "an integer >= 1.")
        check_denoising_options(self.noise_std, self.blur_sigma, self.blur_size)

    def n_outputs(self, input_shape, n_classes):
        """Outputs of the network: the classes, or the pixels of an image."""
        return n_classes if self.task == "classification" else math.prod(input_shape)

    def skip(self, unavailable=None, **data):
        self.check_parameters()
        # Datasets whose files are missing hand over a one-line message.
        if unavailable is not None:
            return True, unavailable
        input_shape = data["X_train"].shape[1:]
        try:
            build_model(self.model, input_shape, self.n_outputs(input_shape, data["n_classes"]),
                        **self.model_options)
        except ValueError as error:  # a convnet on 8 x 8 digits, sizes of a transformer
            return True, str(error)
        return False, None

    def set_data(self, X_train, y_train, X_validation, y_validation, X_test, y_test, n_classes):
        # benchopt calls skip first, which checks them too; set_data checks
        # them for callers that set the data directly.
        self.check_parameters()
        # float32 on the CPU: scoring casts one batch at a time to float64, so
        # the data is not held twice in double precision.
        self.X_train = torch.as_tensor(X_train, dtype=torch.float32)
        self.y_train = torch.as_tensor(y_train, dtype=torch.int64)
        self.X_validation = torch.as_tensor(X_validation, dtype=torch.float32)
        self.y_validation = torch.as_tensor(y_validation, dtype=torch.int64)
        self.X_test = torch.as_tensor(X_test, dtype=torch.float32)
        self.y_test = torch.as_tensor(y_test, dtype=torch.int64)
        self.n_classes = int(n_classes)
        self.input_shape = tuple(self.X_train.shape[1:])
        if self.task == "denoising":
            # The targets are the clean images in [0, 1]; the inputs copies
            # degraded once (a fixed noisy data set, as in the authors'
            # notebook), from benchopt's seed: training images first, then
            # test images, then validation images, so that the first two do
            # not depend on the validation split's size.
            self.y_train, self.y_test, self.y_validation = to_unit_range(
                self.X_train, self.X_test, self.X_validation)
            generator = torch_generator(self.get_seed(use_repetition=True))
            self.X_train, self.X_test, self.X_validation = (
                noisy_images(clean, self.noise_std, generator, self.blur_sigma, self.blur_size)
                for clean in (self.y_train, self.y_test, self.y_validation))
        self.X_metrics = self.X_test[:N_METRIC_IMAGES]

    def get_objective(self):
        return dict(X=self.X_train, y=self.y_train, model=self.model,
                    n_outputs=self.n_outputs(self.input_shape, self.n_classes),
                    model_options=self.model_options, task=self.task)

    def evaluate_result(self, model):
        metrics = {}
        if is_transformer(model):
            # Timed on the solver's device and dtype, before the float64 copy.
            metrics["images_per_second"] = images_per_second(model, self.X_metrics)
        # Scored on the CPU in float64, in eval mode (batch normalization uses
        # its running statistics), whatever device the solver trained on.
        model = to_cpu_float64(model).eval()
        if self.task == "classification":
            train_loss, train_accuracy = loss_and_accuracy(model, self.X_train, self.y_train)
            test_loss, test_accuracy = loss_and_accuracy(model, self.X_test, self.y_test)
            _, validation_accuracy = loss_and_accuracy(model, self.X_validation,
                                                       self.y_validation)
            metrics.update(value=train_loss, train_acc=train_accuracy, test_loss=test_loss,
                           test_acc=test_accuracy, validation_acc=validation_accuracy)
        else:
            train_mse, _ = mse_and_psnr(model, self.X_train, self.y_train)
            test_mse, test_psnr = mse_and_psnr(model, self.X_test, self.y_test)
            validation_mse, _ = mse_and_psnr(model, self.X_validation, self.y_validation)
            metrics.update(value=train_mse, test_mse=test_mse, test_psnr=test_psnr,
                           validation_mse=validation_mse)
        metrics.update(
            density=density(model),
            neuron_density=neuron_density(model),
            flops_ratio=flops_ratio(model, self.input_shape),
        )
        # The width each linear layer keeps (layers numbered from 1, in the
        # order of model.modules()).
        metrics.update({f"neurons_per_layer_{index}": count
                        for index, count in enumerate(neurons_per_layer(model), start=1)})
        # NaN for a model without 2-D convolutions (the mlp, the
        # transformers): left out, since benchopt cannot draw a curve of NaNs.
        kernels = kernel_density(model)
        if not math.isnan(kernels):
            metrics["kernel_density"] = kernels
        # Only for transformers, for the same reason.
        if is_transformer(model):
            metrics["n_params"] = parameter_count(model)
            metrics.update(transformer_layer_metrics(model, self.X_metrics))
        return metrics

    def save_final_results(self, model):
        """For transformers, the class-token attention maps of the last
        layer's heads on the first test images (for the ``attention_maps``
        plot): ``images`` (N, H, W) or (N, H, W, 3) scaled to [0, 1] and
        ``attention`` (N, heads, rows, columns of the patch grid)."""
        if not is_transformer(model):
            return None
        model = to_cpu_float64(model).eval()
        images = self.X_test[:N_ATTENTION_IMAGES].to(torch.float64)
        attention = last_layer_class_attention(model, images)
        # Each image to [0, 1] on its own range, for display.
        low = images.amin(dim=(1, 2, 3), keepdim=True)
        high = images.amax(dim=(1, 2, 3), keepdim=True)
        shown = ((images - low) / (high - low).clamp_min(1e-12)).permute(0, 2, 3, 1)
        if shown.shape[-1] == 1:
            shown = shown[..., 0]
        return dict(images=np.ascontiguousarray(shown.numpy()),
                    attention=np.ascontiguousarray(attention.numpy()))

    def get_one_result(self):
        model = build_model(self.model, self.input_shape,
                            self.n_outputs(self.input_shape, self.n_classes),
                            **self.model_options)
        sparse_initialization_(model, 1.0, torch_generator(0))
        return dict(model=model)
