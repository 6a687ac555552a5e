from benchmark_utils.plotting import final_curves
from benchopt import BasePlot


class Plot(BasePlot):
    """Mean data-fidelity gradient norm ``||A^T (A x_k - y)||`` of each
    iterate: what the descending constraints of Hadou et al. (2024) ask to
    shrink layer by layer (log scale)."""

    name = "gradient_norm_per_iteration"
    type = "scatter"
    options = {"dataset": ..., "objective": ...}

    def plot(self, df, dataset, objective):
        return final_curves(self, df, dataset, objective, "gradient_norm_iter_")

    def get_metadata(self, df, dataset, objective):
        return dict(title=f"Gradient norm per iteration\n{dataset}",
                    xlabel="iteration / layer k", ylabel="mean ||A^T (A x_k - y)||",
                    scale="semilog-y")
