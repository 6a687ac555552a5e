import torch
from benchmark_utils.black_box import BlackBoxSolver


class Solver(BlackBoxSolver):
    """Grid search over a shared value: lmbd = c (1, ..., 1) for c on
    ``grid_size`` evenly spaced points of [lmbd_min, lmbd_max] (or relative
    to log lmbd_max: benchmark_utils/black_box.py), visited in
    order (with exp(lmbd) regularizations, a logarithmic grid as in
    Bergstra and Bengio 2012, Sec. 1); the result is the candidate with the
    smallest validation loss F(theta*(lmbd), lmbd) so far. After the last
    point the search stops improving."""

    name = "grid_search"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    parameters = {
        **BlackBoxSolver.range_parameters,
        "grid_size": [20],
        **BlackBoxSolver.full_batch_parameters,
    }
    step_size_parameters = ("grid_size",)
    test_config = {"grid_size": 3}

    def initialize(self):
        super().initialize()
        self.grid = torch.linspace(*self.lmbd_range, self.grid_size).tolist()

    def candidate(self, k):
        return torch.full_like(self.lmbd, self.grid[min(k, self.grid_size - 1)])
