"""Template: the smallest correct solver of benchmark_sparse_training.

Copy this file to ``solvers/<your_method>.py`` (benchopt skips files whose
name starts with ``template_``), rename ``name`` and return your optimizer from
``make_optimizer``. ``TrainingSolver`` builds the network the objective asks
for (``mlp``, ``convnet``, ``resnet18``, ``vit``, ``crate`` or
``crate_alpha``), initializes it from benchopt's seed
with ``init_density`` non-zero weights, trains it for ``epochs`` epochs of
mini-batches (cross-entropy) with your optimizer, and hands it to the
objective, which scores it on held-out images. It provides the parameters
batch_size, epochs, lr_schedule, augmentation and device. A copy also runs
from outside the repository: ``benchopt run benchmark_sparse_training -s
path/to/file.py``.
"""
import torch
from benchmark_utils.training_solver import TrainingSolver


class Solver(TrainingSolver):
    """Stochastic gradient descent (Robbins & Monro 1951): replace the
    optimizer by yours (any ``torch.optim.Optimizer`` over the network)."""

    name = "my_sparse_training_method"
    requirements = ["pip::torch", "pip::numpy", "pip::torchvision"]
    parameters = {"lr": [0.1], "init_density": [1.0], **TrainingSolver.common_parameters}
    # Candidates that ci/tune.py tries on the validation split (a literal
    # dict; at least as many combinations as the budget, 5 in this benchmark).
    tuning_space = {"lr": [0.01, 0.03, 0.1, 0.3, 1.0]}

    def make_optimizer(self, network):
        return torch.optim.SGD(network.parameters(), lr=self.lr)
