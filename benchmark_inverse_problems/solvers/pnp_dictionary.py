from benchmark_utils.trained_solver import TrainedSolver

from solvers_common.inverse_problems import (
    ConvolutionalDictionaryDenoiser,
    DenoiserTrainer,
    DictionaryPnP,
)
from solvers_common.optim.checks import check_integer, check_positive, check_positive_or_none


class Solver(TrainedSolver):
    """Forward-backward plug-and-play with an unrolled convolutional
    dictionary denoiser (Kowalski, Malezieux, Moreau & Repetti 2024,
    "Analysis and synthesis denoisers for forward-backward plug-and-play
    algorithms", Algorithm 2).

    The denoiser, ``n_layers_train`` layers of ISTA on the synthesis problem
    or of projected gradient on the analysis problem's dual (``mode``,
    ``n_atoms`` atoms of ``kernel_size`` x ``kernel_size``, ``lmbd``), is
    trained with Adam to remove Gaussian noise of level ``denoiser_sigma > 0``
    from the training images. In PnP it runs ``n_layers_pnp`` layers per outer
    iteration, its code warm-started from the previous iteration
    (``warm_start``) or from zero, with regularization ``lmbd_pnp`` (None:
    the training ``lmbd``; the authors set it anew for PnP,
    ``set_lmbd(reg_par)`` over a grid of 1e-3 to 1e-1). The paper's variants
    L_train / L_PnP: 20/20, 20/1, 1/1, 1/20. Warm-started analysis PnP caps
    the dual step at ``1 / ||W||^2`` (see
    :class:`solvers_common.inverse_problems.DictionaryPnP`).

    ``atom_init``: the atoms' initialization, ``zero_mean`` (default) or
    ``gaussian`` (see :class:`~solvers_common.inverse_problems.ConvolutionalDictionaryDenoiser`).

    ``tuning_space``: Adam's rate and ``lmbd_pnp``, from the authors' grid of
    1e-3 to 1e-1.
    """

    name = "pnp_dictionary"
    requirements = ["pip::torch", "pip::deepinv", "pip::normflows", "pip::numpy"]
    parameters = {
        "mode": ["analysis"],
        "n_atoms": [32],
        "kernel_size": [5],
        "atom_init": ["zero_mean"],
        "lmbd": [0.05],
        "denoiser_sigma": [0.05],
        "n_layers_train": [20],
        "n_layers_pnp": [1],
        "warm_start": [True],
        "lmbd_pnp": [None],
        **TrainedSolver.common_parameters,
    }
    test_config = {"n_atoms": 4, "kernel_size": 3, "n_layers_train": 2, "batch_size": 4,
                   "epochs": 1}
    tuning_space = {"lr": [3e-4, 1e-3, 3e-3], "lmbd_pnp": [0.005, 0.01, 0.02, 0.05]}

    def check_parameters(self):
        super().check_parameters()
        for name in ("n_atoms", "kernel_size", "n_layers_train", "n_layers_pnp"):
            check_integer(name, getattr(self, name))
        if self.kernel_size > self.image_size:
            raise ValueError(f"kernel_size={self.kernel_size} is larger than the "
                             f"{self.image_size} x {self.image_size} images.")
        check_positive("lmbd", self.lmbd)
        check_positive("denoiser_sigma", self.denoiser_sigma)
        check_positive_or_none("lmbd_pnp", self.lmbd_pnp)

    def build_model(self, generator):
        return ConvolutionalDictionaryDenoiser(
            self.n_atoms, self.kernel_size, self.n_channels, lmbd=self.lmbd,
            n_layers=self.n_layers_train, mode=self.mode, generator=generator,
            dtype=self.dtype_, atom_init=self.atom_init)

    def make_trainer(self):
        return DenoiserTrainer(self.model, self.train_images, self.denoiser_sigma, lr=self.lr,
                               batch_size=self.batch_size, generator=self.generator)

    def restorer(self):
        return DictionaryPnP(self.model, self.n_iterations, self.step,
                             n_layers=self.n_layers_pnp, warm_start=self.warm_start,
                             lmbd=self.lmbd_pnp)
