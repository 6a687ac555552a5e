from benchopt import BaseDataset

from solvers_common.data import (
    DataUnavailable,
    extract_patches,
    learn_dictionary,
    load_images,
)
from solvers_common.seeding import numpy_generator

PATCH_SIZE = 8


class Dataset(BaseDataset):
    """Centered, unit-norm 8 x 8 gray image patches and a dictionary for them,
    the natural-image setting of Gregor and LeCun (2010) and Ablin et al.
    (2019). The dictionary is learned on the training patches or made of some
    of them; test patches come from the test split's images, so no image gives
    both a training and a test patch."""

    name = "patches"
    requirements = ["pip::torchvision", "pip::scikit-learn"]
    parameters = {
        "source": ["digits", "mnist", "cifar10"],
        "n_atoms": [128],
        "dictionary": ["dictionary_learning", "random_patches"],
        "n_train": [4000],
        "n_test": [1000],
    }
    test_parameters = {
        "source": ["digits"],
        "n_atoms": [16],
        "dictionary": ["dictionary_learning", "random_patches"],
        "n_train": [100],
        "n_test": [20],
    }
    # Only the source decides which files prepare() downloads.
    prepare_cache_ignore = ("n_atoms", "dictionary", "n_train", "n_test", "base_seed")

    def prepare(self):
        # Download both splits ahead of a run (`benchopt prepare`); a failure
        # there is reported with DataUnavailable's message.
        for train in (True, False):
            load_images(self.source, train=train)

    def get_data(self):
        seed = self.get_seed(use_repetition=True)
        try:
            train_images, _ = load_images(self.source, train=True)
            test_images, _ = load_images(self.source, train=False)
        except DataUnavailable as error:
            # The Objective's skip() shows this message instead of failing.
            return dict(unavailable=str(error))
        generator = numpy_generator(seed)
        X_train = extract_patches(train_images, PATCH_SIZE, self.n_train, generator)
        X_test = extract_patches(test_images, PATCH_SIZE, self.n_test, generator)
        D = learn_dictionary(X_train, self.n_atoms, self.dictionary, seed)
        return dict(D=D, X_train=X_train, X_test=X_test)
