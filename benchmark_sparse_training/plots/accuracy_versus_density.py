from benchmark_utils.plotting import final_points, legend_labels, test_score, visible_style
from benchopt import BasePlot


class Plot(BasePlot):
    """Test accuracy (classification; test mean squared error for the
    denoising task) against the fraction of non-zero weights at the end of
    training, one point per solver setting (mean over repetitions): up (down
    for the error) and to the left is better."""

    name = "accuracy_versus_density"
    type = "scatter"
    options = {"dataset": ..., "objective": ...}

    def plot(self, df, dataset, objective):
        final = final_points(df, dataset, objective)
        column, _ = test_score(final)
        labels = legend_labels(final.index)
        return [
            dict(x=[row["objective_density"]], y=[row[column]],
                 label=labels[solver], **visible_style(self, solver))
            for solver, row in final.iterrows()
        ]

    def get_metadata(self, df, dataset, objective):
        _, label = test_score(df.query("dataset_name == @dataset and "
                                       "objective_name == @objective"))
        return dict(title=f"{label.capitalize()} versus density (end of training)\n{dataset}",
                    xlabel="fraction of non-zero weights", ylabel=label,
                    scale="semilog-x")
