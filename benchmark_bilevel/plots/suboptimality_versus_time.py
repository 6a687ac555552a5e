from benchmark_utils.plotting import median_curve, positive_or_nan, select, solver_labels
from benchopt import BasePlot


class Plot(BasePlot):
    """h(lmbd_t) - h* against time on a log scale, median over repetitions:
    the plot that tells linear convergence (a straight line: SABA, SRBA with
    constant steps) from sublinear (a flattening curve: SOBA). h* is exact
    on the quadratic problem; elsewhere it is the smallest h any run reached
    on the dataset, so the curves show the gap to the best run."""

    name = "suboptimality_versus_time"
    type = "scatter"
    options = {"dataset": ..., "objective": ...}

    def plot(self, df, dataset, objective):
        df = select(df, dataset, objective)
        if "objective_subopt" in df and df["objective_subopt"].notna().any():
            column, reference = "objective_subopt", 0.0
        else:
            column, reference = "objective_value", df["objective_value"].min()
        labels = solver_labels(df["solver_name"].unique())
        curves = []
        for solver, runs in df.groupby("solver_name"):
            time, values = median_curve(runs, column)
            curves.append(dict(x=time.tolist(), y=positive_or_nan(values - reference).tolist(),
                               label=labels[solver], **self.get_style(solver)))
        return curves

    def get_metadata(self, df, dataset, objective):
        exact = ("objective_subopt" in df
                 and select(df, dataset, objective)["objective_subopt"].notna().any())
        ylabel = "h(lmbd_t) - h*" if exact else "h(lmbd_t) - smallest h of all runs"
        return dict(title=f"Suboptimality\n{dataset}", xlabel="time [s]", ylabel=ylabel,
                    scale="semilog-y")
