from benchmark_utils.trained_solver import UnrolledRestorationSolver

from solvers_common.inverse_problems import UnrolledProximalGradient
from solvers_common.optim.checks import check_integer


class Solver(UnrolledRestorationSolver):
    """Unrolled proximal gradient with a learned prox per layer,
    ``x <- P_l(x - mu_l A^T (A x - y))``, ``P_l`` a small residual CNN of
    ``width`` channels, ``n_layers`` layers, trained end to end on the
    final-layer squared error. ``constrained=True`` adds the descending
    constraints of Hadou, NaderiAlizadeh & Ribeiro (2024) on the data-fidelity
    gradient norms (``epsilon``, dual step ``lr_dual`` after every batch), and
    ``noise_injection`` perturbs the intermediate iterates during training
    (noise of norm 1 / (k + 1)). ``prox_init="smoothing"`` starts every prox
    as a binomial low-pass filter, so that the untrained network is already a
    plug-and-play iteration above ``A^T y`` (``"identity"``: plain gradient
    steps, which leave inpainting's missing pixels at zero; see
    :class:`solvers_common.inverse_problems.UnrolledProximalGradient`).

    ``tuning_space``: Adam's rate around the suite's 1e-3 (Hadou et al. use
    1e-4 to 1e-5 for their far larger networks) and the dual step of the
    constrained variant (inert without constraints)."""

    name = "unrolled_pgd"
    requirements = ["pip::torch", "pip::deepinv", "pip::normflows", "pip::numpy"]
    parameters = {
        "n_layers": [5],
        "width": [16],
        "prox_init": ["smoothing"],
        "constrained": [False, True],
        "epsilon": [0.05],
        "lr_dual": [1e-2],
        "noise_injection": [False],
        **UnrolledRestorationSolver.common_parameters,
    }
    test_config = {"n_layers": 2, "width": 4, "batch_size": 4, "epochs": 1}
    tuning_space = {"lr": [3e-4, 1e-3, 3e-3, 1e-2], "lr_dual": [1e-2, 1e-1]}

    def check_parameters(self):
        super().check_parameters()
        check_integer("n_layers", self.n_layers)
        check_integer("width", self.width)

    def build_model(self, generator):
        return UnrolledProximalGradient(self.n_layers, self.n_channels, self.step, self.width,
                                        prox_init=self.prox_init)
