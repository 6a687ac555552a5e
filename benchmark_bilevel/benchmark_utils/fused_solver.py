"""benchopt glue for the compiled iterations (solvers_common.bilevel.fused):
the ``implementation`` parameter, the fallback to the oracles, the chunked
loop and the compilation in ``warm_up``, outside the timed run."""
import logging

import torch

from benchmark_utils.smooth_solver import SmoothBilevelSolver
from solvers_common.bilevel import fused

IMPLEMENTATIONS = ("auto", "oracles", "compiled")
# "auto" compiles when the budget has at least this many iterations: the
# compilation (3 to 29 s of CPU time per solver and problem, untimed but part
# of the run's wall clock) then costs less than the time it saves (23 to 790
# us per iteration on one CPU core: break-even between 35,000 and 300,000
# iterations; benchmarks/bilevel_speed.py, 2026-11-30).
AUTO_COMPILE_MIN_ITERATIONS = 500_000
# Iterations per call of an unrolled chunk on CUDA: a CUDA graph records
# every iteration, so its compilation grows with the chunk, while the fixed
# cost of a call is shared by more iterations. Compiled on the CPU, the chunk
# is a while loop that compiles once for any length: it lasts a whole
# evaluation interval.
MAX_UNROLLED_CHUNK_LENGTH = 8

logger = logging.getLogger("learnopt.bilevel")


class FusedSolver(SmoothBilevelSolver):
    """A solver whose iteration also exists as a pure function of its state
    and mini-batches (``compiled_iteration``, from solvers_common.bilevel.fused).

    ``implementation``: ``"oracles"`` runs ``step()`` on the problem's
    oracles, one Python call each; ``"compiled"`` runs chunks of
    ``compiled_iteration`` through ``torch.compile`` (a while loop in C++ on
    the CPU, a CUDA graph on CUDA), compiled in ``warm_up``; ``"auto"``
    compiles when the budget has at least ``AUTO_COMPILE_MIN_ITERATIONS``
    iterations. A problem whose oracles do not take row batches falls back
    to the oracles, with one log line. Subclasses define
    ``compiled_iteration``, ``compiled_hyperparameters()`` (name -> number),
    ``initial_carry()`` and ``read_carry(carry)`` (sets theta and lmbd), and
    the numbers of inner and outer mini-batches an iteration draws. The
    hyperparameters become 0-d tensors of the solver's dtype (tensors are
    kept as they are: integers that must stay exact)."""

    # None: no compiled path (and no ``implementation`` parameter).
    compiled_iteration = None
    auto_compile_min_iterations = AUTO_COMPILE_MIN_ITERATIONS
    inner_batches_per_iteration = 1
    outer_batches_per_iteration = 1
    compiled_unroll = fused.WHILE_LOOP_UNROLL

    def check_parameters(self):
        super().check_parameters()
        if self.compiled_iteration is not None and self.implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation={self.implementation!r}; accepted: "
                             f"{', '.join(map(repr, IMPLEMENTATIONS))}.")

    def set_objective(self, problem):
        super().set_objective(problem)
        self.compiled = self.use_compiled()
        if not self.compiled:
            return
        # Once per solver: warm_up's run compiles it, the timed run reuses it.
        self.chunk = fused.chunk_function(type(self).compiled_iteration, self.device, True,
                                          self.compiled_unroll)
        if self.device.type == "cpu":
            self.chunk_length = self.eval_freq
        else:
            self.chunk_length = max(length for length in range(1, MAX_UNROLLED_CHUNK_LENGTH + 1)
                                    if self.eval_freq % length == 0)

    def use_compiled(self):
        if self.compiled_iteration is None or self.implementation == "oracles":
            return False
        budget = self.epochs * self.iterations_per_epoch()
        if self.implementation == "auto" and budget < self.auto_compile_min_iterations:
            return False
        if not self.problem.row_batches:
            logger.warning("%s: no compiled iteration on %s (its oracles take no row "
                           "batches); running the oracles.", self.name,
                           type(self.problem).__name__)
            return False
        return True

    def initialize(self):
        super().initialize()
        if not self.compiled:
            return
        self.data = fused.make_data(self.problem, self.inner_sampler, self.outer_sampler)
        # A while loop's carry may not hold one tensor twice.
        self.carry = torch.utils._pytree.tree_map(torch.clone, self.initial_carry())
        # As tensors, not numbers: the compiled chunk would otherwise be
        # specialized to them and recompiled for every step size of a grid.
        self.hyper = {name: value if isinstance(value, torch.Tensor) else
                      torch.tensor(float(value), device=self.device, dtype=self.dtype_)
                      for name, value in self.compiled_hyperparameters().items()}
        if self.device.type == "cuda":
            # The data keeps its address from call to call: the CUDA graph
            # reads it in place instead of copying it in at every replay.
            for tensor in (*(getattr(self.problem, name) for name in self.problem.sample_tensors),
                           *self.data.inner, *self.data.outer):
                torch._dynamo.mark_static_address(tensor)

    def counter(self):
        """The iteration counter t, a 0-d integer tensor of the carry."""
        return torch.zeros((), device=self.device, dtype=torch.int64)

    def draw_block_ids(self, n_iterations):
        """Block numbers of the next ``n_iterations`` iterations, one row each:
        (n_iterations, inner batches per iteration) and the same for outer,
        in the order the oracle path draws them (and, for a solver that
        draws more per iteration, a table of those draws, row k passed to
        the compiled iteration k after the block numbers)."""
        return tuple(sampler.sample_block_ids(n_iterations * per_iteration).reshape(
            n_iterations, per_iteration) for sampler, per_iteration in (
                (self.inner_sampler, self.inner_batches_per_iteration),
                (self.outer_sampler, self.outer_batches_per_iteration)))

    def run_iterations(self, n_iterations):
        if not self.compiled:
            return super().run_iterations(n_iterations)
        for _ in range(n_iterations // self.chunk_length):
            if self.device.type == "cuda":
                # The previous replay's outputs (the state) are this one's
                # inputs: a new step of the CUDA graph tree.
                torch.compiler.cudagraph_mark_step_begin()
            self.carry = self.chunk(self.data, self.hyper, self.carry,
                                    *self.draw_block_ids(self.chunk_length))
            self.iteration += self.chunk_length
        self.read_carry(self.carry)
