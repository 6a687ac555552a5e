from benchmark_utils.plotting import final_curves
from benchopt import BasePlot


class Plot(BasePlot):
    """Test gap at the last layer versus the noise level sigma, with noise on
    the input signals (against z* of the perturbed signal) or on the iterate
    of the middle layer, at the end of training."""

    name = "gap_versus_noise"
    type = "scatter"
    options = {"dataset": ..., "objective": ..., "noise": ["input", "iterate"]}

    def plot(self, df, dataset, objective, noise):
        return final_curves(self, df, dataset, objective, f"gap_{noise}_noise_")

    def get_metadata(self, df, dataset, objective, noise):
        return dict(title=f"Gap at layer L with {noise} noise\n{dataset}",
                    xlabel="noise level sigma", ylabel="mean F(z_L) - F(z*)",
                    scale="loglog")
