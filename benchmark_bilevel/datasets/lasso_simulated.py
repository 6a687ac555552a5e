import numpy as np
from benchopt import BaseDataset

from solvers_common.bilevel import correlated_regression, make_sparse_problem
from solvers_common.seeding import numpy_generator


class Dataset(BaseDataset):
    """Held-out selection of a Lasso-type model's regularization on a
    simulated correlated design (Bertrand et al., ICML 2020 / JMLR 2022):
    Gaussian features with correlation ``correlation ** |k - l|`` (rho
    between neighbouring features), a true coefficient vector with a
    fraction ``density`` of non-zero entries, targets with signal-to-noise
    ratio ``snr``; ``n_inner_samples`` for training (inner), the next
    ``n_outer_samples`` for validation (outer). ``problem``: ``lasso``,
    ``weighted_lasso`` (one lmbd per feature) or ``sparse_logreg`` (labels
    sign(y))."""

    name = "lasso_simulated"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    parameters = {
        "problem": ["lasso"],
        "n_inner_samples, n_outer_samples": [(200, 200)],
        "n_features": [1000],
        "correlation": [0.5],
        "density": [0.05],
        "snr": [3.0],
    }
    test_parameters = {
        "n_inner_samples, n_outer_samples": [(30, 30)],
        "n_features": [50],
    }

    def get_data(self):
        n_inner = self.n_inner_samples
        X, y, _ = correlated_regression(
            numpy_generator(self.get_seed(use_repetition=True)),
            n_inner + self.n_outer_samples, self.n_features, self.correlation,
            self.density, self.snr)
        if self.problem == "sparse_logreg":
            y = np.where(y > 0, 1.0, -1.0)
        problem = make_sparse_problem(self.problem, X[:n_inner], y[:n_inner], X[n_inner:],
                                      y[n_inner:])
        return dict(problem=problem)
