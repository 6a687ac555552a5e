from benchmark_utils.trained_solver import TrainedSolver

from solvers_common.unrolled import SLISTA


class Solver(TrainedSolver):
    """SLISTA (Ablin, Moreau, Massias & Gramfort 2019): ISTA with one
    learned step size per layer, started at 1 / ||D||_2^2."""

    name = "slista"
    requirements = ["pip::torch"]
    parameters = {**TrainedSolver.common_parameters}
    test_config = {"batch_size": 16}

    def build_network(self, D, lmbd, n_layers, generator):
        return SLISTA(D, lmbd, n_layers)
