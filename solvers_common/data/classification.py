"""Image classification data sets as standardized arrays
``(N, channels, height, width)``, ready for a classifier, with a validation
split carved out of the training images for tuning (the test images are never
used for selection)."""
import numbers

import numpy as np

from ..seeding import numpy_generator
from .images import load_images


def _check_size(name, value):
    if value is not None and (not isinstance(value, numbers.Integral) or value < 1):
        raise ValueError(f"{name}={value!r} must be None (all images) or an integer >= 1.")


def check_validation_fraction(validation_fraction):
    """Raise ValueError unless ``validation_fraction`` is a number in (0, 1)."""
    if (not isinstance(validation_fraction, numbers.Real) or isinstance(validation_fraction, bool)
            or not 0 < validation_fraction < 1):
        raise ValueError(f"validation_fraction={validation_fraction!r} must be a number in "
                         "(0, 1).")


def validation_split(n_images, validation_fraction, rng):
    """``(train_index, validation_index)``: ``round(validation_fraction *
    n_images)`` of the indices ``0, ..., n_images - 1`` drawn without
    replacement from ``rng`` for validation, the others for training, both
    sorted. Raises ValueError when either part would be empty."""
    check_validation_fraction(validation_fraction)
    n_validation = int(round(validation_fraction * n_images))
    if not 1 <= n_validation < n_images:
        raise ValueError(f"validation_fraction={validation_fraction!r} of {n_images} training "
                         f"images leaves {n_validation} for validation and "
                         f"{n_images - n_validation} for training; both must be >= 1.")
    chosen = np.zeros(n_images, dtype=bool)
    chosen[rng.choice(n_images, size=n_validation, replace=False)] = True
    return np.flatnonzero(~chosen), np.flatnonzero(chosen)


def _subsample(images, labels, size, rng):
    if size is None or size >= len(images):
        return images, labels
    chosen = np.sort(rng.choice(len(images), size=size, replace=False))
    return images[chosen], labels[chosen]


def channels_first(images):
    """``(N, H, W)`` gray or ``(N, H, W, C)`` color images as ``(N, C, H, W)``."""
    if images.ndim == 3:
        return images[:, None]
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


def standardize(train_images, *other_images):
    """Subtract the training images' per-channel mean and divide by their
    per-channel standard deviation, on the training and every other split (the
    normalization of the networks of Bungert et al. 2022)."""
    mean = train_images.mean(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
    std = train_images.std(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    return [((images - mean) / std).astype(np.float32)
            for images in (train_images, *other_images)]


def image_classification_data(source, n_train=None, n_test=None, seed=0, root=None,
                              validation_fraction=0.1):
    """Training, validation and test images of ``source`` with their labels.

    Parameters
    ----------
    source : {"digits", "mnist", "fashion_mnist", "cifar10"}
        See :func:`~solvers_common.data.load_images`; may raise
        :class:`~solvers_common.data.DataUnavailable`.
    n_train, n_test : int or None
        Random subsets of that many images of each official split (all when
        None).
    seed : int
        Seed of the subsets and of the validation split.
    root : folder of torchvision's files, see :func:`load_images`.
    validation_fraction : float in (0, 1)
        That fraction of the ``n_train`` training images (rounded, see
        :func:`validation_split`) is set aside as the validation split; the
        training split is the rest. The subsets are drawn first, so the test
        images do not depend on it.

    Returns
    -------
    dict
        ``X_train``, ``X_validation``, ``X_test`` (float32, ``(N, C, H, W)``,
        standardized with the training split's per-channel statistics),
        ``y_train``, ``y_validation``, ``y_test`` (int64) and ``n_classes``.
    """
    _check_size("n_train", n_train)
    _check_size("n_test", n_test)
    check_validation_fraction(validation_fraction)
    rng = numpy_generator(seed)
    pool_images, pool_labels = _subsample(*load_images(source, train=True, root=root), n_train,
                                          rng)
    test_images, y_test = _subsample(*load_images(source, train=False, root=root), n_test, rng)
    train, validation = validation_split(len(pool_images), validation_fraction, rng)
    pool_images = channels_first(pool_images)
    X_train, X_validation, X_test = standardize(pool_images[train], pool_images[validation],
                                                channels_first(test_images))
    y_train, y_validation = pool_labels[train], pool_labels[validation]
    n_classes = int(max(pool_labels.max(), y_test.max())) + 1
    return dict(X_train=X_train, y_train=y_train, X_validation=X_validation,
                y_validation=y_validation, X_test=X_test, y_test=y_test, n_classes=n_classes)
