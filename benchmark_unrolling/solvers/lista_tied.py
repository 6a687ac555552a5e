from benchmark_utils.trained_solver import TrainedSolver

from solvers_common.optim.checks import check_integer, check_positive
from solvers_common.unrolled import LISTATied
from solvers_common.unrolled.implicit import BACKWARDS, ImplicitTrainer

TRAININGS = ("unrolled", "implicit")


class Solver(TrainedSolver):
    """Weight-tied LISTA, z_{l+1} = ST(W_z z_l + W_x x, theta) with one W_z,
    one W_x for all layers (the recurrent form of Gregor & LeCun 2010,
    eq. (3)); ``thresholds``: one for all layers (``shared``) or one per layer.
    ``init``: small random weights by default (from ISTA's weights the fixed
    point is already the Lasso solution, which leaves implicit training
    nothing to learn), or ``ista``.

    ``training="unrolled"``: backpropagation through the ``n_layers`` layers.
    ``training="implicit"`` (``thresholds="shared"`` only): the loss at the
    fixed point z = f(z) of the layer, found by fixed-point iterations to
    ``fixed_point_tol`` (at most ``fixed_point_max_iter``), differentiated
    by the implicit function theorem (deep equilibrium models, Bai, Kolter &
    Koltun 2019, Theorem 1), the backward linear system solved by the same
    fixed-point iterations (``backward="fixed_point"``) or by conjugate
    gradients on its normal equations (``"cg"``, which converges even where
    the layer is not a contraction). Ramzi, Ablin, Peyré & Moreau (2023), "Test like you train in
    implicit deep learning", compare the two past the trained depth: the
    objective's ``gap_extra_layers_<k>``. Either way the result is the
    network, scored at ``n_layers`` layers and past them.
    ``fixed_point_tol`` (a finite number > 0) and ``fixed_point_max_iter``
    (an integer >= 1) are checked with either ``training``.
    """

    name = "lista_tied"
    requirements = ["pip::torch", "pip::numpy"]
    parameters = {
        "training": list(TRAININGS),
        "thresholds": ["shared"],
        "init": ["random"],
        "fixed_point_tol": [1e-5],
        "fixed_point_max_iter": [100],
        "backward": ["fixed_point"],
        **TrainedSolver.common_parameters,
    }
    tuning_space = {"lr": [1e-4, 3e-4, 1e-3, 3e-3]}
    test_config = {"batch_size": 16}

    def skip(self, **objective):
        if self.training not in TRAININGS:
            raise ValueError(f"training={self.training!r} is unknown; accepted: "
                             f"{list(TRAININGS)}.")
        if self.backward not in BACKWARDS:
            raise ValueError(f"backward={self.backward!r} is unknown; accepted: "
                             f"{list(BACKWARDS)}.")
        if self.training == "implicit" and self.thresholds != "shared":
            return True, ("training=implicit needs thresholds=shared: with a threshold per "
                          "layer the layers are not one map with a fixed point")
        return False, None

    def check_parameters(self):
        super().check_parameters()
        check_positive("fixed_point_tol", self.fixed_point_tol)
        check_integer("fixed_point_max_iter", self.fixed_point_max_iter)

    def build_network(self, D, lmbd, n_layers, generator):
        return LISTATied(D, lmbd, n_layers, thresholds=self.thresholds, init=self.init,
                         generator=generator)

    def make_trainer(self):
        if self.training == "unrolled":
            return super().make_trainer()
        return ImplicitTrainer(self.network, self.X, self.z_star, self.D, self.lmbd,
                               tol=self.fixed_point_tol, max_iter=self.fixed_point_max_iter,
                               backward=self.backward,
                               **self.trainer_options())
