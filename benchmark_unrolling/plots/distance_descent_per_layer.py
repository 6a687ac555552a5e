from benchmark_utils.plotting import final_points, indexed_columns, short_labels
from benchopt import BasePlot


class Plot(BasePlot):
    """Fraction of test signals whose distance to z* decreases at layer l,
    ||z_l - z*|| < ||z_{l-1} - z*||, at the end of training."""

    name = "distance_descent_per_layer"
    type = "scatter"
    options = {"dataset": ..., "objective": ...}

    def plot(self, df, dataset, objective):
        final = final_points(df, dataset, objective)
        labels = short_labels(final.index)
        columns = indexed_columns(final, "distance_descent_layer_")
        return [
            dict(x=[layer for layer, _ in columns],
                 y=[row[column] for _, column in columns],
                 label=labels[solver], **self.get_style(solver))
            for solver, row in final.iterrows()
        ]

    def get_metadata(self, df, dataset, objective):
        return dict(title=f"Distance descent per layer\n{dataset}", xlabel="layer l",
                    ylabel="fraction with ||z_l - z*|| < ||z_(l-1) - z*||",
                    scale="linear")
