from benchmark_utils.plotting import final_points, indexed_columns, short_labels
from benchopt import BasePlot


class Plot(BasePlot):
    """Test gap F(z_l) - F(z*) per layer of every solver at the end of its
    training (log scale)."""

    name = "gap_per_layer"
    type = "scatter"
    options = {"dataset": ..., "objective": ...}

    def plot(self, df, dataset, objective):
        final = final_points(df, dataset, objective)
        labels = short_labels(final.index)
        columns = indexed_columns(final, "gap_layer_")
        return [
            dict(x=[layer for layer, _ in columns],
                 y=[row[column] for _, column in columns],
                 label=labels[solver], **self.get_style(solver))
            for solver, row in final.iterrows()
        ]

    def get_metadata(self, df, dataset, objective):
        return dict(title=f"Test gap per layer\n{dataset}", xlabel="layer l",
                    ylabel="mean F(z_l) - F(z*)", scale="semilog-y")
