import numpy as np
from benchopt import BaseDataset

from solvers_common.data.classification import check_validation_fraction, validation_split


class Dataset(BaseDataset):
    """Tiny Gaussian class clusters shaped as 1-channel images, for tests: the
    center of each class is a standard Gaussian vector of ``image_size**2``
    pixels and its images are the center plus Gaussian noise of standard
    deviation ``cluster_std``. A random ``validation_fraction`` of the
    ``n_train`` training images is the validation split (drawn after the test
    images, which do not depend on it); the solvers train on the others."""

    name = "simulated"
    requirements = ["pip::numpy", "pip::scikit-learn", "pip::torch", "pip::torchvision"]
    parameters = {
        "n_train, n_test": [(600, 300)],
        "n_classes": [3],
        "image_size": [4],
        "cluster_std": [1.0],
        "validation_fraction": [0.1],
    }
    test_parameters = {"n_train, n_test": [(64, 32)]}

    def get_data(self):
        for name in ("n_train", "n_test", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} must be >= 1.")
        if self.n_classes < 2:
            raise ValueError(f"n_classes={self.n_classes!r} must be >= 2.")
        if not self.cluster_std >= 0:
            raise ValueError(f"cluster_std={self.cluster_std!r} must be >= 0.")
        check_validation_fraction(self.validation_fraction)
        rng = np.random.default_rng(self.get_seed(use_repetition=True))
        shape = (1, self.image_size, self.image_size)
        centers = rng.standard_normal((self.n_classes, *shape))

        def draw(n):
            labels = rng.integers(self.n_classes, size=n)
            images = centers[labels] + self.cluster_std * rng.standard_normal((n, *shape))
            return images.astype(np.float32), labels.astype(np.int64)

        X_pool, y_pool = draw(self.n_train)
        X_test, y_test = draw(self.n_test)
        train, validation = validation_split(self.n_train, self.validation_fraction, rng)
        return dict(X_train=X_pool[train], y_train=y_pool[train], X_validation=X_pool[validation],
                    y_validation=y_pool[validation], X_test=X_test, y_test=y_test,
                    n_classes=self.n_classes)
