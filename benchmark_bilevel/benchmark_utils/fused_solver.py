"""benchopt glue for SOBA and SABA's fused paths (solvers_common.bilevel.fused):
the ``implementation`` parameter, the chunked loop and the compilation in
``warm_up``, outside the timed run."""
import torch

from benchmark_utils.smooth_solver import SmoothBilevelSolver
from solvers_common.bilevel import LogisticRegressionProblem, fused

IMPLEMENTATIONS = ("oracles", "fused", "compiled")
# Iterations per call of an unrolled chunk (eager, and CUDA graphs): a CUDA
# graph records every iteration, so its compilation grows with the chunk,
# while the fixed cost of a call is shared by more iterations. Compiled on
# the CPU, the chunk is a while loop that compiles once for any length: it
# lasts a whole evaluation interval.
MAX_UNROLLED_CHUNK_LENGTH = 8


class FusedSolver(SmoothBilevelSolver):
    """A solver whose iteration has a fused form on logistic regression.

    ``implementation``: ``"oracles"`` runs ``step()`` on the problem's
    oracles (any problem); ``"fused"`` runs chunks of iterations of
    ``iteration_function`` in eager torch; ``"compiled"`` the same chunks through
    ``torch.compile`` (C++ kernels on the CPU, a CUDA graph on CUDA),
    compiled in ``warm_up``. Subclasses define ``iteration_function`` (one
    iteration on a carry, see ``solvers_common.bilevel.fused``),
    ``chunk_steps()`` and, when the carry holds more than the
    ``fused.State``, ``initial_carry()`` and ``state_of(carry)``."""

    def check_parameters(self):
        super().check_parameters()
        if self.implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation={self.implementation!r}; accepted: "
                             f"{', '.join(map(repr, IMPLEMENTATIONS))}.")

    def skip(self, problem, **objective):
        skip, reason = super().skip(problem, **objective)
        if skip:
            return skip, reason
        if self.implementation != "oracles" and not isinstance(problem,
                                                              LogisticRegressionProblem):
            return True, (f"implementation={self.implementation!r} exists for logistic "
                          "regression only; use implementation='oracles'.")
        return False, None

    def set_objective(self, problem):
        super().set_objective(problem)
        # Once per solver: warm_up's run compiles it, the timed run reuses it.
        compiled = self.implementation == "compiled"
        self.chunk = fused.chunk_function(type(self).iteration_function, self.device, compiled)
        if compiled and self.device.type == "cpu":
            self.chunk_length = self.eval_freq
        else:
            self.chunk_length = max(length for length in range(1, MAX_UNROLLED_CHUNK_LENGTH + 1)
                                    if self.eval_freq % length == 0)

    def initialize(self):
        super().initialize()
        if self.implementation != "oracles":
            self.data = fused.logistic_data(self.problem, self.inner_sampler,
                                            self.outer_sampler)
            self.carry = self.initial_carry(fused.State(
                self.theta, self.v, self.lmbd,
                torch.zeros((), device=self.device, dtype=self.dtype_)))
            # As tensors, not numbers: the compiled chunk would otherwise be
            # specialized to them and recompiled for every step size of a
            # grid (falling back to eager after torch's recompile limit).
            self.steps = fused.Steps(*(torch.tensor(value, device=self.device, dtype=self.dtype_)
                                       for value in self.chunk_steps()))
            if self.implementation == "compiled" and self.device.type == "cuda":
                # The data keeps its address from call to call: the CUDA graph
                # reads it in place instead of copying it in at every replay.
                for tensor in (self.data.inner_features, self.data.outer_features,
                               *self.data.inner_blocks, *self.data.outer_blocks):
                    torch._dynamo.mark_static_address(tensor)

    def initial_carry(self, state):
        return state

    def state_of(self, carry):
        return carry

    def run_iterations(self, n_iterations):
        if self.implementation == "oracles":
            return super().run_iterations(n_iterations)
        for _ in range(n_iterations // self.chunk_length):
            if self.implementation == "compiled" and self.device.type == "cuda":
                # The previous replay's outputs (the state) are this one's
                # inputs: a new step of the CUDA graph tree.
                torch.compiler.cudagraph_mark_step_begin()
            inner_ids = self.inner_sampler.sample_block_ids(self.chunk_length)
            outer_ids = self.outer_sampler.sample_block_ids(self.chunk_length)
            self.carry = self.chunk(self.data, self.carry, inner_ids, outer_ids, self.steps)
        state = self.state_of(self.carry)
        self.theta, self.v, self.lmbd = state.theta, state.v, state.lmbd
        self.iteration += n_iterations
