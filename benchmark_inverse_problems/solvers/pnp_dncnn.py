import deepinv as dinv
from benchmark_utils.trained_solver import TrainedSolver

from solvers_common.inverse_problems import DenoiserTrainer, ProximalGradient


class Solver(TrainedSolver):
    """Plug-and-play forward-backward ``x <- D(x - tau A^T (A x - y))``
    (Venkatakrishnan, Bouman & Wohlberg 2013) with deepinv's DnCNN (Zhang et
    al. 2017; ``depth`` convolutions of ``width`` channels, residual) trained
    here, from scratch (``pretrained=None``, no weights downloaded), to remove
    Gaussian noise of level ``denoiser_sigma`` from the training images.
    Iterates are clamped to [0, 1]."""

    name = "pnp_dncnn"
    requirements = ["pip::torch", "pip::deepinv"]
    parameters = {
        "depth": [5],
        "width": [32],
        "denoiser_sigma": [0.05],
        **TrainedSolver.common_parameters,
    }
    test_config = {"depth": 2, "width": 4, "batch_size": 4, "epochs": 1}

    def build_model(self, generator):
        return dinv.models.DnCNN(in_channels=self.n_channels, out_channels=self.n_channels,
                                 depth=self.depth, nf=self.width, pretrained=None,
                                 device=self.device)

    def make_trainer(self):
        return DenoiserTrainer(self.model, self.train_images, self.denoiser_sigma, lr=self.lr,
                               batch_size=self.batch_size, generator=self.generator)

    def restorer(self):
        return ProximalGradient(self.model, self.n_iterations, self.step, clip=True)
