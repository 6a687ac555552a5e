"""benchopt glue for the networks that learn nothing (ISTA, FISTA)."""
from benchopt import BaseSolver


class FixedNetworkSolver(BaseSolver):
    """Builds ``network_class(D, lmbd, n_layers)`` once (``run_once``)."""

    sampling_strategy = "run_once"
    parameters = {}

    def set_objective(self, X, D, lmbd, n_layers, z_star):
        self.D, self.lmbd, self.n_layers = D, lmbd, n_layers

    def run(self, _):
        self.network = self.network_class(self.D, self.lmbd, self.n_layers)

    def get_result(self):
        return dict(network=self.network)
