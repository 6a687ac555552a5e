"""benchopt glue shared by the bilevel solvers: parameters, device, seeding,
samplers, the budget and the timed loop with a correct clock.

The budget: ``epochs`` epochs, an epoch being as many updates of theta as
there are inner mini-batches (``ceil(n_inner_samples / batch_size)`` outer
iterations for the single-loop solvers, that divided by ``n_inner_steps``
for those whose outer iteration runs an inner loop) for the stochastic
solvers, and one outer iteration for the full-batch ones, rounded up to
whole rounds of ``eval_freq`` iterations. benchopt evaluates the rounds on
its geometric schedule (0, 1, 2, 3, 4, 6, 9, 13, ...) and after the last
one; ``--max-runs`` and ``--timeout`` can still cut a run shorter.

The work: ``get_result`` reports ``oracle_calls``, the per-sample oracle
evaluations of the run so far (the unit: solvers_common/bilevel/work.py),
which the objective passes on, so that runs can be compared by work as
well as by time. A solver with a fixed cost per iteration gives it in
closed form (``oracle_calls_per_iteration``, its rule in its docstring)
and the count is that times the iterations; one whose work depends on a
tolerance sets ``counts_oracles`` and runs on a CountingProblem; any other
reports NaN, never an estimate.

Tuning (ci/tune.py): every stochastic solver, and the full-batch AID-Neumann,
ITD and Jacobian-free comparators, declares the same grid shape, 3 step
sizes by 4 outer ratios (12 candidates each, so that the tuner can give each
the whole grid), written out in each solver file; AID-CG 4 outer steps by its
3 tolerance schedules. Steps 0.1, 0.3,
1: half decades around the reference benchmark's default 0.1 (its grids
{0.01, 0.1, 1}, its best values on ijcnn1 0.125 to 0.5, on the quadratic
0.1); outer ratios 0.01 to 10 in decades, the reference's {0.1, 1, 10, 100}
moved one decade down to hold its best values on ijcnn1 and covtype (0.01
to 1) and the quick config's 0.01 (h flat on its quadratic and breast
cancer), with 10 for the evidence quadratic. On that quadratic (median of
2 seeds, oracle calls to divide h - h* by 1e6, outer ratio 10), SABA: 385k
at step 0.3, 229k at 0.6, 180k at 1.0 (which then climbs back to 3e-4 of
the start); SRBA: 1.1M at 0.3, 353k at 1.0, 236k at 1.5, diverged at 2.0;
both never at 0.1 within 300 epochs (2026-12-04). F2SA's grid is a decade
lower, around its reference default 0.01.

The clock is that of the suite's shared loop,
:func:`solvers_common.device.callback_loop`: the device is synchronized
before every callback, so the queued work of the iterations is counted and
none of it lands in the untimed evaluation.
"""
import math

from benchopt import BaseSolver

from solvers_common.bilevel import (
    CountingProblem,
    MinibatchSampler,
    check_positive,
    mean_block_size,
)
from solvers_common.device import callback_loop, get_device, get_dtype, synchronize
from solvers_common.optim.checks import check_integer
from solvers_common.seeding import torch_generator
from solvers_common.stopping import SufficientProgressCriterion

# Evaluations without progress before a run stops; large, because stochastic
# curves are noisy and runs are bounded by their budget (epochs) anyway.
# A NaN value still stops the run at once, recorded as diverged.
PATIENCE = 1000
# Default budgets: a bare `benchopt run benchmark_bilevel` (22 solvers, 6
# offline problems) then takes minutes (README, "Running").
DEFAULT_EPOCHS = 20
DEFAULT_FULL_BATCH_EPOCHS = 100


class BilevelSolver(BaseSolver):
    """Base of the bilevel solvers. A subclass defines ``initialize()``
    (state at iteration 0; timed) and ``step()`` (one iteration of the paper's
    algorithm box), reads and writes ``self.theta`` and ``self.lmbd``, and
    lists its step-size parameters in ``step_size_parameters`` so that they
    are validated before any work. ``epochs`` of iterations (see the module's
    docstring) in rounds of ``eval_freq`` iterations; ``epochs`` is an
    integer >= 0: ``epochs=0`` scores the initial point, no iteration."""

    sampling_strategy = "callback"
    stopping_criterion = SufficientProgressCriterion(patience=PATIENCE, strategy="callback")
    requirements = ["pip::torch"]

    common_parameters = {
        "batch_size": [64],
        "epochs": [DEFAULT_EPOCHS],
        "eval_freq": [128],
        "device": ["auto"],
        "dtype": ["float32"],
    }
    # Full-batch solvers: rounds of one outer iteration, no batch size.
    full_batch_parameters = {
        "epochs": [DEFAULT_FULL_BATCH_EPOCHS],
        "eval_freq": [1],
        "device": ["auto"],
        "dtype": ["float32"],
    }
    step_size_parameters = ()
    # Full-batch solvers set this to False and have no batch_size parameter.
    stochastic = True
    # True: the oracles are counted as they are called (a CountingProblem),
    # for solvers whose number of oracles per iteration is not fixed.
    counts_oracles = False

    def check_parameters(self):
        for name in self.step_size_parameters:
            check_positive(name, getattr(self, name))
        check_positive("eval_freq", self.eval_freq, integer=True)
        check_integer("epochs", self.epochs, minimum=0)

    def set_objective(self, problem):
        self.check_parameters()
        self.device = get_device(self.device)
        self.dtype_ = get_dtype(self.dtype)
        if self.stochastic:
            # Validates batch_size against both sample counts before any work.
            for n_samples in (problem.n_inner_samples, problem.n_outer_samples):
                MinibatchSampler(n_samples, self.batch_size, generator=None)
        self.problem = problem.to(device=self.device, dtype=self.dtype_)
        # The unit is that of the smooth problems' oracles; the l1-regularized
        # problems' own solvers are not counted (NaN).
        if self.counts_oracles and getattr(problem, "smooth_inner", True):
            self.problem = CountingProblem(self.problem)
        self.theta, self.lmbd = self.problem.initial_point()

    def warm_up(self):
        # First calls pay one-off costs (kernel selection, allocator growth).
        self.run_once(2)

    def run(self, callback):
        # Seeded here, not in set_objective, so that warm_up does not shift
        # the random stream of the timed run.
        seed = self.get_seed(use_repetition=True)
        self.generator = torch_generator(seed, device=self.device)
        if self.stochastic:
            # One generator per sampler: each sampler's sequence of batches
            # then does not depend on how the draws of the two interleave
            # (the fused paths draw a chunk of inner batches, then of outer).
            self.inner_sampler = MinibatchSampler(
                self.problem.n_inner_samples, self.batch_size,
                torch_generator(seed + 1, device=self.device))
            self.outer_sampler = MinibatchSampler(
                self.problem.n_outer_samples, self.batch_size,
                torch_generator(seed + 2, device=self.device))
        self.theta, self.lmbd = self.problem.initial_point()
        self.iteration = 0
        if isinstance(self.problem, CountingProblem):
            self.problem.oracle_calls = 0
        self.initialize()
        callback_loop(callback, lambda: self.run_iterations(self.eval_freq),
                      self.synchronize, n_rounds=self.n_rounds())

    def iterations_per_epoch(self):
        """Outer iterations in one epoch (see the module's docstring)."""
        if not self.stochastic:
            return 1
        return math.ceil(self.problem.n_inner_samples / self.batch_size
                         / getattr(self, "n_inner_steps", 1))

    def n_rounds(self):
        """Rounds of ``eval_freq`` iterations that make ``epochs`` epochs."""
        return math.ceil(self.epochs * self.iterations_per_epoch() / self.eval_freq)

    def run_iterations(self, n_iterations):
        """``n_iterations`` of the algorithm, one ``step`` each; solvers with
        a fused path (several iterations per call) override this."""
        for _ in range(n_iterations):
            self.step()
            self.iteration += 1

    def synchronize(self):
        synchronize(self.device)

    def initialize(self):
        """State of the algorithm at iteration 0 (besides theta, lmbd)."""

    def full_pass_period(self):
        """Iterations between two full-batch passes of the recursive methods
        (SRBA, VRBO): ``period_fraction`` times the number of mini-batches in
        one epoch over the inner and outer samples together (the reference
        benchmark's ``period_frac``), at least 1."""
        n_samples = self.problem.n_inner_samples + self.problem.n_outer_samples
        return max(1, int(self.period_fraction * n_samples / self.batch_size))

    def step(self):
        raise NotImplementedError

    def batch_samples(self):
        """(inner, outer) samples in one mini-batch, on average over the
        blocks (exact when batch_size divides the sample counts); the sample
        counts for the full-batch solvers."""
        n_inner, n_outer = self.problem.n_inner_samples, self.problem.n_outer_samples
        if not self.stochastic:
            return n_inner, n_outer
        return (mean_block_size(n_inner, self.batch_size),
                mean_block_size(n_outer, self.batch_size))

    def oracle_calls_per_iteration(self):
        """Per-sample oracle evaluations of one iteration, for solvers with a
        fixed cost per iteration; None when it is not fixed."""
        return None

    def oracle_calls(self):
        """Per-sample oracle evaluations since the start of the run: counted
        (``counts_oracles``), else in closed form, else NaN."""
        if isinstance(self.problem, CountingProblem):
            return float(self.problem.oracle_calls)
        if self.counts_oracles:
            return math.nan
        return self.closed_form_oracle_calls()

    def closed_form_oracle_calls(self):
        """``oracle_calls_per_iteration`` times the iterations (NaN when the
        cost of an iteration is not fixed); solvers whose iterations differ
        (periodic full passes) override it."""
        per_iteration = self.oracle_calls_per_iteration()
        if per_iteration is None:
            return math.nan
        return float(per_iteration * self.iteration)

    def get_result(self):
        return dict(theta=self.theta, lmbd=self.lmbd, oracle_calls=self.oracle_calls())
