import math

import torch
from benchmark_utils.training_solver import TrainingSolver, check_density_named

from solvers_common.optim.checks import check_positive, check_unit_interval
from solvers_common.pruning import GlobalMagnitudePruning


class Solver(TrainingSolver):
    """Dense training with iterative global magnitude pruning (Zhu & Gupta
    2018, "To prune, or not to prune", eq. 1), the baseline users would pick
    instead of sparse training: SGD on the dense network and, after each epoch
    between ``pruning_start * epochs`` and ``pruning_end * epochs``, the
    smallest weights of all linear and convolution layers together are masked
    (``torch.nn.utils.prune``) down to the cubic density schedule

        d_t = target_density + (1 - target_density) (1 - progress_t)^3,

    then training goes on with the mask fixed. ``target_density`` is in
    (0, 1]; ``0 <= pruning_start < pruning_end <= 1``."""

    name = "magnitude_pruning"
    requirements = ["pip::torch", "pip::numpy", "pip::torchvision"]
    # SGD's space; target_density is the setting compared, not tuned.
    tuning_space = {"lr": [0.01, 0.03, 0.1, 0.3, 1.0]}
    parameters = {
        "lr": [0.1],
        "momentum": [0.0],
        "target_density": [0.1],
        "pruning_start": [0.1],
        "pruning_end": [0.6],
        "init_density": [1.0],
        **TrainingSolver.common_parameters,
    }

    def check_parameters(self):
        super().check_parameters()
        check_unit_interval("momentum", self.momentum)
        check_density_named("target_density", self.target_density)
        # Numbers first, so that the comparison below cannot raise a TypeError.
        check_unit_interval("pruning_start", self.pruning_start)
        check_positive("pruning_end", self.pruning_end)
        if not self.pruning_start < self.pruning_end <= 1:
            raise ValueError(
                f"pruning_start={self.pruning_start!r} and pruning_end={self.pruning_end!r} "
                "must be fractions of the epochs with 0 <= pruning_start < pruning_end <= 1."
            )

    def make_optimizer(self, network):
        start = math.floor(self.pruning_start * self.epochs)
        end = max(start + 1, round(self.pruning_end * self.epochs))
        self.pruning = GlobalMagnitudePruning(network, self.target_density, start, end)
        return torch.optim.SGD(network.parameters(), lr=self.lr, momentum=self.momentum)

    def after_epoch(self):
        self.pruning.step(self.trainer.epochs_done)

    def get_result(self):
        return dict(model=self.pruning.pruned_copy())
