from benchmark_utils.plotting import legend_labels, visible_style
from benchopt import BasePlot


class Plot(BasePlot):
    """Fraction of non-zero weights along training, against training time
    (median over repetitions), for every solver: the sparse initialization of
    LinBreg and AdaBreg grows slowly, proximal SGD comes down from dense,
    SGD is dense throughout (Bungert et al. 2022)."""

    name = "density_versus_time"
    type = "scatter"
    options = {"dataset": ..., "objective": ...}

    def plot(self, df, dataset, objective):
        df = df.query("dataset_name == @dataset and objective_name == @objective")
        labels = legend_labels(df["solver_name"].unique())
        curves = []
        for solver, runs in df.groupby("solver_name"):
            per_evaluation = runs.groupby("stop_val")
            curves.append(dict(
                x=per_evaluation["time"].median().tolist(),
                y=per_evaluation["objective_density"].median().tolist(),
                label=labels[solver], **visible_style(self, solver)))
        return curves

    def get_metadata(self, df, dataset, objective):
        return dict(title=f"Density along training\n{dataset}", xlabel="time (s)",
                    ylabel="fraction of non-zero weights", scale="semilog-y")
