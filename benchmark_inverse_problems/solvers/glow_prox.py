from benchmark_utils.trained_solver import UnrolledRestorationSolver

from solvers_common.inverse_problems import GlowProx
from solvers_common.optim.checks import check_integer, check_positive_or_none


class Solver(UnrolledRestorationSolver):
    """GLOW-Prox (Hadou, NaderiAlizadeh & Ribeiro 2024, "Robust
    Stochastically-Descending Unrolled Networks", Section 5.2): ``n_layers``
    unrolled proximal-gradient layers whose prox is a Glow normalizing flow
    per layer (normflows blocks: ``n_levels`` levels of ``depth`` steps with
    couplings of ``hidden_channels``), the last level's latent shrunk by
    ``1 / (1 + lmbd_l)``. Trained end to end (final squared error, Adam) with
    (``constrained``) or without the descending constraints on the gradient
    norms of ``f = 100 ||y - A x||^2 - log N(z)`` in x and z (``epsilon``,
    dual ascent ``lr_dual`` after every batch), with noise of norm
    ``1 / (l + 1)`` injected into the intermediate outputs
    (``noise_injection``). The authors: 5 layers, depth 18, 4 levels, width
    512, batch 8, Adam 1e-5, 40 epochs of CelebA-HQ 64 x 64. ``scale_clamp``
    soft-clamps the couplings' log-scales (None: unbounded, as the authors'
    Glow), without which training diverged here (see
    :class:`solvers_common.inverse_problems.GlowProx`).

    ``tuning_space``: Adam's rate from the authors' order of magnitude
    (1e-5 at their size, larger for these small flows) and the dual step of
    the constrained variant (inert without constraints)."""

    name = "glow_prox"
    requirements = ["pip::torch", "pip::deepinv", "pip::normflows", "pip::numpy"]
    parameters = {
        "n_layers": [5],
        "n_levels": [2],
        "depth": [4],
        "hidden_channels": [32],
        "scale_clamp": [2.0],
        "constrained": [True, False],
        "noise_injection": [True],
        "epsilon": [0.05],
        "lr_dual": [1e-2],
        **{**UnrolledRestorationSolver.common_parameters, "batch_size": [8]},
    }
    test_config = {"n_layers": 2, "n_levels": 1, "depth": 1, "hidden_channels": 4,
                   "batch_size": 4, "epochs": 1}
    tuning_space = {"lr": [1e-4, 3e-4, 1e-3, 3e-3], "lr_dual": [1e-2, 1e-1]}

    def check_parameters(self):
        super().check_parameters()
        for name in ("n_layers", "n_levels", "depth", "hidden_channels"):
            check_integer(name, getattr(self, name))
        check_positive_or_none("scale_clamp", self.scale_clamp)
        factor = 2 ** self.n_levels
        if self.image_size % factor:
            raise ValueError(f"n_levels={self.n_levels}: the {self.image_size} x "
                             f"{self.image_size} images cannot pass {self.n_levels} squeezes "
                             f"(their side must be a multiple of {factor}).")

    def build_model(self, generator):
        return GlowProx(self.n_layers, self.n_channels, self.step, n_levels=self.n_levels,
                        depth=self.depth, hidden_channels=self.hidden_channels,
                        scale_clamp=self.scale_clamp)
