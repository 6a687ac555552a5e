from benchmark_utils.classification import logistic_regression_data
from benchopt import BaseDataset
from sklearn.datasets import load_breast_cancer


class Dataset(BaseDataset):
    """Wisconsin breast cancer (569 samples, 30 features, ships with
    scikit-learn): l2-regularized logistic regression with one regularization
    per feature; the samples are shuffled once and split into training
    (inner), validation (outer) and test sets, features standardized with
    training statistics."""

    name = "breast_cancer"
    requirements = ["pip::scikit-learn", "pip::numba", "pip::numpy", "pip::torch"]
    parameters = {"validation_fraction, test_fraction": [(0.25, 0.25)]}

    def get_data(self):
        X, y = load_breast_cancer(return_X_y=True)
        return logistic_regression_data(
            X, 2.0 * y - 1.0, self.get_seed(use_repetition=True),
            self.validation_fraction, self.test_fraction)
