from benchmark_utils.classification import logistic_regression_data, simulated_classification
from benchopt import BaseDataset


class Dataset(BaseDataset):
    """A simulated binary classification set of ijcnn1's shape (49,990
    training and 91,701 validation samples, 22 features) for the logistic
    regression problem with per-feature regularization: correlated Gaussian
    features, labels from a sparse logistic model."""

    name = "simulated"
    requirements = ["pip::torch", "pip::numba", "pip::numpy"]
    parameters = {
        "n_inner_samples, n_outer_samples, n_test_samples": [(49_990, 91_701, 10_000)],
        "n_features": [22],
        "correlation": [0.5],
    }
    test_parameters = {
        "n_inner_samples, n_outer_samples, n_test_samples": [(200, 100, 100)],
        "n_features": [5],
    }

    def get_data(self):
        seed = self.get_seed(use_repetition=True)
        n_samples = self.n_inner_samples + self.n_outer_samples + self.n_test_samples
        X, y = simulated_classification(seed, n_samples, self.n_features, self.correlation)
        return logistic_regression_data(
            X, y, seed, self.n_outer_samples / n_samples, self.n_test_samples / n_samples)
