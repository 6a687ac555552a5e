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
    both a training and a test patch. The ``n_validation`` validation patches
    (the split tuning selects on) come from training-split images held out
    from training: a seeded random subset of them, in proportion
    ``n_validation / (n_train + n_validation)`` (at least one image), so no
    image gives patches to two splits either."""

    name = "patches"
    requirements = ["pip::torchvision", "pip::scikit-learn", "pip::numpy", "pip::torch"]
    parameters = {
        "source": ["digits", "mnist", "cifar10"],
        "n_atoms": [128],
        "dictionary": ["dictionary_learning", "random_patches"],
        "n_train": [4000],
        "n_test": [1000],
        "n_validation": [500],
    }
    test_parameters = {
        "source": ["digits"],
        "n_atoms": [16],
        "dictionary": ["dictionary_learning", "random_patches"],
        "n_train": [100],
        "n_test": [20],
        "n_validation": [16],
    }
    # Only the source decides which files prepare() downloads.
    prepare_cache_ignore = ("n_atoms", "dictionary", "n_train", "n_test", "n_validation",
                            "base_seed")

    def prepare(self):
        # Download both splits ahead of a run (`benchopt prepare`); a failure
        # there is reported with DataUnavailable's message.
        for train in (True, False):
            load_images(self.source, train=train)

    def get_data(self):
        for name in ("n_train", "n_test", "n_validation"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)}.")
        seed = self.get_seed(use_repetition=True)
        try:
            train_images, _ = load_images(self.source, train=True)
            test_images, _ = load_images(self.source, train=False)
        except DataUnavailable as error:
            # The Objective's skip() shows this message instead of failing.
            return dict(unavailable=str(error))
        generator = numpy_generator(seed)
        train_images, validation_images = self._hold_out(train_images, generator)
        X_train = extract_patches(train_images, PATCH_SIZE, self.n_train, generator)
        X_test = extract_patches(test_images, PATCH_SIZE, self.n_test, generator)
        X_validation = extract_patches(validation_images, PATCH_SIZE, self.n_validation,
                                       generator)
        D = learn_dictionary(X_train, self.n_atoms, self.dictionary, seed)
        return dict(D=D, X_train=X_train, X_test=X_test, X_validation=X_validation)

    def _hold_out(self, images, generator):
        """(training images, validation images): a random split of the
        training split's images in proportion to the numbers of patches."""
        n_images = len(images)
        if n_images < 2:
            raise ValueError(f"{self.source} has {n_images} training image(s): at least two "
                             "are needed to hold some out for validation.")
        n_held_out = round(n_images * self.n_validation / (self.n_train + self.n_validation))
        n_held_out = min(max(1, n_held_out), n_images - 1)
        order = generator.permutation(n_images)
        return images[order[n_held_out:]], images[order[:n_held_out]]
