from benchmark_utils.training_solver import TrainingSolver

from solvers_common.optim import AdaBreg, regularized_parameter_groups


class Solver(TrainingSolver):
    """AdaBreg, the Bregman version of Adam (Bungert, Roith, Tenbrinck &
    Burger, JMLR 2022, Algorithm 3):

        m, s        <- Adam's bias-corrected moments of g_k (Kingma & Ba 2015)
        v_{k+1}     = v_k - lr m_hat / (sqrt(s_hat) + eps)
        theta_{k+1} = prox_{delta J}(delta v_{k+1}),   J = lmbd * regularizer

    from a sparse initialization with ``init_density`` non-zero weights (Adam
    steps on the parameters other than linear and convolution weights)."""

    name = "adabreg"
    requirements = ["pip::torch", "pip::numpy", "pip::torchvision"]
    # Around Adam's lr 1e-3 of the paper's AdaBreg runs. lmbd is not tuned,
    # as for LinBreg: it sets the sparsity. delta stays at 1: (lr, lmbd,
    # delta) acts on the regularized weights as (lr delta, lmbd delta, 1).
    tuning_space = {"lr": [0.0001, 0.0003, 0.001, 0.003, 0.01]}
    parameters = {
        "lr": [1e-3],
        "lmbd": [0.1],
        "delta": [1.0],
        "regularizer": ["l1"],
        "init_density": [0.01],
        **TrainingSolver.common_parameters,
    }

    def make_optimizer(self, network):
        groups = regularized_parameter_groups(network, self.regularizer, self.lmbd,
                                              delta=self.delta)
        return AdaBreg(groups, lr=self.lr)
