"""Image classification data sets as standardized arrays
``(N, channels, height, width)``, ready for a classifier."""
import numbers

import numpy as np

from ..seeding import numpy_generator
from .images import load_images


def _check_size(name, value):
    if value is not None and (not isinstance(value, numbers.Integral) or value < 1):
        raise ValueError(f"{name}={value!r} must be None (all images) or an integer >= 1.")


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


def standardize(train_images, test_images):
    """Subtract the training images' per-channel mean and divide by their
    per-channel standard deviation, on both splits (the normalization of the
    networks of Bungert et al. 2022)."""
    mean = train_images.mean(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
    std = train_images.std(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    return [((images - mean) / std).astype(np.float32) for images in (train_images, test_images)]


def image_classification_data(source, n_train=None, n_test=None, seed=0, root=None):
    """Training and test images of ``source`` with their labels.

    Parameters
    ----------
    source : {"digits", "mnist", "fashion_mnist", "cifar10"}
        See :func:`~solvers_common.data.load_images`; may raise
        :class:`~solvers_common.data.DataUnavailable`.
    n_train, n_test : int or None
        Random subsets of that many images of each split (all when None).
    seed : int
        Seed of the subsets.
    root : folder of torchvision's files, see :func:`load_images`.

    Returns
    -------
    dict
        ``X_train``, ``X_test`` (float32, ``(N, C, H, W)``, standardized with
        the training split's per-channel statistics), ``y_train``, ``y_test``
        (int64) and ``n_classes``.
    """
    _check_size("n_train", n_train)
    _check_size("n_test", n_test)
    rng = numpy_generator(seed)
    train_images, y_train = _subsample(*load_images(source, train=True, root=root), n_train, rng)
    test_images, y_test = _subsample(*load_images(source, train=False, root=root), n_test, rng)
    X_train, X_test = standardize(channels_first(train_images), channels_first(test_images))
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    return dict(X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test,
                n_classes=n_classes)
