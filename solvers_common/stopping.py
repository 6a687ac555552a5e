"""benchopt stopping criteria that keep the rows of a run that diverged.

benchopt stops a run whose monitored metric turns NaN (or jumps up by more
than 1e5) with the status ``diverged`` and then discards every row of it
(``benchopt.runner.FailedRun``): the result file does not say that the run
existed. The criteria below stop at the same evaluation, warn once naming
the solver, and report the status ``done`` so that benchopt saves the rows,
the NaN row included; the readers of :mod:`solvers_common.results` then
flag the run as diverged (its final evaluation is NaN). They are drop-in
replacements for benchopt's classes of the same names.

This is the one module of ``solvers_common`` that imports benchopt; the
package's ``__init__`` does not import it.
"""
import warnings

from benchopt import stopping_criterion as benchopt_criteria


class DivergedRunWarning(UserWarning):
    """A run stopped on a NaN (or exploding) metric; its rows are kept."""


class KeepDivergedRuns:
    """Mixin for a benchopt ``StoppingCriterion``: a ``diverged`` stop is
    reported as ``done``, with a :class:`DivergedRunWarning`."""

    def should_stop(self, stop_val, objective_list):
        stop, status, next_stop_val = super().should_stop(stop_val, objective_list)
        if status == "diverged":
            solver = objective_list[-1].get("solver_name", "a solver")
            metric = (self.key_to_monitor_ or "the monitored metric").removeprefix("objective_")
            warnings.warn(
                f"{solver} diverged ({metric} is NaN or exploded at evaluation "
                f"{len(objective_list)}): the run stops there and its rows are kept, NaN "
                "included.", DivergedRunWarning, stacklevel=2)
            status = "done"
        return stop, status, next_stop_val


class NoCriterion(KeepDivergedRuns, benchopt_criteria.NoCriterion):
    """benchopt's ``NoCriterion`` (a fixed budget), keeping diverged runs."""


class SufficientProgressCriterion(KeepDivergedRuns,
                                  benchopt_criteria.SufficientProgressCriterion):
    """benchopt's ``SufficientProgressCriterion``, keeping diverged runs."""
