"""benchopt glue shared by the image datasets of benchmark_sparse_training."""
from benchopt import BaseDataset

from solvers_common.data import DataUnavailable, load_images
from solvers_common.data.classification import image_classification_data


class ImageDataset(BaseDataset):
    """The ``source`` image data set of :mod:`solvers_common.data`,
    standardized with the training split's statistics, or random subsets of
    ``n_train`` and ``n_test`` images of its official splits (a fresh draw per
    repetition). A random ``validation_fraction`` of the ``n_train`` training
    images (a fresh draw per repetition) is the validation split that tuning
    selects on; the solvers train on the others. Files that are neither on
    disk nor downloadable make the dataset hand over ``unavailable``, a
    one-line message the objective skips the run with."""

    source = None
    parameters = {"n_train": [None], "n_test": [None], "validation_fraction": [0.1]}
    test_parameters = {"n_train": [200], "n_test": [100]}
    # The downloads do not depend on the subset sizes.
    prepare_cache_ignore = ("n_train", "n_test", "validation_fraction", "base_seed")

    def prepare(self):
        for train in (True, False):
            load_images(self.source, train=train)

    def get_data(self):
        try:
            return image_classification_data(self.source, self.n_train, self.n_test,
                                             seed=self.get_seed(use_repetition=True),
                                             validation_fraction=self.validation_fraction)
        except DataUnavailable as error:
            return dict(unavailable=str(error))
