"""Tests of the data layer (``solvers_common.data``) and of benchmark_unrolling's
``patches`` dataset, all offline: downloads are made to fail by replacing
``urllib.request.urlopen``, which torchvision's downloader calls."""
import gzip
import shutil
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from benchopt.benchmark import Benchmark
from benchopt.utils.run_context import RunContext

from solvers_common.data import (
    DICTIONARY_METHODS,
    DataUnavailable,
    data_home,
    extract_patches,
    learn_dictionary,
    load_digits_images,
    load_images,
    load_torchvision_images,
)

REPOSITORY = Path(__file__).resolve().parents[1]
BENCHMARK_UNROLLING = REPOSITORY / "benchmark_unrolling"
MNIST_RAW = REPOSITORY.parent / "shared" / "data" / "mnist" / "raw"
# Label counts of MNIST's official test set (LeCun et al., 10000 images).
MNIST_TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture
def no_network(monkeypatch):
    """Make every download fail at once, as on a machine without network."""

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network disabled by the test")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture
def empty_data_home(monkeypatch, tmp_path):
    """``$LEARNOPT_DATA`` pointed at an empty folder."""
    home = tmp_path / "empty_data_home"
    home.mkdir()
    monkeypatch.setenv("LEARNOPT_DATA", str(home))
    return home


def random_images(shape, seed=0):
    return np.random.default_rng(seed).random(shape)


def test_data_home_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LEARNOPT_DATA", str(tmp_path))
    assert data_home() == tmp_path.resolve()
    monkeypatch.delenv("LEARNOPT_DATA")
    assert data_home() == (Path.home() / ".cache" / "learnopt-bench").resolve()


@pytest.mark.parametrize("shape", [(20, 16, 16), (20, 16, 16, 3)])
def test_extract_patches_centered_unit_norm(shape):
    patches = extract_patches(random_images(shape), 8, 300, 0)
    assert patches.shape == (300, 64)
    assert patches.dtype == np.float64
    np.testing.assert_allclose(patches.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(patches, axis=1), 1, rtol=1e-12)
    # 20 images hold 20 * 9 * 9 = 1620 windows: 300 draws without replacement.
    assert len(np.unique(patches, axis=0)) == 300


def test_extract_patches_reproducible():
    images = random_images((10, 12, 12))
    first = extract_patches(images, 8, 50, 3)
    np.testing.assert_array_equal(first, extract_patches(images, 8, 50, 3))
    np.testing.assert_array_equal(
        first, extract_patches(images, 8, 50, np.random.default_rng(3))
    )
    assert not np.array_equal(first, extract_patches(images, 8, 50, 4))
    from_torch = [
        extract_patches(images, 8, 50, torch.Generator().manual_seed(3))
        for _ in range(2)
    ]
    np.testing.assert_array_equal(*from_torch)


def test_extract_patches_color_is_channel_mean():
    gray = random_images((5, 10, 10))
    color = np.stack([gray, gray + 0.5, 2 * gray], axis=-1)
    np.testing.assert_allclose(
        extract_patches(color, 4, 40, 0),
        extract_patches(color.mean(axis=-1), 4, 40, 0),
        atol=1e-12,
    )


def test_extract_patches_skips_flat_background():
    # Black images with one bright 3 x 3 square: most 8 x 8 windows are flat.
    images = np.zeros((30, 28, 28))
    images[:, 12:15, 12:15] = 1.0
    patches = extract_patches(images, 8, 500, 0)
    assert np.all(np.isfinite(patches))
    np.testing.assert_allclose(np.linalg.norm(patches, axis=1), 1, rtol=1e-12)
    with pytest.raises(ValueError, match="flat"):
        extract_patches(np.ones((3, 8, 8)), 8, 2, 0)


def test_extract_patches_repeats_a_small_pool_evenly():
    # 8 x 8 patches of 7 digit images: 7 windows for 17 draws, each used 2 or 3
    # times.
    images, _ = load_digits_images()
    patches = extract_patches(images[:7], 8, 17, 0)
    _, counts = np.unique(patches, axis=0, return_counts=True)
    assert len(counts) == 7
    assert set(counts) <= {2, 3}


@pytest.mark.parametrize(
    "arguments, parameter",
    [
        (dict(patch_size=9), "patch_size"),
        (dict(patch_size=0), "patch_size"),
        (dict(n_patches=0), "n_patches"),
        (dict(generator="seed"), "generator"),
    ],
)
def test_extract_patches_bad_parameters(arguments, parameter):
    call = dict(images=random_images((4, 8, 8)), patch_size=4, n_patches=5)
    call["generator"] = 0
    call.update(arguments)
    with pytest.raises(ValueError, match=parameter):
        extract_patches(**call)


@pytest.mark.parametrize("method", DICTIONARY_METHODS)
def test_learn_dictionary_unit_columns(method):
    images, _ = load_digits_images(train=True)
    patches = extract_patches(images, 8, 300, 0)
    dictionary = learn_dictionary(patches, 24, method, 0)
    assert dictionary.shape == (64, 24)
    assert dictionary.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(dictionary, axis=0), 1, rtol=1e-12)
    np.testing.assert_array_equal(dictionary, learn_dictionary(patches, 24, method, 0))


def test_learn_dictionary_bad_parameters():
    patches = extract_patches(random_images((4, 8, 8)), 4, 30, 0)
    with pytest.raises(ValueError, match="method='ksvd'.*dictionary_learning"):
        learn_dictionary(patches, 8, "ksvd", 0)
    with pytest.raises(ValueError, match="n_atoms"):
        learn_dictionary(patches, 0, "random_patches", 0)
    with pytest.raises(ValueError, match="n_atoms=31"):
        learn_dictionary(patches, 31, "random_patches", 0)


def test_unknown_image_source():
    with pytest.raises(ValueError, match="name='imagenet'.*'cifar10'"):
        load_torchvision_images("imagenet")
    with pytest.raises(ValueError, match="source='imagenet'.*'digits'"):
        load_images("imagenet")


def test_digits_split():
    images, labels = load_digits_images()
    train_images, _ = load_digits_images(train=True)
    test_images, test_labels = load_digits_images(train=False)
    assert images.shape == (1797, 8, 8) and labels.dtype == np.int64
    assert images.min() == 0 and images.max() == 1
    assert len(train_images) + len(test_images) == 1797
    np.testing.assert_array_equal(test_images, images[len(train_images):])
    np.testing.assert_array_equal(test_labels, labels[len(train_images):])


def test_cifar10_offline_is_unavailable(no_network, empty_data_home):
    with pytest.raises(DataUnavailable) as raised:
        load_torchvision_images("cifar10")
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("CIFAR-10:")
    assert str(empty_data_home) in message
    assert "cifar-10-python.tar.gz" in message


@pytest.mark.skipif(
    not (MNIST_RAW / "t10k-images-idx3-ubyte.gz").exists()
    or not (MNIST_RAW / "t10k-labels-idx1-ubyte.gz").exists(),
    reason=f"MNIST's test files are not in {MNIST_RAW}",
)
def test_mnist_from_disk_offline(no_network, tmp_path):
    # torchvision wants all four files decompressed under MNIST/raw/; only the
    # test split is at hand, so it also stands in for the training split.
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for kind in ("images-idx3", "labels-idx1"):
        with gzip.open(MNIST_RAW / f"t10k-{kind}-ubyte.gz") as compressed:
            with open(raw / f"t10k-{kind}-ubyte", "wb") as decompressed:
                shutil.copyfileobj(compressed, decompressed)
        shutil.copyfile(raw / f"t10k-{kind}-ubyte", raw / f"train-{kind}-ubyte")

    for train in (False, True):
        images, labels = load_torchvision_images("mnist", root=tmp_path, train=train)
        assert images.shape == (10000, 28, 28)
        assert images.dtype == np.float32
        assert images.min() == 0 and images.max() == 1
        assert labels.dtype == np.int64
        counts = Counter(labels.tolist())
        assert [counts[digit] for digit in range(10)] == MNIST_TEST_LABEL_COUNTS


@pytest.fixture(scope="module")
def patches_dataset_class():
    benchmark = Benchmark(BENCHMARK_UNROLLING)
    (dataset_class,) = [d for d in benchmark.get_datasets() if d.name == "patches"]
    return benchmark, dataset_class


def patches_data(dataset_class, repetition=0, **parameters):
    dataset = dataset_class.get_instance(**parameters)
    # get_seed needs the context a benchopt run sets (as benchopt's own tests).
    RunContext().set_run_context(
        "dummy", dataset, "dummy", repetition=repetition, base_seed=0
    )
    return dataset.get_data()


@pytest.mark.parametrize("dictionary", DICTIONARY_METHODS)
def test_patches_dataset_digits(patches_dataset_class, dictionary):
    _, dataset_class = patches_dataset_class
    parameters = dict(
        source="digits", n_train=200, n_test=50, n_atoms=32, dictionary=dictionary
    )
    data = patches_data(dataset_class, **parameters)
    assert set(data) == {"D", "X_train", "X_test", "X_validation"}
    assert data["D"].shape == (64, 32)
    assert data["X_train"].shape == (200, 64)
    assert data["X_test"].shape == (50, 64)
    for array in data.values():
        assert array.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(data["D"], axis=0), 1, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(data["X_test"], axis=1), 1, rtol=1e-12)
    # Train and test images are disjoint; digits' windows are whole images.
    train_rows = {row.tobytes() for row in data["X_train"]}
    assert not any(row.tobytes() in train_rows for row in data["X_test"])

    again = patches_data(dataset_class, **parameters)
    for key in data:
        np.testing.assert_array_equal(data[key], again[key])
    other = patches_data(dataset_class, repetition=1, **parameters)
    assert not np.array_equal(data["X_train"], other["X_train"])


def test_patches_dataset_unavailable_is_skipped(
    patches_dataset_class, no_network, empty_data_home
):
    benchmark, dataset_class = patches_dataset_class
    data = patches_data(dataset_class, source="cifar10", n_train=20, n_test=5)
    assert set(data) == {"unavailable"}
    assert data["unavailable"].startswith("CIFAR-10:")
    objective = benchmark.get_benchmark_objective().get_instance()
    assert objective.skip(**data) == (True, data["unavailable"])
