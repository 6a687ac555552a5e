from benchmark_utils.trained_solver import RestorationSolver

from solvers_common.inverse_problems import ProximalGradient, TVProx
from solvers_common.optim.checks import check_integer, check_positive


class Solver(RestorationSolver):
    """Proximal gradient descent on ``1/2 ||A x - y||^2 + lmbd TV(x)``
    (Rudin, Osher & Fatemi 1992's total variation; the prox by deepinv's
    ``TVPrior``, a Chambolle-Pock inner solver with ``n_inner`` iterations),
    step ``1 / ||A||^2``, ``n_iterations`` outer iterations from ``A^T y``.
    Nothing is learned: the baseline, tuned like the learned methods
    (``tuning_space``: ``lmbd`` over a decade around its default)."""

    name = "tv_pgd"
    requirements = ["pip::torch", "pip::deepinv", "pip::normflows", "pip::numpy"]
    sampling_strategy = "run_once"
    parameters = {"lmbd": [0.05], "n_inner": [50]}
    tuning_space = {"lmbd": [0.01, 0.02, 0.05, 0.1]}

    def check_parameters(self):
        check_positive("lmbd", self.lmbd)
        check_integer("n_inner", self.n_inner)

    def run(self, _):
        self.method = ProximalGradient(TVProx(self.lmbd, self.step, self.n_inner),
                                       self.n_iterations, self.step)

    def restorer(self):
        return self.method
