"""Template: the smallest correct solver of benchmark_unrolling.

Copy this file to ``solvers/<your_method>.py`` (benchopt skips files whose
name starts with ``template_``), rename ``name``, and replace the network.
The objective hands you the training signals ``X`` (torch, float64, CPU,
shape (N, n)), the dictionary ``D`` (n, m), ``lmbd``, ``n_layers`` and the
training targets ``z_star`` (N, m); it never shows you the test signals.
Your result is a torch module mapping a batch of signals (N, n) to its
``n_layers + 1`` iterates, shape (n_layers + 1, N, m), with z_0 = 0.
"""
from benchmark_utils.trained_solver import TrainedSolver

from solvers_common.unrolled import SLISTA


class Solver(TrainedSolver):
    """SLISTA (Ablin et al. 2019) trained with the shared Adam loop: replace
    ``build_network`` by your network. ``TrainedSolver`` provides the
    parameters lr, batch_size, loss, device, dtype, the seeded generator and
    the benchopt callback loop (x-axis = training time)."""

    name = "my_unrolled_network"
    requirements = ["pip::torch"]
    parameters = {**TrainedSolver.common_parameters}
    test_config = {"batch_size": 16}

    def build_network(self, D, lmbd, n_layers, generator):
        return SLISTA(D, lmbd, n_layers)
