from benchmark_utils.trained_solver import UnrolledRestorationSolver

from solvers_common.inverse_problems import UnrolledProximalGradient


class Solver(UnrolledRestorationSolver):
    """Unrolled proximal gradient with a learned prox per layer,
    ``x <- P_l(x - mu_l A^T (A x - y))``, ``P_l`` a small residual CNN of
    ``width`` channels, ``n_layers`` layers, trained end to end on the
    final-layer squared error. ``constrained=True`` adds the descending
    constraints of Hadou, NaderiAlizadeh & Ribeiro (2024) on the data-fidelity
    gradient norms (``epsilon``, dual step ``lr_dual`` after every batch), and
    ``noise_injection`` perturbs the intermediate iterates during training
    (noise of norm 1 / (k + 1))."""

    name = "unrolled_pgd"
    requirements = ["pip::torch", "pip::deepinv"]
    parameters = {
        "n_layers": [5],
        "width": [16],
        "constrained": [False, True],
        "epsilon": [0.05],
        "lr_dual": [1e-2],
        "noise_injection": [False],
        **UnrolledRestorationSolver.common_parameters,
    }
    test_config = {"n_layers": 2, "width": 4, "batch_size": 4, "epochs": 1}

    def build_model(self, generator):
        return UnrolledProximalGradient(self.n_layers, self.n_channels, self.step, self.width)
