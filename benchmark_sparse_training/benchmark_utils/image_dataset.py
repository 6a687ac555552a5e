"""benchopt glue shared by the image datasets of benchmark_sparse_training."""
from benchopt import BaseDataset

from solvers_common.data import DataUnavailable, load_images
from solvers_common.data.classification import image_classification_data


class ImageDataset(BaseDataset):
    """The ``source`` image data set of :mod:`solvers_common.data`,
    standardized with the training split's statistics, or random subsets of
    ``n_train`` and ``n_test`` images of its official splits (a fresh draw per
    repetition). Files that are neither on disk nor downloadable make the
    dataset hand over ``unavailable``, a one-line message the objective skips
    the run with."""

    source = None
    parameters = {"n_train": [None], "n_test": [None]}
    test_parameters = {"n_train": [200], "n_test": [100]}
    # The downloads do not depend on the subset sizes.
    prepare_cache_ignore = ("n_train", "n_test", "base_seed")

    def prepare(self):
        for train in (True, False):
            load_images(self.source, train=train)

    def get_data(self):
        try:
            return image_classification_data(self.source, self.n_train, self.n_test,
                                             seed=self.get_seed(use_repetition=True))
        except DataUnavailable as error:
            return dict(unavailable=str(error))
