from benchmark_utils.trained_solver import TrainedSolver

from solvers_common.unrolled import ALISTA


class Solver(TrainedSolver):
    """ALISTA (Liu, Chen, Wang & Yin 2019): analytic weight matrix from
    coherence minimization, learned step and threshold per layer."""

    name = "alista"
    requirements = ["pip::torch"]
    parameters = {**TrainedSolver.common_parameters}
    test_config = {"batch_size": 16}

    def build_network(self, D, lmbd, n_layers, generator):
        return ALISTA(D, lmbd, n_layers)
