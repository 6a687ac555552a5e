import numpy as np
from benchopt import BaseDataset

from solvers_common.bilevel import make_sparse_problem
from solvers_common.data import DataUnavailable
from solvers_common.data.libsvm import load_libsvm
from solvers_common.seeding import numpy_generator


class Dataset(BaseDataset):
    """The LIBSVM sets of Bertrand et al. (ICML 2020 / JMLR 2022), through
    libsvmdata (``libsvm_name``: ``rcv1.binary``, ``news20.binary``,
    ``real-sim``); targets +-1, half of the samples for
    training (inner) and half for validation (outer), drawn at random as in
    the paper. The suite's problems hold dense tensors: ``n_features`` keeps
    the most frequent columns (None: all, which needs the memory of the dense
    matrix) and ``n_samples`` a random subset (None: all). Skipped with a
    one-line message when the files are missing and cannot be downloaded."""

    name = "libsvm_sparse"
    requirements = ["pip::libsvmdata", "pip::numba", "pip::numpy", "pip::scikit-learn",
                    "pip::scipy", "pip::torch", "pip::torchvision"]
    parameters = {
        "libsvm_name": ["rcv1.binary"],
        "problem": ["lasso"],
        "n_samples, n_features": [(None, 5000)],
    }

    def get_data(self):
        try:
            X, y = load_libsvm(self.libsvm_name, dense=False)
        except DataUnavailable as error:
            return dict(unavailable=str(error))
        rng = numpy_generator(self.get_seed(use_repetition=True))
        rows = rng.permutation(X.shape[0])
        if self.n_samples is not None:
            rows = rows[:self.n_samples]
        X, y = X[rows], np.sign(y[rows])
        if self.n_features is not None and X.shape[1] > self.n_features:
            counts = np.asarray((X != 0).sum(0)).ravel()
            X = X[:, np.sort(np.argsort(-counts, kind="stable")[:self.n_features])]
        X = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
        n_inner = len(y) // 2
        problem = make_sparse_problem(self.problem, X[:n_inner], y[:n_inner], X[n_inner:],
                                      y[n_inner:])
        return dict(problem=problem)
