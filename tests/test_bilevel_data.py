"""benchmark_bilevel's data: the ijcnn1 loader exercised offline by filling
libsvmdata's cache from ../shared/data/libsvm/ (skipped when absent), and the
offline skip message when the files are missing."""
import bz2
from pathlib import Path

import numpy as np
import pytest
from benchopt.benchmark import Benchmark
from benchopt.utils.run_context import RunContext
from sklearn.datasets import load_svmlight_file

from solvers_common.data import DataUnavailable
from solvers_common.data.libsvm import load_libsvm

SHARED_LIBSVM = Path(__file__).parents[2] / "shared" / "data" / "libsvm"
BENCHMARK = Path(__file__).parents[1] / "benchmark_bilevel"


def ijcnn1_data(monkeypatch, tmp_path):
    dataset_class = next(d for d in Benchmark(BENCHMARK).get_datasets()
                         if d.name == "ijcnn1")
    dataset = dataset_class.get_instance()
    RunContext().set_run_context("objective", dataset, "solver", repetition=0, base_seed=0)
    monkeypatch.setenv("LIBSVMDATA_HOME", str(tmp_path))
    return dataset


def test_ijcnn1_loader_from_the_shared_files(monkeypatch, tmp_path):
    sources = {"ijcnn1": SHARED_LIBSVM / "ijcnn1.trn.bz2",
               "ijcnn1_test": SHARED_LIBSVM / "ijcnn1.tst.bz2"}
    if not all(path.exists() for path in sources.values()):
        pytest.skip(f"ijcnn1 files not in {SHARED_LIBSVM}")
    cache = tmp_path / "libsvm"
    cache.mkdir()
    for name, path in sources.items():
        X, y = load_svmlight_file(bz2.open(path), n_features=22)
        np.save(cache / f"{name}_X.npy", X.toarray())
        np.save(cache / f"{name}_y.npy", y)
    dataset = ijcnn1_data(monkeypatch, tmp_path)
    problem = dataset.get_data()["problem"]
    assert (problem.n_inner_samples, problem.n_outer_samples) == (49_990, 91_701)
    assert tuple(problem.X_inner.shape) == (49_990, 22)
    assert set(problem.y_inner.unique().tolist()) == {-1.0, 1.0}
    # Shuffled once, but the same samples as the files.
    X, y = load_libsvm("ijcnn1")
    np.testing.assert_allclose(np.sort(problem.X_inner.numpy(), axis=0), np.sort(X, axis=0))
    assert problem.y_inner.sum() == y.sum()


def test_ijcnn1_without_files_is_skipped_with_a_message(monkeypatch, tmp_path):
    # No network: make the download fail at once.
    def no_download(*args, **kwargs):
        raise OSError("network unreachable")
    monkeypatch.setattr("libsvmdata.abstraction.download", no_download)
    dataset = ijcnn1_data(monkeypatch, tmp_path)
    data = dataset.get_data()
    assert set(data) == {"unavailable"}
    message = data["unavailable"]
    assert "ijcnn1" in message and str(tmp_path / "libsvm") in message
    assert "ijcnn1_X.npy" in message and "LIBSVMDATA_HOME" in message
    assert "\n" not in message
    objective = Benchmark(BENCHMARK).get_benchmark_objective().get_instance()
    assert objective.skip(**data) == (True, message)
    with pytest.raises(DataUnavailable):
        load_libsvm("ijcnn1_test")
