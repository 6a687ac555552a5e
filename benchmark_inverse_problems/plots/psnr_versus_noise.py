from benchmark_utils.plotting import final_curves
from benchopt import BasePlot


class Plot(BasePlot):
    """Final test PSNR when every intermediate iterate is perturbed by noise
    of level sigma / k, against sigma."""

    name = "psnr_versus_noise"
    type = "scatter"
    options = {"dataset": ..., "objective": ...}

    def plot(self, df, dataset, objective):
        return final_curves(self, df, dataset, objective, "psnr_iterate_noise_")

    def get_metadata(self, df, dataset, objective):
        return dict(title=f"PSNR under perturbed iterates\n{dataset}", xlabel="sigma",
                    ylabel="final PSNR (dB)", scale="semilog-x")
