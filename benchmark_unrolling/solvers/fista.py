from benchopt import BaseSolver

from solvers_common.unrolled import FISTA


class Solver(BaseSolver):
    """FISTA (Beck & Teboulle 2009) with step 1 / ||D||_2^2,
    unrolled for exactly ``n_layers`` iterations: nothing is learned."""

    name = "fista"
    requirements = ["pip::torch"]
    sampling_strategy = "run_once"
    parameters = {}

    def set_objective(self, X, D, lmbd, n_layers, z_star):
        self.D, self.lmbd, self.n_layers = D, lmbd, n_layers

    def run(self, _):
        self.network = FISTA(self.D, self.lmbd, self.n_layers)

    def get_result(self):
        return dict(network=self.network)
