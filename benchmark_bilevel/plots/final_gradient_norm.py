from benchmark_utils.plotting import select, solver_labels
from benchopt import BasePlot

from solvers_common.results import final_evaluations


class Plot(BasePlot):
    """||grad h(lmbd)|| at each run's last evaluation, one bar per solver
    (the median over repetitions, a tick per repetition; log scale): which
    solvers reach a stationary point within the budget. A run that diverged
    (NaN) is marked as not converged."""

    name = "final_gradient_norm"
    type = "bar_chart"
    options = {"dataset": ..., "objective": ...}

    def plot(self, df, dataset, objective):
        df = select(df, dataset, objective)
        if "objective_grad_norm" not in df or df["objective_grad_norm"].isna().all():
            return []  # the hypergradient study reports no grad h
        labels = solver_labels(df["solver_name"].unique())
        bars = []
        for solver, runs in df.groupby("solver_name"):
            last = final_evaluations(runs, ["idx_rep"])
            bars.append(dict(y=last["objective_grad_norm"].tolist(), label=labels[solver],
                             color=self.get_style(solver)["color"]))
        return bars

    def get_metadata(self, df, dataset, objective):
        return dict(title=f"||grad h|| at the end of each run\n{dataset}",
                    ylabel="||grad h(lmbd)||")
