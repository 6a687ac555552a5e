from benchmark_utils.trained_solver import TrainedSolver

from solvers_common.unrolled import SLISTA


class Solver(TrainedSolver):
    """SLISTA (Ablin, Moreau, Massias & Gramfort 2019, "Learning step sizes
    for unfolded sparse coding", NeurIPS, Sec. 3): ISTA with one learned step
    size per layer, started at 1 / ||D||_2^2.

    Trained by default, as the paper trains it, on the unsupervised loss: the
    Lasso objective of the network's output, ``E_x[F_x(z_L(x))]`` with
    ``F_x(z) = 1/2 ||x - D z||^2 + lmbd ||z||_1`` (the learning problem of
    their Sec. 1, the loss of every experiment of their Sec. 5); ``loss=
    supervised`` (``||z_L - z*||^2``) stays available. On the digits patches
    of evidence_lista_vs_ista.yml (L = 10, Adam 1e-3) the unsupervised loss
    ended at a test gap of 0.019, which ISTA needs about 50 iterations for,
    the supervised one at 0.066. On the quick problem (simulated 64 x 256,
    L = 10, 63 epochs) the two losses end level: 0.090 and 0.085 at Adam
    1e-3, 0.0121 and 0.0122 at 1e-2."""

    name = "slista"
    requirements = ["pip::torch", "pip::numpy"]
    parameters = {**TrainedSolver.common_parameters, "loss": ["unsupervised"]}
    # The loss is the paper's modelling choice, not a knob: only Adam's step
    # is tuned, around the 1e-3 of the suite's other networks (10 step sizes
    # move little at 1e-3 in 63 epochs: 1e-2 ended 7 times lower above). Both
    # ends are someone's best: 1e-2 on the quick config (3e-2 was tried there:
    # validation gap 0.108 against 0.016), 3e-4 on evidence_lista_vs_ista; with
    # a fifth point a budget of 4 drew a subset without 3e-4 there (0.0262
    # against 0.0239), so the space keeps its 4 points.
    tuning_space = {"lr": [3e-4, 1e-3, 3e-3, 1e-2]}
    test_config = {"batch_size": 16}

    def build_network(self, D, lmbd, n_layers, generator):
        return SLISTA(D, lmbd, n_layers)
