"""Template: the smallest correct solver of benchmark_bilevel.

Copy this file to ``solvers/<your_method>.py`` (benchopt skips files whose
name starts with ``template_``), rename ``name``, and replace ``step``. The
objective hands the solver a ``problem`` (solvers_common.bilevel), already
moved by the base class to ``self.problem`` on the solver's device and
dtype, with mini-batch oracles (``inner_gradient``, ``outer_gradients``,
``inner_hessian_vector``, ``inner_cross_vector``, ``inner_oracles``) taking
a batch from ``self.inner_sampler.sample()`` / ``self.outer_sampler.sample()``.
The losses themselves, ``self.problem.inner_loss(theta, lmbd, batch)`` and
``outer_loss``, are plain torch functions: an algorithm may differentiate them
with ``torch.autograd`` instead of calling the oracles.
The result is the current ``(theta, lmbd)``, scored by the objective. A copy
also runs from outside the repository: ``benchopt run benchmark_bilevel -s
path/to/file.py``.
"""
from benchmark_utils.bilevel_solver import BilevelSolver


class Solver(BilevelSolver):
    """Alternating SGD that ignores the implicit part of the hypergradient:
    theta <- theta - step_size grad_theta G_i, lmbd <- lmbd - step_size
    grad_lmbd F_j (correct only where F depends on lmbd directly). Replace
    ``step`` by your algorithm; ``BilevelSolver`` provides batch_size,
    eval_freq, device, dtype, the seeded samplers and the timed loop."""

    name = "my_bilevel_solver"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    parameters = {"step_size": [0.1], **BilevelSolver.common_parameters}
    step_size_parameters = ("step_size",)
    test_config = {"batch_size": 16, "eval_freq": 4}

    def step(self):
        inner_batch, _ = self.inner_sampler.sample()
        outer_batch, _ = self.outer_sampler.sample()
        grad_inner = self.problem.inner_gradient(self.theta, self.lmbd, inner_batch)
        _, grad_lmbd_outer = self.problem.outer_gradients(self.theta, self.lmbd, outer_batch)
        self.theta = self.theta - self.step_size * grad_inner
        self.lmbd = self.lmbd - self.step_size * grad_lmbd_outer
