"""benchopt glue for SOBA and SABA's fused paths (solvers_common.bilevel.fused):
the ``implementation`` parameter, the chunked loop and the compilation in
``warm_up``, outside the timed run."""
import torch

from benchmark_utils.bilevel_solver import BilevelSolver
from solvers_common.bilevel import LogisticRegressionProblem, fused

IMPLEMENTATIONS = ("oracles", "fused", "compiled")
# Iterations per call of a fused chunk. The compiled graph unrolls them, so
# compilation time grows with the chunk, while the fixed cost of a call
# (20-30 us for a compiled function on the CPU) is shared by more iterations.
# Measured on 2 shared CPU cores (benchmarks/bilevel_speed.py): 8 iterations
# compile in about 40 s and run SOBA in 20-30 us per iteration; 16 run SOBA
# in about 20 us but compile in 50 s, and SABA in up to 3 minutes.
MAX_CHUNK_LENGTH = 8


class FusedSolver(BilevelSolver):
    """A solver whose iteration has a fused form on logistic regression.

    ``implementation``: ``"oracles"`` runs ``step()`` on the problem's
    oracles (any problem); ``"fused"`` runs chunks of iterations of
    ``chunk_function`` in eager torch; ``"compiled"`` the same chunks through
    ``torch.compile`` (C++ kernels on the CPU, a CUDA graph on CUDA),
    compiled in ``warm_up``. Chunks last the largest divisor of
    ``eval_freq`` up to 8 iterations. Subclasses define ``chunk_function``,
    ``chunk_steps()`` and, for extra state, ``chunk_arguments()`` and
    ``store_chunk_result()``."""

    def check_parameters(self):
        super().check_parameters()
        if self.implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation={self.implementation!r}; accepted: "
                             f"{', '.join(map(repr, IMPLEMENTATIONS))}.")

    def skip(self, problem):
        if self.implementation != "oracles" and not isinstance(problem,
                                                              LogisticRegressionProblem):
            return True, (f"implementation={self.implementation!r} exists for logistic "
                          "regression only; use implementation='oracles'.")
        return False, None

    def set_objective(self, problem):
        super().set_objective(problem)
        if self.implementation == "compiled":
            # Once per solver: warm_up's run compiles it, the timed run reuses it.
            self.compiled_chunk = fused.compile_chunk(type(self).chunk_function, self.device)
        self.chunk_length = max(length for length in range(1, MAX_CHUNK_LENGTH + 1)
                                if self.eval_freq % length == 0)

    def initialize(self):
        super().initialize()
        if self.implementation != "oracles":
            self.data = fused.logistic_data(self.problem, self.inner_sampler,
                                            self.outer_sampler)
            self.state = fused.State(self.theta, self.v, self.lmbd,
                                     torch.zeros((), device=self.device, dtype=self.dtype_))
            self.mark_static([self.data.inner_features, self.data.outer_features,
                              *self.data.inner_blocks, *self.data.outer_blocks])

    def mark_static(self, tensors):
        """On CUDA, tell the compiled chunk's CUDA graph that these inputs
        keep their address from call to call, so that it reads them in place
        instead of copying them into its own buffers at every replay."""
        if self.implementation == "compiled" and self.device.type == "cuda":
            for tensor in tensors:
                torch._dynamo.mark_static_address(tensor)

    def run_iterations(self, n_iterations):
        if self.implementation == "oracles":
            return super().run_iterations(n_iterations)
        function = (self.compiled_chunk if self.implementation == "compiled"
                    else type(self).chunk_function)
        for _ in range(n_iterations // self.chunk_length):
            if self.implementation == "compiled" and self.device.type == "cuda":
                # The previous replay's outputs (the state) are this one's
                # inputs: a new step of the CUDA graph tree.
                torch.compiler.cudagraph_mark_step_begin()
            inner_ids = self.inner_sampler.sample_block_ids(self.chunk_length)
            outer_ids = self.outer_sampler.sample_block_ids(self.chunk_length)
            result = function(*self.chunk_arguments(), self.state, inner_ids, outer_ids,
                              self.chunk_steps())
            self.state = self.store_chunk_result(result, inner_ids, outer_ids)
        self.theta, self.v, self.lmbd = self.state.theta, self.state.v, self.state.lmbd
        self.iteration += n_iterations

    def chunk_arguments(self):
        """Arguments of ``chunk_function`` before the state."""
        return (self.data,)

    def store_chunk_result(self, result, inner_ids, outer_ids):
        """Keep what ``chunk_function`` returned besides the state; return the
        state."""
        return result
