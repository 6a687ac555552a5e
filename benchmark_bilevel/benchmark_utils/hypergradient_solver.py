"""benchopt glue shared by the hypergradient solvers of the l1-regularized
problems (itd_forward, itd_backward, implicit, implicit_forward): the outer
gradient descent, and the hypergradient study.

Two modes, set by the objective:

- optimization (the default): one iteration is one trial point of gradient
  descent on lmbd with a backtracking line search on the validation loss
  (``BacktrackingGradientDescent``: the inner problem at the trial lmbd,
  warm-started from the previous theta, the solver's hypergradient estimate
  there; accepted on Armijo's sufficient decrease, then the next trial
  ``lmbd_a - rate * g_a`` from the last accepted point, the rate doubled
  after a success and halved after a failure; first step of length
  ``step_size``). The solver reports the last accepted (theta, lmbd).
- hypergradient study (the objective hands over ``study_lmbd``): lmbd stays
  at ``study_lmbd``, the inner iterations start from theta = 0, and one
  iteration is ``study_stride`` inner iterations (from the objective); at
  each evaluation (after every round) the solver reports its estimate at
  the current number N of inner iterations, ``hypergradient`` and
  ``n_inner_iterations``.

The inner iterations (``inner_solver``): ``cd``, cyclic proximal coordinate
descent, one iteration an epoch over the features (Bertrand et al.'s
choice; compiled, on the CPU; quadratic datafit only), or ``ista``, proximal
gradient descent (any problem, any device); ``auto`` (the default) takes
``cd`` where it applies and the solver runs on the CPU, ``ista`` otherwise
(measured in ``benchmarks/hypergradient_speed.py``: on the 200 x 1,000 design
at lmbd_max / 100 coordinate descent needs 2,410 epochs, ISTA 50,300
iterations).

A subclass defines ``optimization_run(lmbd, theta0)`` (the inner run of
``make_run`` advanced as the method does within one outer step) and
``estimate(run)`` (the hypergradient from the run's state).
"""
import torch

from benchmark_utils.bilevel_solver import BilevelSolver
from solvers_common.bilevel import (
    BacktrackingGradientDescent,
    UnrolledCoordinateDescent,
    UnrolledProximalGradient,
)

INNER_SOLVERS = ("auto", "cd", "ista")


class HypergradientSolver(BilevelSolver):
    stochastic = False
    # Forward-mode Jacobian / record for reverse mode, for make_run.
    forward_mode = False
    record = False
    step_size_parameters = ("step_size",)

    def check_parameters(self):
        super().check_parameters()
        if self.inner_solver not in INNER_SOLVERS:
            raise ValueError(f"inner_solver={self.inner_solver!r}; accepted: "
                             f"{', '.join(map(repr, INNER_SOLVERS))}.")

    def skip(self, problem, **objective):
        if getattr(problem, "smooth_inner", True):
            return True, (f"{self.name} differentiates proximal iterations; "
                          f"{type(problem).__name__} has no l1-regularized inner problem.")
        if self.inner_solver == "cd" and not problem.quadratic_datafit:
            return True, (f"{self.name}[inner_solver=cd] needs a quadratic datafit; "
                          f"{type(problem).__name__} runs with inner_solver=ista.")
        return False, None

    def set_objective(self, problem, study_lmbd=None, study_stride=1):
        super().set_objective(problem)
        self.inner = self.inner_solver
        if self.inner == "auto":
            self.inner = ("cd" if self.problem.quadratic_datafit and self.device.type == "cpu"
                          else "ista")
        self.study_stride = int(study_stride)
        self.study_lmbd = (None if study_lmbd is None
                           else study_lmbd.to(device=self.device, dtype=self.dtype_))
        # The study evaluates after every round (N on a linear grid, which
        # locates the support identification), benchopt's geometric schedule
        # otherwise: benchopt uses a solver's ``get_next`` when it has one.
        if self.study_lmbd is not None:
            self.get_next = self._every_round
        else:
            self.__dict__.pop("get_next", None)

    @staticmethod
    def _every_round(stop_val):
        return stop_val + 1

    def make_run(self, lmbd, theta0):
        """The inner run: ``inner_solver``'s iterations from theta0."""
        run_class = UnrolledCoordinateDescent if self.inner == "cd" else UnrolledProximalGradient
        return run_class(self.problem, lmbd, theta0, forward=self.forward_mode,
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
            self.descent = BacktrackingGradientDescent(self.step_size)
            self.accepted_theta = None

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
        previous = self.descent.accepted
        self.lmbd = self.descent.update(self.lmbd, gradient, value)
        if self.descent.accepted is not previous:
            self.accepted_theta = self.theta

    def get_result(self):
        if self.study_lmbd is None:
            if self.accepted_theta is None:
                return dict(theta=self.theta, lmbd=self.lmbd)
            return dict(theta=self.accepted_theta, lmbd=self.descent.accepted[0])
        return dict(theta=self.theta, lmbd=self.lmbd, hypergradient=self.hypergradient,
                    n_inner_iterations=self.n_inner_iterations)
