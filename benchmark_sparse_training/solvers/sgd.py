import torch
from benchmark_utils.training_solver import TrainingSolver

from solvers_common.optim.checks import check_unit_interval


class Solver(TrainingSolver):
    """Stochastic gradient descent (Robbins & Monro 1951) with heavy-ball
    momentum (Polyak 1964) as in ``torch.optim.SGD``:
    d <- momentum d + g, theta <- theta - lr d. Dense baseline of Bungert et
    al. (2022), started from a dense Kaiming initialization."""

    name = "sgd"
    requirements = ["pip::torch", "pip::numpy", "pip::torchvision"]
    # Around the paper's lr 0.1 (MNIST, batch 128), a factor 3 apart.
    tuning_space = {"lr": [0.01, 0.03, 0.1, 0.3, 1.0]}
    parameters = {
        "lr": [0.1],
        "momentum": [0.0],
        "init_density": [1.0],
        **TrainingSolver.common_parameters,
    }

    def check_parameters(self):
        super().check_parameters()
        check_unit_interval("momentum", self.momentum)

    def make_optimizer(self, network):
        return torch.optim.SGD(network.parameters(), lr=self.lr, momentum=self.momentum)
