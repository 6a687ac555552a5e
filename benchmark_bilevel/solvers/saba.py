import torch
from benchmark_utils.fused_solver import FusedSolver

from solvers_common.bilevel import SagaMemory, fused


class Solver(FusedSolver):
    """SABA, Stochastic Average Bilevel Algorithm (Dagréou, Ablin, Vaiter and
    Moreau, "A framework for bilevel optimization that enables stochastic and
    global variance reduction algorithms", NeurIPS 2022, Algorithm 2).

    SOBA's iteration where each of the five oracles (grad_theta G_i,
    d2_theta G_i v, d2_(lmbd,theta) G_i v, grad_theta F_j, grad_lmbd F_j) is
    replaced by its SAGA estimate (Defazio et al. 2014): value - memory[i] +
    average of the memory. Constant steps rho = step_size and gamma =
    step_size / outer_ratio (Theorem 2; reference defaults 0.1 and 1); the
    memory starts at zero, as in the reference benchmark. ``implementation``
    "compiled": the same iterations, ``fused.saba_iteration``, compiled
    (benchmark_utils/fused_solver.py).

    Work (``oracle_calls``, solvers_common/bilevel/work.py): SOBA's, 3 b + b'
    per iteration (b inner, b' outer samples); the SAGA tables store the
    values computed anyway, and start at zero (no initial full pass).
    """

    name = "saba"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    # benchmark_utils/bilevel_solver.py, "Tuning".
    tuning_space = {"step_size": [0.1, 0.3, 1.0], "outer_ratio": [0.003, 0.01, 0.1, 1.0]}
    parameters = {
        "step_size": [0.1],
        "outer_ratio": [1.0],
        "implementation": ["auto"],
        **FusedSolver.common_parameters,
    }
    step_size_parameters = ("step_size", "outer_ratio")
    test_config = {"batch_size": 16, "eval_freq": 4}
    compiled_iteration = fused.saba_iteration
    # The SAGA tables, loop-carried, are copied once per turn of the while
    # loop: four iterations per turn share the copy. Compiled us/iteration
    # (compile s), unroll 1 then 4, benchmarks/bilevel_speed.py, one thread,
    # load 2.6-2.9 on 2 cores, 2026-11-30: simulated 20.0 (4) and 11.7 (12);
    # datacleaning 66 (6) and 62 (20).
    compiled_unroll = 4

    def initialize(self):
        self.v = torch.zeros_like(self.theta)
        super().initialize()
        if self.compiled:
            return
        options = dict(device=self.device, dtype=self.dtype_)
        inner_weights, outer_weights = self.inner_sampler.weights, self.outer_sampler.weights
        self.memory = dict(
            grad_inner=SagaMemory(inner_weights, self.theta.shape, **options),
            hessian_v=SagaMemory(inner_weights, self.theta.shape, **options),
            cross_v=SagaMemory(inner_weights, self.lmbd.shape, **options),
            grad_theta_outer=SagaMemory(outer_weights, self.theta.shape, **options),
            grad_lmbd_outer=SagaMemory(outer_weights, self.lmbd.shape, **options),
        )

    def oracle_calls_per_iteration(self):
        inner, outer = self.batch_samples()
        return 3 * inner + outer

    def compiled_hyperparameters(self):
        return dict(inner_step=self.step_size, outer_step=self.step_size / self.outer_ratio)

    def initial_carry(self):
        return ((self.theta, self.v, self.lmbd),
                fused.saga_memories(self.theta, self.lmbd, self.inner_sampler.n_batches,
                                    self.outer_sampler.n_batches))

    def read_carry(self, carry):
        self.theta, self.v, self.lmbd = carry[0]

    def step(self):
        problem, theta, lmbd, v, memory = (self.problem, self.theta, self.lmbd, self.v,
                                           self.memory)
        inner_batch, i = self.inner_sampler.sample()
        outer_batch, j = self.outer_sampler.sample()
        grad_inner, hessian_v, cross_v = problem.inner_oracles(theta, lmbd, v, inner_batch)
        grad_theta_outer, grad_lmbd_outer = problem.outer_gradients(theta, lmbd, outer_batch)
        grad_inner = memory["grad_inner"].direction(i, grad_inner)
        hessian_v = memory["hessian_v"].direction(i, hessian_v)
        cross_v = memory["cross_v"].direction(i, cross_v)
        grad_theta_outer = memory["grad_theta_outer"].direction(j, grad_theta_outer)
        grad_lmbd_outer = memory["grad_lmbd_outer"].direction(j, grad_lmbd_outer)
        rho, gamma = self.step_size, self.step_size / self.outer_ratio
        self.theta = theta - rho * grad_inner
        self.v = v - rho * (hessian_v + grad_theta_outer)
        self.lmbd = lmbd - gamma * (cross_v + grad_lmbd_outer)
