from benchopt import BaseDataset
from sklearn.datasets import load_diabetes

from solvers_common.bilevel import make_sparse_problem, standardize_splits
from solvers_common.seeding import numpy_generator


class Dataset(BaseDataset):
    """scikit-learn's diabetes regression set (442 patients, 10 features,
    offline) for held-out selection of the Lasso's regularization: the
    samples are shuffled once and split into training (inner) and validation
    (outer); features and targets standardized with training statistics.
    ``problem``: ``lasso`` or ``weighted_lasso``."""

    name = "diabetes"
    requirements = ["pip::scikit-learn", "pip::numba", "pip::numpy", "pip::torch"]
    parameters = {"problem": ["lasso"], "validation_fraction": [0.5]}

    def get_data(self):
        if self.problem not in ("lasso", "weighted_lasso"):
            raise ValueError(f"problem={self.problem!r}; accepted: 'lasso', 'weighted_lasso'.")
        if not 0 < self.validation_fraction < 1:
            raise ValueError("validation_fraction must be in (0, 1), "
                             f"got {self.validation_fraction}.")
        X, y = load_diabetes(return_X_y=True)
        order = numpy_generator(self.get_seed(use_repetition=True)).permutation(len(y))
        n_inner = len(y) - int(round(self.validation_fraction * len(y)))
        X, y = standardize_splits(X[order], y[order], n_inner)
        problem = make_sparse_problem(self.problem, X[:n_inner], y[:n_inner], X[n_inner:],
                                      y[n_inner:])
        return dict(problem=problem)
