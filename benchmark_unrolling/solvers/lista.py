from benchmark_utils.trained_solver import TrainedSolver

from solvers_common.unrolled import LISTA


class Solver(TrainedSolver):
    """LISTA (Gregor & LeCun 2010): untied layers
    z_{l+1} = ST(W_z^l z_l + W_x^l x, theta^l), trained with Adam.

    ``init``: ``ista`` (ISTA's weights, Ablin et al. 2019) or ``random``
    (small Gaussian weights, as the code of Hadou et al. 2024).
    ``loss``: ``supervised`` (||z_L - z*||^2) or ``unsupervised`` (F_x(z_L)).
    """

    name = "lista"
    requirements = ["pip::torch"]
    parameters = {"init": ["ista", "random"], **TrainedSolver.common_parameters}
    test_config = {"batch_size": 16}

    def build_network(self, D, lmbd, n_layers, generator):
        return LISTA(D, lmbd, n_layers, init=self.init, generator=generator)
