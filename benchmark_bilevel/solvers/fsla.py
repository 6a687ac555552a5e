import torch
from benchmark_utils.fused_solver import FusedSolver

from solvers_common.bilevel import RecursiveEstimator, StepSizeSchedule, check_fraction, fused


class Solver(FusedSolver):
    """FSLA, Fully Single Loop Algorithm (Li, Gu and Huang, "A fully single
    loop algorithm for bilevel optimization without Hessian inverse", AAAI
    2022, Algorithm 1).

    Iteration k, every oracle on a fresh mini-batch (inner i1, i2, i3, outer
    j1, j2):
        theta_{k+1} = theta_k - rho_k grad_theta G_i1(theta_k, lmbd_k)
        v_{k+1}     = v_k - rho_k (d2_theta G_i2(theta_{k+1}, lmbd_k) v_k
                                   - grad_theta F_j1(theta_{k+1}, lmbd_k))
        Phi(theta, lmbd, v) = grad_lmbd F_j2 - d2_(lmbd,theta) G_i3 v
        d_k = Phi(theta_{k+1}, lmbd_k, v_{k+1})
              + (1 - a_k) (d_{k-1} - Phi(theta_k, lmbd_{k-1}, v_k))
        lmbd_{k+1}  = lmbd_k - gamma_k d_k
    v tracks [d2_theta G]^{-1} grad_theta F with one SGD step on the linear
    system per iteration (no Hessian inverse), and the hypergradient gets
    STORM's recursive momentum (both Phi on the same batches j2, i3).
    rho_k = step_size / sqrt(k+1), gamma_k = rho_k / outer_ratio,
    a_k = momentum / sqrt(k+1); reference defaults 0.1, 1, and a momentum
    equal to step_size (0.1). ``implementation`` "compiled": the same
    iterations, ``fused.fsla_iteration``, compiled
    (benchmark_utils/fused_solver.py).

    Work (``oracle_calls``, solvers_common/bilevel/work.py): per iteration
    4 b + 3 b' (b inner, b' outer samples: the gradients of G_i1 and F_j1,
    the Hessian-vector product, and Phi at two points, a gradient of F_j2
    and a cross product each).
    """

    name = "fsla"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    # benchmark_utils/bilevel_solver.py, "Tuning".
    tuning_space = {"step_size": [0.1, 0.3, 1.0], "outer_ratio": [0.003, 0.01, 0.1, 1.0]}
    parameters = {
        "step_size": [0.1],
        "outer_ratio": [1.0],
        "momentum": [0.1],
        "implementation": ["auto"],
        **FusedSolver.common_parameters,
    }
    step_size_parameters = ("step_size", "outer_ratio")
    test_config = {"batch_size": 16, "eval_freq": 4}
    compiled_iteration = fused.fsla_iteration
    inner_batches_per_iteration, outer_batches_per_iteration = 3, 2

    def check_parameters(self):
        super().check_parameters()
        check_fraction("momentum", self.momentum)

    def initialize(self):
        self.v = torch.zeros_like(self.theta)
        self.inner_step = StepSizeSchedule(self.step_size, 1 / 2)
        self.outer_step = StepSizeSchedule(self.step_size / self.outer_ratio, 1 / 2)
        self.momentum_weight = StepSizeSchedule(self.momentum, 1 / 2, name="momentum")
        self.direction = RecursiveEstimator()
        self.previous = (self.theta, self.lmbd, self.v)
        super().initialize()

    def oracle_calls_per_iteration(self):
        inner, outer = self.batch_samples()
        return 4 * inner + 3 * outer

    def compiled_hyperparameters(self):
        return dict(inner_step=self.step_size, outer_step=self.step_size / self.outer_ratio,
                    momentum=self.momentum)

    def initial_carry(self):
        return (self.theta, self.v, self.lmbd, torch.zeros_like(self.lmbd), self.lmbd,
                self.counter())

    def read_carry(self, carry):
        self.theta, self.v, self.lmbd = carry[:3]

    def hypergradient(self, theta, lmbd, v, outer_batch, inner_batch):
        _, grad_lmbd_outer = self.problem.outer_gradients(theta, lmbd, outer_batch)
        return grad_lmbd_outer - self.problem.inner_cross_vector(theta, lmbd, v, inner_batch)

    def step(self):
        problem, k, lmbd = self.problem, self.iteration, self.lmbd
        inner_batches = [self.inner_sampler.sample()[0] for _ in range(3)]
        outer_batches = [self.outer_sampler.sample()[0] for _ in range(2)]
        rho = self.inner_step(k)
        theta = self.theta - rho * problem.inner_gradient(self.theta, lmbd, inner_batches[0])
        grad_theta_outer, _ = problem.outer_gradients(theta, lmbd, outer_batches[0])
        hessian_v = problem.inner_hessian_vector(theta, lmbd, self.v, inner_batches[1])
        v = self.v - rho * (hessian_v - grad_theta_outer)
        batches = (outer_batches[1], inner_batches[2])
        d = self.direction.update(self.hypergradient(theta, lmbd, v, *batches),
                                  self.hypergradient(*self.previous, *batches),
                                  self.momentum_weight(k))
        # The point at which this iteration's hypergradient was taken.
        self.previous = (theta, lmbd, v)
        self.theta, self.v = theta, v
        self.lmbd = lmbd - self.outer_step(k) * d
