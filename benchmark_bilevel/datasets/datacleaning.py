import numpy as np
from benchopt import BaseDataset

from solvers_common.bilevel import DataCleaningProblem
from solvers_common.data import DataUnavailable, load_images
from solvers_common.seeding import numpy_generator


class Dataset(BaseDataset):
    """Data cleaning (Franceschi et al. 2017; Dagréou et al. 2022, Sec. 4):
    multinomial logistic regression on images whose training labels are
    replaced by a uniformly random class with probability
    ``corruption_probability``; one weight sigmoid(lmbd_i) per training
    sample, a clean validation set (outer) and a clean test set. ``source``:
    scikit-learn's digits (offline) or MNIST through torchvision. Images are
    flattened, with a constant feature appended as intercept."""

    name = "datacleaning"
    requirements = ["pip::torchvision", "pip::scikit-learn", "pip::numba", "pip::numpy",
                    "pip::torch"]
    parameters = {
        "source": ["digits"],
        "corruption_probability": [0.5],
        "n_inner_samples, n_outer_samples": [(800, 400)],
        "l2_regularization": [1e-3],
    }
    test_parameters = {"n_inner_samples, n_outer_samples": [(100, 50)]}

    def get_data(self):
        if self.source not in ("digits", "mnist"):
            raise ValueError(f"source={self.source!r}; accepted: 'digits', 'mnist'.")
        if not 0 <= self.corruption_probability <= 1:
            raise ValueError("corruption_probability must be in [0, 1], "
                             f"got {self.corruption_probability}.")
        try:
            images, labels = load_images(self.source, train=True)
            test_images, test_labels = load_images(self.source, train=False)
        except DataUnavailable as error:
            return dict(unavailable=str(error))
        n_inner, n_outer = self.n_inner_samples, self.n_outer_samples
        if n_inner + n_outer > len(labels):
            raise ValueError(f"n_inner_samples + n_outer_samples = {n_inner + n_outer} "
                             f"exceeds the {len(labels)} training images of {self.source}.")
        rng = numpy_generator(self.get_seed(use_repetition=True))

        def features(images):
            flat = images.reshape(len(images), -1).astype(np.float64)
            return np.hstack([flat, np.ones((len(flat), 1))])

        order = rng.permutation(len(labels))[:n_inner + n_outer]
        X, y = features(images[order]), labels[order]
        n_classes = int(labels.max()) + 1
        y_inner = y[:n_inner].copy()
        corrupted = rng.random(n_inner) < self.corruption_probability
        y_inner[corrupted] = rng.integers(0, n_classes, corrupted.sum())
        problem = DataCleaningProblem(X[:n_inner], y_inner, X[n_inner:], y[n_inner:],
                                      n_classes=n_classes,
                                      l2_regularization=self.l2_regularization)
        return dict(problem=problem, X_test=features(test_images), y_test=test_labels)
