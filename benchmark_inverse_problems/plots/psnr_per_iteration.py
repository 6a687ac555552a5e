from benchmark_utils.plotting import final_curves
from benchopt import BasePlot


class Plot(BasePlot):
    """Test PSNR of each iterate (PnP iteration or network layer) at the end
    of every solver's training."""

    name = "psnr_per_iteration"
    type = "scatter"
    options = {"dataset": ..., "objective": ...}

    def plot(self, df, dataset, objective):
        return final_curves(self, df, dataset, objective, "psnr_iter_")

    def get_metadata(self, df, dataset, objective):
        return dict(title=f"Test PSNR per iteration\n{dataset}", xlabel="iteration / layer k",
                    ylabel="PSNR of x_k (dB)")
