from benchmark_utils.plotting import final_curves
from benchopt import BasePlot


class Plot(BasePlot):
    """Fraction of test signals whose distance to z* decreases at layer l,
    ||z_l - z*|| < ||z_{l-1} - z*||, at the end of training."""

    name = "distance_descent_per_layer"
    type = "scatter"
    options = {"dataset": ..., "objective": ...}

    def plot(self, df, dataset, objective):
        return final_curves(self, df, dataset, objective, "distance_descent_layer_")

    def get_metadata(self, df, dataset, objective):
        return dict(title=f"Distance descent per layer\n{dataset}", xlabel="layer l",
                    ylabel="fraction with ||z_l - z*|| < ||z_(l-1) - z*||",
                    scale="linear")
