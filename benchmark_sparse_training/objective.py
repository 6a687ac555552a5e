"""Sparse training of image classifiers: a solver trains the network
``model`` on the training images and hands it over; the objective scores it,
in eval mode, on the training set and on held-out test images, and counts how
sparse it is (Bungert, Roith, Tenbrinck & Burger, "A Bregman learning
framework for sparse neural networks", JMLR 2022).
"""
import math

import torch
from benchopt import BaseObjective

from solvers_common.classification import loss_and_accuracy
from solvers_common.device import to_cpu_float64
from solvers_common.metrics import density, flops_ratio, kernel_density, neuron_density
from solvers_common.models import build_model, sparse_initialization_
from solvers_common.seeding import torch_generator


class Objective(BaseObjective):
    name = "Sparse training"
    url = "https://github.com/learnopt-bench/learnopt-bench"
    min_benchopt_version = "1.9"
    requirements = ["pip::torch", "pip::torchvision"]

    parameters = {"model": ["mlp"]}
    test_config = {"dataset": {"name": "simulated"}}

    def skip(self, unavailable=None, **data):
        # Datasets whose files are missing hand over a one-line message.
        if unavailable is not None:
            return True, unavailable
        try:
            build_model(self.model, data["X_train"].shape[1:], data["n_classes"])
        except ValueError as error:  # for example a convnet on 8 x 8 digits
            return True, str(error)
        return False, None

    def set_data(self, X_train, y_train, X_test, y_test, n_classes):
        # float32 on the CPU: scoring casts one batch at a time to float64, so
        # the data is not held twice in double precision.
        self.X_train = torch.as_tensor(X_train, dtype=torch.float32)
        self.y_train = torch.as_tensor(y_train, dtype=torch.int64)
        self.X_test = torch.as_tensor(X_test, dtype=torch.float32)
        self.y_test = torch.as_tensor(y_test, dtype=torch.int64)
        self.n_classes = int(n_classes)
        self.input_shape = tuple(self.X_train.shape[1:])

    def get_objective(self):
        return dict(X=self.X_train, y=self.y_train, model=self.model, n_classes=self.n_classes)

    def evaluate_result(self, model):
        # Scored on the CPU in float64, in eval mode (batch normalization uses
        # its running statistics), whatever device the solver trained on.
        model = to_cpu_float64(model).eval()
        train_loss, train_accuracy = loss_and_accuracy(model, self.X_train, self.y_train)
        test_loss, test_accuracy = loss_and_accuracy(model, self.X_test, self.y_test)
        metrics = dict(
            value=train_loss,
            train_acc=train_accuracy,
            test_loss=test_loss,
            test_acc=test_accuracy,
            density=density(model),
            neuron_density=neuron_density(model),
            flops_ratio=flops_ratio(model, self.input_shape),
        )
        # NaN for a model without 2-D convolutions (the mlp): left out, since
        # benchopt cannot draw a curve of NaNs.
        kernels = kernel_density(model)
        if not math.isnan(kernels):
            metrics["kernel_density"] = kernels
        return metrics

    def get_one_result(self):
        model = build_model(self.model, self.input_shape, self.n_classes)
        sparse_initialization_(model, 1.0, torch_generator(0))
        return dict(model=model)
