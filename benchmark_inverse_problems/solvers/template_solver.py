"""Template: the smallest correct solver of benchmark_inverse_problems.

Copy this file to ``solvers/<your_method>.py`` (benchopt skips files whose
name starts with ``template_``), rename ``name``, and replace the method.
The objective hands you the training images (N, C, H, W), the degradation
``physics`` (a deepinv linear operator: ``physics.A``, ``physics.A_adjoint``),
its noise level, the Lipschitz constant ``||A||^2`` of the data term's
gradient and the number of iterations ``n_iterations`` it asks for; it never
shows you the test images. Your result is a ``torch.nn.Module``
``restorer(y, physics, iterate_hook=None)`` returning the restored images;
it passes each iterate ``x_k`` (k = 0 .. K) through ``iterate_hook(k, x_k)``
when given (the objective scores and perturbs iterates through it).
A learned method subclasses ``benchmark_utils.trained_solver.TrainedSolver``
(an Adam loop with an ``epochs`` budget, see ``unrolled_pgd.py``).
"""
from benchmark_utils.trained_solver import RestorationSolver
from torch import nn

from solvers_common.optim.checks import check_nonnegative


class GradientDescentTikhonov(nn.Module):
    """``x <- x - step (A^T (A x - y) + lmbd x)`` from ``x_0 = A^T y``:
    gradient descent on ``1/2 ||A x - y||^2 + lmbd/2 ||x||^2``."""

    def __init__(self, lmbd, step, n_iterations):
        super().__init__()
        self.lmbd, self.step, self.n_iterations = lmbd, step, n_iterations

    def forward(self, y, physics, iterate_hook=None):
        hook = iterate_hook or (lambda k, x: x)
        x = hook(0, physics.A_adjoint(y))
        for k in range(1, self.n_iterations + 1):
            gradient = physics.A_adjoint(physics.A(x) - y) + self.lmbd * x
            x = hook(k, x - self.step * gradient)
        return x


class Solver(RestorationSolver):
    """Gradient descent on a Tikhonov-regularized least-squares problem
    (Tikhonov 1963), step ``1 / (||A||^2 + lmbd)``: replace it by your
    method. ``lmbd`` is a finite number >= 0 (0: plain least squares),
    checked in ``check_parameters``, which ``set_objective`` calls before any
    work."""

    name = "my_restoration_method"
    requirements = ["pip::torch", "pip::deepinv", "pip::normflows", "pip::numpy"]
    sampling_strategy = "run_once"
    parameters = {"lmbd": [0.01]}

    def check_parameters(self):
        check_nonnegative("lmbd", self.lmbd)

    def run(self, _):
        self.method = GradientDescentTikhonov(self.lmbd, 1.0 / (self.lipschitz + self.lmbd),
                                              self.n_iterations)

    def restorer(self):
        return self.method
