from benchmark_utils.training_solver import TrainingSolver

from solvers_common.optim import ProxSGD, regularized_parameter_groups


class Solver(TrainingSolver):
    """Proximal stochastic gradient descent, the sparse baseline of Bungert,
    Roith, Tenbrinck & Burger (JMLR 2022): a gradient step, then the proximal
    step of lr * J,

        theta <- prox_{lr J}(theta - lr g),   J = lmbd * regularizer,

    on linear and convolution weights (plain SGD steps on the other
    parameters). Started dense, it thins the network from above."""

    name = "prox_sgd"
    requirements = ["pip::torch", "pip::numpy", "pip::torchvision"]
    # Around the paper's lr 0.1. lmbd is not tuned: it sets the sparsity (on
    # validation accuracy alone it would drift to the densest network).
    tuning_space = {"lr": [0.01, 0.03, 0.1, 0.3, 1.0]}
    parameters = {
        "lr": [0.1],
        "lmbd": [1e-4],
        "regularizer": ["l1"],
        "momentum": [0.0],
        "init_density": [1.0],
        **TrainingSolver.common_parameters,
    }

    def make_optimizer(self, network):
        groups = regularized_parameter_groups(network, self.regularizer, self.lmbd)
        return ProxSGD(groups, lr=self.lr, momentum=self.momentum)
