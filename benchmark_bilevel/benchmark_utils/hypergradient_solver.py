"""benchopt glue shared by the hypergradient solvers of the l1-regularized
problems (itd_forward, itd_backward, implicit, implicit_forward): the outer
gradient descent, and the hypergradient study.

Two modes, set by the objective:

- optimization (the default): one iteration is one outer step
  ``lmbd <- lmbd - rate * g``, g the solver's hypergradient estimate at lmbd
  with the inner problem warm-started from the previous theta, and the rate
  of ``OuterGradientDescent`` (sparse-ho's: normalized steps of length
  ``step_size`` until the validation loss goes up, then divided by 10 at
  each increase).
- hypergradient study (the objective hands over ``study_lmbd``): lmbd stays
  at ``study_lmbd``, the inner iterations start from theta = 0, and one
  iteration is ``study_stride`` inner iterations (from the objective); at
  each evaluation the solver reports its estimate at the current number N
  of inner iterations, ``hypergradient`` and ``n_inner_iterations``.

A subclass defines ``make_run(lmbd, theta0)`` (the inner run, an
``UnrolledProximalGradient``), ``optimization_run(lmbd, theta0)`` (that run
advanced as the method does within one outer step) and ``estimate(run)``
(the hypergradient from the run's state).
"""
import torch

from benchmark_utils.bilevel_solver import BilevelSolver
from solvers_common.bilevel import OuterGradientDescent, UnrolledProximalGradient


class HypergradientSolver(BilevelSolver):
    stochastic = False
    # Forward-mode Jacobian / record for reverse mode, for make_run.
    forward_mode = False
    record = False
    step_size_parameters = ("step_size",)

    def skip(self, problem, **objective):
        if getattr(problem, "smooth_inner", True):
            return True, (f"{self.name} differentiates proximal iterations; "
                          f"{type(problem).__name__} has no l1-regularized inner problem.")
        return False, None

    def set_objective(self, problem, study_lmbd=None, study_stride=1):
        super().set_objective(problem)
        self.study_stride = int(study_stride)
        self.study_lmbd = (None if study_lmbd is None
                           else study_lmbd.to(device=self.device, dtype=self.dtype_))

    def make_run(self, lmbd, theta0):
        return UnrolledProximalGradient(self.problem, lmbd, theta0, forward=self.forward_mode,
                                        record=self.record)

    def optimization_run(self, lmbd, theta0):
        raise NotImplementedError

    def estimate(self, run):
        raise NotImplementedError

    def initialize(self):
        self.hypergradient, self.n_inner_iterations = None, 0
        if self.study_lmbd is not None:
            self.lmbd = self.study_lmbd
            self.run_state = self.make_run(self.lmbd, torch.zeros_like(self.theta))
            self.hypergradient = self.estimate(self.run_state)
        else:
            self.descent = OuterGradientDescent(self.step_size)

    def run_iterations(self, n_iterations):
        if self.study_lmbd is None:
            return super().run_iterations(n_iterations)
        self.run_state.run(n_iterations * self.study_stride)
        self.theta, self.hypergradient = self.run_state.theta, self.estimate(self.run_state)
        self.iteration += n_iterations
        self.n_inner_iterations = self.run_state.n_iterations

    def step(self):
        run = self.optimization_run(self.lmbd, self.theta)
        gradient = self.estimate(run)
        value = float(self.problem.outer_loss(run.theta, self.lmbd))
        self.theta = run.theta
        self.lmbd = self.descent.update(self.lmbd, gradient, value)

    def get_result(self):
        if self.study_lmbd is None:
            return dict(theta=self.theta, lmbd=self.lmbd)
        return dict(theta=self.theta, lmbd=self.lmbd, hypergradient=self.hypergradient,
                    n_inner_iterations=self.n_inner_iterations)
