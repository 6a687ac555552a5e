from benchmark_utils.plotting import final_points, legend_labels, visible_style
from benchopt import BasePlot


class Plot(BasePlot):
    """Test accuracy against the fraction of non-zero weights at the end of
    training, one point per solver setting (mean over repetitions): up and to
    the left is better."""

    name = "accuracy_versus_density"
    type = "scatter"
    options = {"dataset": ..., "objective": ...}

    def plot(self, df, dataset, objective):
        final = final_points(df, dataset, objective)
        labels = legend_labels(final.index)
        return [
            dict(x=[row["objective_density"]], y=[row["objective_test_acc"]],
                 label=labels[solver], **visible_style(self, solver))
            for solver, row in final.iterrows()
        ]

    def get_metadata(self, df, dataset, objective):
        return dict(title=f"Test accuracy versus density (end of training)\n{dataset}",
                    xlabel="fraction of non-zero weights", ylabel="test accuracy",
                    scale="semilog-x")
