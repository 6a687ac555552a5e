"""Template: the smallest correct solver of benchmark_unrolling.

Copy this file to ``solvers/<your_method>.py`` (benchopt skips files whose
name starts with ``template_``), or anywhere (``benchopt run
benchmark_unrolling -s path/to/file.py``), rename ``name``, and replace the
network. The objective hands you the training signals ``X`` (torch, float64,
CPU, shape (N, n)), the dictionary ``D`` (n, m), ``lmbd``, ``n_layers`` and
the training targets ``z_star`` (N, m); it never shows you the test signals.
Your result is ``{"network": module}``, a ``torch.nn.Module`` mapping a batch
of signals (N, n) to its ``n_layers + 1`` iterates, shape
(n_layers + 1, N, m), with z_0 = 0.

Any such module works, plain torch included, and gets every metric but
``gap_iterate_noise_<sigma>`` and those past the trained depth
(``gap_extra_layers_<k>``, k >= 1): they need the module to let the
objective perturb an iterate, through a ``forward(x, iterate_noise=None)``
argument, and run ``k`` more layers, through ``extra_layers=0``.
Written as a ``solvers_common.unrolled.UnrolledNetwork``, as below, the
network has both hooks (and the training noise of ``lista_constrained``):
define the layers through ``preactivation`` and ``thresholds`` and the base
class runs them, soft-thresholds and stacks the iterates; past its depth it
repeats its last layer (``continued_layer``).
"""
import torch
from benchmark_utils.trained_solver import TrainedSolver
from torch import nn

from solvers_common.unrolled import UnrolledNetwork


class StepISTA(UnrolledNetwork):
    """ISTA with one learned step per layer (SLISTA, Ablin et al. 2019):
    ``z_{l+1} = ST(z_l - a_l D^T (D z_l - x), a_l lmbd)``, started at
    ``a_l = 1 / ||D||_2^2``; signals are rows, so ``D z`` is ``z @ D.T``."""

    def __init__(self, D, lmbd, n_layers):
        super().__init__(n_layers, n_atoms=D.shape[1], input_size=D.shape[0])
        self.register_buffer("D", D)
        self.lmbd = float(lmbd)
        step = 1 / torch.linalg.matrix_norm(D, ord=2) ** 2
        self.step = nn.Parameter(step.expand(n_layers).clone())

    def preactivation(self, index, z, z_previous, x):
        # ``x`` is what ``prepare(x)`` returns: by default, the signals.
        return z - self.step[index] * (z @ self.D.T - x) @ self.D

    def thresholds(self, x):
        return self.step * self.lmbd


class Solver(TrainedSolver):
    """Trains ``build_network``'s network with the shared Adam loop:
    ``TrainedSolver`` provides its ``common_parameters`` (lr, batch_size,
    loss, device, dtype, ...), the seeded generator and the benchopt callback
    loop (x-axis = training time). A solver with its own training subclasses
    ``benchopt.BaseSolver`` instead and returns ``{"network": module}``."""

    name = "my_unrolled_network"
    requirements = ["pip::torch", "pip::numpy"]
    parameters = {**TrainedSolver.common_parameters}
    test_config = {"batch_size": 16}

    def build_network(self, D, lmbd, n_layers, generator):
        return StepISTA(D, lmbd, n_layers)
