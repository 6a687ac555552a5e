import torch
from benchmark_utils.training_solver import TrainingSolver


class Solver(TrainingSolver):
    """Adam (Kingma & Ba 2015, "Adam: a method for stochastic optimization",
    Algorithm 1): bias-corrected first and second moments of the gradient,
    theta <- theta - lr m_hat / (sqrt(s_hat) + eps). Dense baseline, started
    from a dense Kaiming initialization."""

    name = "adam"
    requirements = ["pip::torch", "pip::numpy", "pip::torchvision"]
    # Around Kingma & Ba's (and Bungert et al.'s Adam runs') lr 1e-3.
    tuning_space = {"lr": [0.0001, 0.0003, 0.001, 0.003, 0.01]}
    parameters = {
        "lr": [1e-3],
        "init_density": [1.0],
        **TrainingSolver.common_parameters,
    }

    def make_optimizer(self, network):
        return torch.optim.Adam(network.parameters(), lr=self.lr)
