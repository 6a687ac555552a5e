from benchmark_utils.plotting import final_curves
from benchopt import BasePlot


class Plot(BasePlot):
    """Test gap F(z_l) - F(z*) per layer of every solver at the end of its
    training (log scale)."""

    name = "gap_per_layer"
    type = "scatter"
    options = {"dataset": ..., "objective": ...}

    def plot(self, df, dataset, objective):
        return final_curves(self, df, dataset, objective, "gap_layer_")

    def get_metadata(self, df, dataset, objective):
        return dict(title=f"Test gap per layer\n{dataset}", xlabel="layer l",
                    ylabel="mean F(z_l) - F(z*)", scale="semilog-y")
