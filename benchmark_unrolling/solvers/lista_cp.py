from benchmark_utils.trained_solver import TrainedSolver

from solvers_common.unrolled import LISTACP


class Solver(TrainedSolver):
    """LISTA-CP (Chen, Liu, Wang & Yin 2018): coupled weights,
    z_{l+1} = ST(z_l - (W^l)^T (D z_l - x), theta^l), started at ISTA."""

    name = "lista_cp"
    requirements = ["pip::torch", "pip::numpy"]
    parameters = {**TrainedSolver.common_parameters}
    tuning_space = {"lr": [1e-4, 3e-4, 1e-3, 3e-3]}
    test_config = {"batch_size": 16}

    def build_network(self, D, lmbd, n_layers, generator):
        return LISTACP(D, lmbd, n_layers)
