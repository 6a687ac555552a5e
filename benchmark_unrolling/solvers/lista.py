from benchmark_utils.trained_solver import TrainedSolver

from solvers_common.optim.checks import check_nonnegative
from solvers_common.unrolled import LISTA, UnrolledTrainer
from solvers_common.unrolled.training import NOISE_SCALINGS


class Solver(TrainedSolver):
    """LISTA (Gregor & LeCun 2010): untied layers
    z_{l+1} = ST(W_z^l z_l + W_x^l x, theta^l), trained with Adam.

    ``init``: ``ista`` (ISTA's weights, Ablin et al. 2019) or ``random``
    (small Gaussian weights, as the code of Hadou et al. 2024).
    ``loss``: ``supervised`` (||z_L - z*||^2) or ``unsupervised`` (F_x(z_L)).
    ``noise_level``, ``noise_scaling``: Gaussian noise injected into the
    iterates during training, as ``lista_constrained``'s (off by default;
    Hadou et al.'s code trains "standard LISTA with noise" this way, the
    control that separates the effect of the noise from that of the
    constraints). ``noise_level`` is a finite number >= 0, 0 for none.
    """

    name = "lista"
    requirements = ["pip::torch", "pip::numpy"]
    parameters = {
        "init": ["ista", "random"],
        "noise_level": [0.0],
        "noise_scaling": ["constant"],
        **TrainedSolver.common_parameters,
    }
    # Adam's rate up to the suite's 1e-3 and above (Ablin et al. 2019 train with
    # Adam; LISTA-CP diverged late at 1e-3 on the evidence problem);
    # the training noise of lista_constrained too, so that "LISTA with the
    # same noise" is a comparator of the constrained network (Hadou et al.).
    tuning_space = {"lr": [1e-4, 3e-4, 1e-3, 3e-3], "noise_level": [0.0, 0.1]}
    test_config = {"batch_size": 16}

    def check_parameters(self):
        super().check_parameters()
        check_nonnegative("noise_level", self.noise_level)
        if self.noise_scaling not in NOISE_SCALINGS:
            raise ValueError(f"noise_scaling={self.noise_scaling!r} is unknown; "
                             f"accepted: {list(NOISE_SCALINGS)}.")

    def build_network(self, D, lmbd, n_layers, generator):
        return LISTA(D, lmbd, n_layers, init=self.init, generator=generator)

    def make_trainer(self):
        return UnrolledTrainer(self.network, self.X, self.z_star, self.D, self.lmbd,
                               noise_level=self.noise_level, noise_scaling=self.noise_scaling,
                               **self.trainer_options())
