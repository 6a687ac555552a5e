"""Image data sets as numpy arrays.

torchvision's MNIST, Fashion-MNIST and CIFAR-10 (read from disk, downloaded
when absent) and scikit-learn's digits (shipped with scikit-learn, always
available). Images come back as float32 in [0, 1], shaped ``(N, H, W)`` for
gray images and ``(N, H, W, C)`` for color ones; float32 rather than float64
because CIFAR-10's training set alone is 150 million values. Labels are int64.
"""
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torchvision
from sklearn.datasets import load_digits

from .paths import DATA_ENV_VAR, DataUnavailable, data_home

# torchvision's downloader opens sockets without a timeout, so on a machine
# whose network silently drops packets it would wait for the system's TCP
# timeout (minutes) per mirror. This bounds each connect and read instead; it
# does not bound a whole download, so slow real downloads still finish.
DOWNLOAD_TIMEOUT_SECONDS = 20

# scikit-learn's digits has no official split; the first three quarters of the
# images (in the file's order) train and the rest test, a fixed split so that
# train and test patches never come from the same image.
DIGITS_TRAIN_SIZE = 1347

_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@dataclass(frozen=True)
class _TorchvisionSource:
    """How one torchvision data set is laid out under the data root."""

    title: str  # the data set's usual spelling, for messages
    dataset_class: type
    data_folder: str  # where torchvision reads the prepared files
    files: tuple  # what a user can put in place of a download
    files_folder: str  # where those files go, relative to the root


_TORCHVISION_SOURCES = {
    "mnist": _TorchvisionSource(
        title="MNIST",
        dataset_class=torchvision.datasets.MNIST,
        data_folder="MNIST/raw",
        files=_MNIST_FILES,
        files_folder="MNIST/raw",
    ),
    "fashion_mnist": _TorchvisionSource(
        title="Fashion-MNIST",
        dataset_class=torchvision.datasets.FashionMNIST,
        data_folder="FashionMNIST/raw",
        files=_MNIST_FILES,
        files_folder="FashionMNIST/raw",
    ),
    "cifar10": _TorchvisionSource(
        title="CIFAR-10",
        dataset_class=torchvision.datasets.CIFAR10,
        data_folder="cifar-10-batches-py",
        files=("cifar-10-python.tar.gz",),
        files_folder=".",
    ),
}

IMAGE_SOURCES = ("digits", *_TORCHVISION_SOURCES)


@contextmanager
def _socket_timeout(seconds):
    """Bound the default socket timeout by ``seconds`` inside the block, and
    restore the previous default after it."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds if previous is None else min(previous, seconds))
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _describe(error, max_length=200):
    """``Type: message`` of an exception, shortened to fit a one-line reason."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= max_length else text[: max_length - 3] + "..."


def _unavailable(source, root, error):
    """The :class:`DataUnavailable` for ``source`` missing under ``root``."""
    files_folder = root / source.files_folder
    layout = f" in {source.files_folder}/" if source.files_folder != "." else ""
    return DataUnavailable(
        f"{source.title}: files not found under {root / source.data_folder} and "
        f"download failed ({_describe(error)}); put {', '.join(source.files)} in "
        f"{files_folder} or set {DATA_ENV_VAR} to a folder that holds "
        f"{'them' if len(source.files) > 1 else 'it'}{layout}"
    )


def load_torchvision_images(name, root=None, train=True):
    """Load a torchvision image data set as numpy arrays.

    The files are read from disk first (``download=False``); when they are
    missing, torchvision downloads them (``download=True``), with socket
    timeouts so that an offline machine fails in seconds.

    Parameters
    ----------
    name : {"mnist", "fashion_mnist", "cifar10"}
        torchvision's ``MNIST``, ``FashionMNIST`` or ``CIFAR10``.
    root : str | pathlib.Path | None
        Folder torchvision reads from and downloads into (it holds
        ``MNIST/raw/``, ``FashionMNIST/raw/`` or ``cifar-10-batches-py/``);
        defaults to :func:`~solvers_common.data.paths.data_home`.
    train : bool
        The official training split when true, the test split otherwise.

    Returns
    -------
    images : numpy.ndarray, float32 in [0, 1]
        ``(N, 28, 28)`` for MNIST and Fashion-MNIST, ``(N, 32, 32, 3)`` for
        CIFAR-10.
    labels : numpy.ndarray, int64, shape (N,)

    Raises
    ------
    ValueError
        If ``name`` is not one of the accepted values.
    DataUnavailable
        If the files are neither on disk nor downloadable; the one-line
        message says where to put them.
    """
    if name not in _TORCHVISION_SOURCES:
        raise ValueError(
            f"name={name!r} is not a torchvision image data set of the suite; "
            f"accepted values: {', '.join(map(repr, _TORCHVISION_SOURCES))}."
        )
    source = _TORCHVISION_SOURCES[name]
    root = data_home() if root is None else Path(root).expanduser()
    try:
        dataset = source.dataset_class(root=root, train=train, download=False)
    except Exception:
        # Any failure to obtain the files (missing, corrupted, unreadable,
        # offline, interrupted archive) means the data set is unavailable; the
        # cause goes into the message and the exception chain.
        try:
            with _socket_timeout(DOWNLOAD_TIMEOUT_SECONDS):
                dataset = source.dataset_class(root=root, train=train, download=True)
        except Exception as error:
            raise _unavailable(source, root, error) from error
    images = np.asarray(dataset.data, dtype=np.float32) / np.float32(255)
    labels = np.asarray(dataset.targets, dtype=np.int64)
    return images, labels


def load_digits_images(train=None):
    """Load scikit-learn's digits (UCI optical recognition of handwritten
    digits, 8 x 8 images with 17 gray levels) as numpy arrays.

    Parameters
    ----------
    train : bool | None
        ``None`` returns all 1797 images; ``True`` the first
        ``DIGITS_TRAIN_SIZE`` (1347) and ``False`` the remaining 450, a fixed
        split that keeps train and test images disjoint.

    Returns
    -------
    images : numpy.ndarray, float32 in [0, 1], shape (N, 8, 8)
    labels : numpy.ndarray, int64, shape (N,)
    """
    digits = load_digits()
    # Pixel values are counts of set pixels in 4 x 4 blocks, from 0 to 16.
    images = digits.images.astype(np.float32) / np.float32(16)
    labels = digits.target.astype(np.int64)
    if train is None:
        return images, labels
    if train:
        return images[:DIGITS_TRAIN_SIZE], labels[:DIGITS_TRAIN_SIZE]
    return images[DIGITS_TRAIN_SIZE:], labels[DIGITS_TRAIN_SIZE:]


def load_images(source, train=True, root=None):
    """Load the ``train`` or test split of an image data set by name.

    Parameters
    ----------
    source : {"digits", "mnist", "fashion_mnist", "cifar10"}
        ``"digits"`` is scikit-learn's (offline); the others go through
        :func:`load_torchvision_images`.
    train : bool
        Training split when true, test split otherwise.
    root : str | pathlib.Path | None
        torchvision's root folder; ignored for ``"digits"``.

    Returns
    -------
    images, labels : numpy.ndarray
        As returned by :func:`load_digits_images` or
        :func:`load_torchvision_images`.
    """
    if source == "digits":
        return load_digits_images(train=train)
    if source not in _TORCHVISION_SOURCES:
        raise ValueError(
            f"source={source!r} is not an image data set of the suite; accepted "
            f"values: {', '.join(map(repr, IMAGE_SOURCES))}."
        )
    return load_torchvision_images(source, root=root, train=train)
