import numpy as np
from benchopt import BaseDataset


class Dataset(BaseDataset):
    """Gaussian dictionary with unit-norm columns and Bernoulli-Gaussian codes:
    x = D z0 + noise, as in the synthetic experiments of Ablin et al. (2019).

    ``n_validation`` more signals, drawn after the training and test ones
    (which stay those of a draw without them), are the validation split that
    tuning selects on; the test signals are never used for selection."""

    name = "simulated"
    requirements = ["pip::numpy"]
    parameters = {
        "n_features, n_atoms": [(64, 256)],
        "density": [0.05],
        "noise_std": [0.0],
        "n_train, n_test": [(4000, 1000)],
        "n_validation": [500],
    }
    test_parameters = {
        "n_features, n_atoms": [(8, 16)],
        "n_train, n_test": [(64, 32)],
        "n_validation": [16],
    }

    def get_data(self):
        for name in ("n_features", "n_atoms", "n_train", "n_test", "n_validation"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if not 0 < self.density <= 1:
            raise ValueError(f"density must be in (0, 1], got {self.density}.")
        rng = np.random.default_rng(self.get_seed(use_repetition=True))
        D = rng.standard_normal((self.n_features, self.n_atoms))
        D /= np.linalg.norm(D, axis=0)

        def draw(n_signals):
            support = rng.random((n_signals, self.n_atoms)) < self.density
            codes = support * rng.standard_normal((n_signals, self.n_atoms))
            X = codes @ D.T
            return X + self.noise_std * rng.standard_normal(X.shape)

        X = draw(self.n_train + self.n_test)
        return dict(D=D, X_train=X[:self.n_train], X_test=X[self.n_train:],
                    X_validation=draw(self.n_validation))
