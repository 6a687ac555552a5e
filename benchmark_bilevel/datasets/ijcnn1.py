import numpy as np
from benchopt import BaseDataset

from solvers_common.bilevel import LogisticRegressionProblem
from solvers_common.data import DataUnavailable
from solvers_common.data.libsvm import load_libsvm
from solvers_common.seeding import numpy_generator


class Dataset(BaseDataset):
    """ijcnn1 (LIBSVM, through libsvmdata): 49,990 training samples (inner)
    and the 91,701 samples of ijcnn1.t (outer, validation), 22 features; the
    setting of Dagréou et al. (2022). Both sets are shuffled once, so that the
    contiguous mini-batches of the solvers are random subsets. Skipped with a
    one-line message when the files are missing and cannot be downloaded."""

    name = "ijcnn1"
    requirements = ["pip::libsvmdata", "pip::numba", "pip::numpy", "pip::scikit-learn",
                    "pip::scipy", "pip::torch", "pip::torchvision"]
    parameters = {}

    def get_data(self):
        try:
            X_inner, y_inner = load_libsvm("ijcnn1")
            X_outer, y_outer = load_libsvm("ijcnn1_test")
        except DataUnavailable as error:
            return dict(unavailable=str(error))
        rng = numpy_generator(self.get_seed(use_repetition=True))
        inner, outer = rng.permutation(len(y_inner)), rng.permutation(len(y_outer))
        problem = LogisticRegressionProblem(X_inner[inner], np.sign(y_inner[inner]),
                                            X_outer[outer], np.sign(y_outer[outer]))
        return dict(problem=problem)
