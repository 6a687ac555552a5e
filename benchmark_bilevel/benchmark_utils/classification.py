"""Data preparation shared by the logistic-regression datasets."""
import numpy as np

from solvers_common.bilevel import LogisticRegressionProblem
from solvers_common.seeding import numpy_generator


def logistic_regression_data(X, y, seed, validation_fraction, test_fraction):
    """Shuffle (X, y) once, split it into training (inner), validation
    (outer) and test sets, standardize the features with training
    statistics, and return the dataset dict ``problem, X_test, y_test``.
    Labels are in {-1, +1}."""
    for name, value in dict(validation_fraction=validation_fraction,
                            test_fraction=test_fraction).items():
        if not 0 < value < 1:
            raise ValueError(f"{name} must be in (0, 1), got {value}.")
    if validation_fraction + test_fraction >= 1:
        raise ValueError("validation_fraction + test_fraction must be < 1.")
    order = numpy_generator(seed).permutation(len(y))
    X, y = np.asarray(X, dtype=np.float64)[order], np.asarray(y, dtype=np.float64)[order]
    n_outer = int(round(validation_fraction * len(y)))
    n_test = int(round(test_fraction * len(y)))
    n_inner = len(y) - n_outer - n_test
    mean, scale = X[:n_inner].mean(0), X[:n_inner].std(0)
    X = (X - mean) / np.where(scale > 0, scale, 1.0)
    inner, outer, test = slice(0, n_inner), slice(n_inner, n_inner + n_outer), \
        slice(n_inner + n_outer, None)
    problem = LogisticRegressionProblem(X[inner], y[inner], X[outer], y[outer])
    return dict(problem=problem, X_test=X[test], y_test=y[test])


def simulated_classification(seed, n_samples, n_features, correlation):
    """Gaussian features with correlation ``correlation ** |k - l|`` between
    features k and l, labels +-1 drawn from a logistic model whose weights
    are nonzero on half of the features."""
    rng = numpy_generator(seed)
    covariance_root = np.linalg.cholesky(
        correlation ** np.abs(np.subtract.outer(np.arange(n_features), np.arange(n_features))))
    X = rng.standard_normal((n_samples, n_features)) @ covariance_root.T
    weights = rng.standard_normal(n_features) * (rng.random(n_features) < 0.5)
    probabilities = 1 / (1 + np.exp(-X @ weights))
    y = np.where(rng.random(n_samples) < probabilities, 1.0, -1.0)
    return X, y
