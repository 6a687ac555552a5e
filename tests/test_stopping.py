"""The stopping criteria of solvers_common.stopping: a run whose monitored
metric turns NaN stops at that evaluation, as with benchopt's own criteria,
but is reported done (so that benchopt keeps its rows), with a warning."""
import math
import warnings

import pytest
from benchopt import stopping_criterion as benchopt_criteria

from solvers_common import stopping


def evaluations(values):
    return [dict(solver_name="lista[lr=10.0]", objective_value=value) for value in values]


@pytest.mark.parametrize("ours, theirs", [
    (stopping.NoCriterion, benchopt_criteria.NoCriterion),
    (stopping.SufficientProgressCriterion, benchopt_criteria.SufficientProgressCriterion),
])
def test_a_nan_stops_the_run_as_benchopt_does_but_reports_done(ours, theirs):
    def drive(criterion_class, values):
        criterion = criterion_class(strategy="callback", key_to_monitor="value")
        runner = criterion.get_runner_instance(max_runs=10, timeout=None)
        stop_val = runner.init_stop_val()
        for n in range(1, len(values) + 1):
            stop, status, stop_val = runner.should_stop(stop_val, evaluations(values[:n]))
            if stop:
                return n, status
        return None, status

    values = [3.0, 2.0, 1.5, math.nan, 1.0]
    assert drive(theirs, values) == (4, "diverged")
    with pytest.warns(stopping.DivergedRunWarning, match=r"lista\[lr=10.0\] diverged \(value"):
        assert drive(ours, values) == (4, "done")
    # A run that does not diverge is untouched (no warning, same stops).
    finite = [3.0, 2.0, 1.5, 1.2, 1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert drive(ours, finite) == drive(theirs, finite)
