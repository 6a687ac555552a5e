from benchmark_utils.training_solver import TrainingSolver

from solvers_common.optim import LinBreg, regularized_parameter_groups


class Solver(TrainingSolver):
    """LinBreg, stochastic linearized Bregman iterations (Bungert, Roith,
    Tenbrinck & Burger, JMLR 2022, Algorithm 1; momentum: Algorithm 2):

        v_0         = theta_0 / delta + p_0,   p_0 in dJ(theta_0)
        v_{k+1}     = v_k - lr g_k
        theta_{k+1} = prox_{delta J}(delta v_{k+1}),   J = lmbd * regularizer

    on linear and convolution weights, from a sparse initialization with
    ``init_density`` non-zero weights (plain SGD steps on the other
    parameters). Weights join only when their accumulated gradients exceed
    lmbd: the network starts sparse and grows."""

    name = "linbreg"
    requirements = ["pip::torch", "pip::numpy", "pip::torchvision"]
    # Around the paper's lr 0.1. lmbd is not tuned: it sets the sparsity the
    # method is run at (a config compares lmbd values on purpose), and chosen
    # on validation accuracy alone it would drift to the densest network.
    # delta stays at the paper's 1: theta = delta shrink(v, lmbd), so (lr,
    # lmbd, delta) trains the regularized weights as (lr delta, lmbd delta, 1).
    tuning_space = {"lr": [0.01, 0.03, 0.1, 0.3, 1.0]}
    parameters = {
        "lr": [0.1],
        "lmbd": [0.1],
        "delta": [1.0],
        "momentum": [0.0],
        "regularizer": ["l1"],
        "init_density": [0.01],
        **TrainingSolver.common_parameters,
    }

    def make_optimizer(self, network):
        groups = regularized_parameter_groups(network, self.regularizer, self.lmbd,
                                              delta=self.delta)
        return LinBreg(groups, lr=self.lr, momentum=self.momentum)
