"""Iterations that several papers share and differ only by one estimator:
each solver file keeps its paper's algorithm box in its docstring and
defines the estimator."""
import torch

from benchmark_utils.fused_solver import FusedSolver
from benchmark_utils.smooth_solver import SmoothBilevelSolver
from solvers_common.bilevel import (
    RecursiveEstimator,
    StepSizeSchedule,
    check_fraction,
    inner_sgd,
)


class InnerLoopSolver(SmoothBilevelSolver):
    """Double loop of stocBiO (Ji et al. 2021) and BSA (Ghadimi & Wang 2018):
    per outer iteration, ``n_inner_steps`` SGD steps on G(., lmbd) warm
    started, an estimate v of [d2_theta G]^{-1} grad_theta F_j by
    ``inverse_hessian_vector``, then
    lmbd <- lmbd - step_size / outer_ratio (grad_lmbd F_j - d2_(lmbd,theta) G_i v).
    """

    parameters = {
        "step_size": [0.1],
        "outer_ratio": [1.0],
        "n_inner_steps": [10],
        "n_neumann_steps": [10],
        **SmoothBilevelSolver.common_parameters,
    }
    step_size_parameters = ("step_size", "outer_ratio", "n_inner_steps", "n_neumann_steps")
    test_config = {"batch_size": 16, "eval_freq": 2, "n_inner_steps": 2,
                   "n_neumann_steps": 2}

    def inverse_hessian_vector(self, theta, lmbd, grad_theta_outer):
        raise NotImplementedError

    def step(self):
        problem, lmbd, sampler = self.problem, self.lmbd, self.inner_sampler
        self.theta = inner_sgd(problem, self.theta, lmbd, sampler, self.step_size,
                               self.n_inner_steps)
        outer_batch, _ = self.outer_sampler.sample()
        grad_theta_outer, grad_lmbd_outer = problem.outer_gradients(self.theta, lmbd,
                                                                    outer_batch)
        v = self.inverse_hessian_vector(self.theta, lmbd, grad_theta_outer)
        inner_batch, _ = sampler.sample()
        cross_v = problem.inner_cross_vector(self.theta, lmbd, v, inner_batch)
        self.lmbd = lmbd - self.step_size / self.outer_ratio * (grad_lmbd_outer - cross_v)


class DoubleMomentumSolver(FusedSolver):
    """STORM-type recursive momentum on both variables, as MRBO (Yang et al.
    2021) and SUSTAIN (Khanduri et al. 2021): with the same samples at the
    current and the previous point,
        u_k = grad_theta G_i(x_k) + (1 - a_k) (u_{k-1} - grad_theta G_i(x_{k-1}))
        w_k = Phi(x_k) + (1 - a_k) (w_{k-1} - Phi(x_{k-1}))
        theta_{k+1} = theta_k - beta_k u_k,   lmbd_{k+1} = lmbd_k - alpha_k w_k
    x_k = (theta_k, lmbd_k), Phi a stochastic hypergradient on the batches of
    ``hypergradient_batches()`` (``hypergradient``); beta_k = step_size /
    (k+1)^(1/3), alpha_k = beta_k / outer_ratio, a_k = momentum / (k+1)^(2/3).
    A subclass with a ``compiled_iteration`` takes ``implementation``
    (benchmark_utils/fused_solver.py).
    """

    parameters = {
        "step_size": [0.1],
        "outer_ratio": [1.0],
        "momentum": [0.5],
        "n_neumann_steps": [10],
        **FusedSolver.common_parameters,
    }
    step_size_parameters = ("step_size", "outer_ratio", "n_neumann_steps")
    test_config = {"batch_size": 16, "eval_freq": 2, "n_neumann_steps": 2}

    def hypergradient_batches(self):
        raise NotImplementedError

    def compiled_hyperparameters(self):
        return dict(inner_step=self.step_size, outer_step=self.step_size / self.outer_ratio,
                    momentum=self.momentum)

    def initial_carry(self):
        return (self.theta, self.lmbd, torch.zeros_like(self.theta),
                torch.zeros_like(self.lmbd), self.previous, self.counter())

    def read_carry(self, carry):
        self.theta, self.lmbd = carry[:2]

    def hypergradient(self, theta, lmbd, batches):
        raise NotImplementedError

    def check_parameters(self):
        super().check_parameters()
        check_fraction("momentum", self.momentum)

    def initialize(self):
        self.inner_step = StepSizeSchedule(self.step_size, 1 / 3)
        self.outer_step = StepSizeSchedule(self.step_size / self.outer_ratio, 1 / 3)
        self.momentum_weight = StepSizeSchedule(self.momentum, 2 / 3, name="momentum")
        self.inner_direction, self.outer_direction = RecursiveEstimator(), RecursiveEstimator()
        self.previous = (self.theta, self.lmbd)
        super().initialize()

    def step(self):
        problem, k = self.problem, self.iteration
        current, previous = (self.theta, self.lmbd), self.previous
        inner_batch, _ = self.inner_sampler.sample()
        batches = self.hypergradient_batches()
        a = self.momentum_weight(k)
        u = self.inner_direction.update(problem.inner_gradient(*current, inner_batch),
                                        problem.inner_gradient(*previous, inner_batch), a)
        w = self.outer_direction.update(self.hypergradient(*current, batches),
                                        self.hypergradient(*previous, batches), a)
        self.previous = current
        self.theta = self.theta - self.inner_step(k) * u
        self.lmbd = self.lmbd - self.outer_step(k) * w
