"""Clean images for image restoration, as numpy arrays ``(N, C, H, W)``.

Sources, offline by default:

- ``"skimage"``: crops of the test images bundled with scikit-image (gray and
  colour; gray ones are repeated over 3 channels when ``color=True``, colour
  ones averaged to gray otherwise). Training crops and test crops come from
  different images.
- ``"faces"``: the 100 LFW faces of 25 x 25 in ``skimage.data.lfw_subset``, the
  offline stand-in for CelebA-HQ; the first 70 train, the last 30 are held out
  (the subset's other 100 images are background patches, never used).
- ``"digits"``: scikit-learn's 8 x 8 digits (its fixed train/test split).
- ``"mnist"``: torchvision's MNIST under ``$LEARNOPT_DATA`` (downloaded if possible).
- ``"bsds500"``: the Berkeley segmentation images, read from
  ``$LEARNOPT_DATA/BSDS500/images/{train,test}/`` (or the archive's layout
  ``BSR/BSDS500/data/images/{train,test}/``).
- ``"celeba_hq"``: CelebA-HQ images in ``$LEARNOPT_DATA/CelebA-HQ/``, resized
  to ``crop_size``; the last tenth of the sorted file list is the test split.

File-backed sources raise :class:`~.paths.DataUnavailable` (one line) when
their files are absent. Values are float32 in [0, 1].

Validation images (for choosing hyperparameters; never the test images):

- crop sources (``skimage``, ``bsds500``), whose held-out pictures are the test
  pictures (crops of them would be near-duplicates of the test crops): a band
  of ``crop_size`` rows at the top or the bottom (a coin flip per picture) of
  each training picture is kept for validation crops, and the training crops
  come from the rest of the picture, so that no pixel is in both;
- image sources (``faces``, ``digits``, ``mnist``, ``celeba_hq``): images of
  the held-out split that are not test images (independent images of the
  test distribution; the training split is often used whole).
"""
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .images import load_digits_images, load_images
from .paths import DATA_ENV_VAR, DataUnavailable, data_home

RESTORATION_SOURCES = ("skimage", "faces", "digits", "mnist", "bsds500", "celeba_hq")

# scikit-image's bundled images (no download): training and test images are
# distinct pictures (``cat`` is ``chelsea`` mirrored, so only one is used).
SKIMAGE_TRAIN = ("astronaut", "camera", "coins", "moon", "brick", "grass", "gravel",
                 "hubble_deep_field", "immunohistochemistry", "rocket", "clock", "text")
SKIMAGE_TEST = ("coffee", "chelsea", "page", "microaneurysms")
# lfw_subset: 100 faces, then 100 non-faces (its docstring).
N_FACES = 100
FACES_TRAIN_SIZE = 70
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def _as_channels(image, color):
    """float32 ``(C, H, W)`` in [0, 1] from a ``(H, W)`` or ``(H, W, 3|4)`` array."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / np.float32(255)
    image = image.astype(np.float32)
    if image.ndim == 3:
        image = image[..., :3]
        if not color:
            image = image.mean(-1)
    if image.ndim == 2:
        image = np.repeat(image[None], 3, axis=0) if color else image[None]
    else:
        image = np.moveaxis(image, -1, 0)
    return np.ascontiguousarray(image)


def _check_size(images, crop_size, source):
    smallest = min(min(image.shape[-2:]) for image in images)
    if crop_size > smallest:
        raise ValueError(f"crop_size={crop_size} is larger than the {source} images "
                         f"(smallest side {smallest}); use crop_size <= {smallest}.")


def _check_band_size(images, crop_size, source):
    """A training picture must hold a validation band and a training crop."""
    lowest = min(image.shape[-2] for image in images)
    if 2 * crop_size > lowest:
        raise ValueError(f"crop_size={crop_size}: the {source} training pictures (lowest "
                         f"{lowest} rows) cannot hold a validation band and a training crop "
                         f"of {crop_size} rows each; use crop_size <= {lowest // 2}.")


def split_validation_bands(images, crop_size, generator):
    """``(training parts, validation bands)``: for each picture ``(C, H, W)``,
    its first or last ``crop_size`` rows (a coin flip from ``generator``) and
    the other ``H - crop_size`` rows."""
    parts, bands = [], []
    for image, at_top in zip(images, generator.integers(2, size=len(images))):
        if at_top:
            bands.append(image[:, :crop_size]), parts.append(image[:, crop_size:])
        else:
            bands.append(image[:, -crop_size:]), parts.append(image[:, :-crop_size])
    return parts, bands


def random_crops(images, crop_size, n_crops, generator):
    """``n_crops`` crops of ``crop_size`` x ``crop_size`` at random images and
    positions drawn from ``generator`` (a ``numpy.random.Generator``)."""
    crops = []
    for index in generator.integers(len(images), size=n_crops):
        image = images[index]
        top = generator.integers(image.shape[-2] - crop_size + 1)
        left = generator.integers(image.shape[-1] - crop_size + 1)
        crops.append(image[:, top:top + crop_size, left:left + crop_size])
    return np.stack(crops).astype(np.float32)


def center_crops(images, crop_size):
    """The centred ``crop_size`` x ``crop_size`` crop of each image ``(N, C, H, W)``."""
    height, width = images.shape[-2:]
    top, left = (height - crop_size) // 2, (width - crop_size) // 2
    return np.ascontiguousarray(images[..., top:top + crop_size, left:left + crop_size])


def _pick(images, n, generator, source, split):
    return images[_pick_indices(len(images), n, generator, source, split)]


def _pick_indices(n_images, n, generator, source, split):
    if n > n_images:
        raise ValueError(f"n_{split}={n} is more than the {n_images} {split} images of "
                         f"{source}.")
    return np.sort(generator.choice(n_images, size=n, replace=False))


def _read_folder(folder, color, size=None):
    from PIL import Image

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    images = []
    for path in files:
        with Image.open(path) as image:
            image = image.convert("RGB" if color else "L")
            if size is not None:
                image = image.resize((size, size), Image.BICUBIC)
            images.append(_as_channels(np.asarray(image), color))
    return images


def _bsds500_folder(split):
    root = data_home()
    for layout in ("BSDS500/images", "BSR/BSDS500/data/images"):
        folder = root / layout / split
        if folder.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
            return folder
    raise DataUnavailable(
        f"BSDS500: no images under {root / 'BSDS500/images' / split} (nor "
        f"{root / 'BSR/BSDS500/data/images' / split}); put the train/ and test/ .jpg files "
        f"of BSR_bsds500.tgz there or set {DATA_ENV_VAR} to a folder that holds them")


def _celeba_hq_files():
    folder = data_home() / "CelebA-HQ"
    if not folder.is_dir() or not any(p.suffix.lower() in IMAGE_SUFFIXES
                                      for p in folder.iterdir()):
        raise DataUnavailable(
            f"CelebA-HQ: no images in {folder}; put the CelebA-HQ .jpg or .png files there "
            f"or set {DATA_ENV_VAR} to a folder that holds a CelebA-HQ/ folder")
    return folder


class RestorationImages(NamedTuple):
    """The three disjoint splits, float32 arrays ``(n, C, crop_size, crop_size)``."""

    train: np.ndarray
    test: np.ndarray
    validation: np.ndarray


def load_restoration_images(source, crop_size, n_train, n_test, color=False, generator=None,
                            n_validation=1):
    """Training, test and validation images of ``source`` (see the module's
    docstring for where each split comes from).

    Returns a :class:`RestorationImages` ``(train, test, validation)``,
    float32 arrays ``(n, C, crop_size, crop_size)`` with ``C = 3`` when
    ``color`` else 1. Random choices (crops, which images, the validation
    bands) come from ``generator``, a ``numpy.random.Generator``; the training
    and test images of image sources are drawn first, as without a validation
    split. ValueError on an unknown source, a ``crop_size`` larger than the
    images (or, for crop sources, larger than half the training pictures'
    height), or more images than a split holds; DataUnavailable when a
    file-backed source is absent.
    """
    if source not in RESTORATION_SOURCES:
        raise ValueError(f"source={source!r} is unknown; accepted: {list(RESTORATION_SOURCES)}.")
    if int(crop_size) != crop_size or crop_size < 1:
        raise ValueError(f"crop_size must be an integer >= 1, got {crop_size!r}.")
    for name, value in (("n_train", n_train), ("n_test", n_test),
                        ("n_validation", n_validation)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    generator = np.random.default_rng(0) if generator is None else generator
    crop_size = int(crop_size)
    if source in ("skimage", "bsds500"):
        if source == "skimage":
            import skimage.data

            train_images = [_as_channels(getattr(skimage.data, name)(), color)
                            for name in SKIMAGE_TRAIN]
            test_images = [_as_channels(getattr(skimage.data, name)(), color)
                           for name in SKIMAGE_TEST]
        else:
            train_images = _read_folder(_bsds500_folder("train"), color)
            test_images = _read_folder(_bsds500_folder("test"), color)
        _check_size(train_images + test_images, crop_size, source)
        _check_band_size(train_images, crop_size, source)
        parts, bands = split_validation_bands(train_images, crop_size, generator)
        return RestorationImages(random_crops(parts, crop_size, n_train, generator),
                                 random_crops(test_images, crop_size, n_test, generator),
                                 random_crops(bands, crop_size, n_validation, generator))
    if source == "celeba_hq":
        images = np.stack(_read_folder(_celeba_hq_files(), color, size=crop_size))
        n_test_split = max(1, len(images) // 10)
        train, test = images[:-n_test_split], images[-n_test_split:]
    else:
        if source == "faces":
            import skimage.data

            faces = skimage.data.lfw_subset()[:N_FACES].astype(np.float32)
            train, test = faces[:FACES_TRAIN_SIZE], faces[FACES_TRAIN_SIZE:]
        else:
            train, _ = (load_digits_images(train=True) if source == "digits"
                        else load_images(source, train=True))
            test, _ = (load_digits_images(train=False) if source == "digits"
                       else load_images(source, train=False))
        train = np.stack([_as_channels(image, color) for image in train])
        test = np.stack([_as_channels(image, color) for image in test])
        _check_size([train[0]], crop_size, source)
        train, test = center_crops(train, crop_size), center_crops(test, crop_size)
    train = _pick(train, n_train, generator, source, "train")
    test_index = _pick_indices(len(test), n_test, generator, source, "test")
    others = np.setdiff1d(np.arange(len(test)), test_index)
    if n_validation > len(others):
        raise ValueError(f"n_validation={n_validation} is more than the {len(others)} images "
                         f"of {source}'s held-out split left after the n_test={n_test} test "
                         "images.")
    validation_index = np.sort(generator.choice(others, size=n_validation, replace=False))
    return RestorationImages(train, test[test_index], test[validation_index])
