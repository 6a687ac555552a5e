"""benchmark_sparse_training driven through benchopt's API: datasets (offline),
the objective's scores on hand-built networks, every solver on a short run,
seeding, bad parameters and the custom plots."""
import gzip
import math
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from benchopt.benchmark import Benchmark
from benchopt.utils.run_context import RunContext

from solvers_common.models import build_model

REPOSITORY = Path(__file__).resolve().parents[1]
BENCHMARK_DIR = REPOSITORY / "benchmark_sparse_training"
MNIST_RAW = REPOSITORY.parent / "shared" / "data" / "mnist" / "raw"
SOLVERS = ("sgd", "adam", "adamw", "prox_sgd", "linbreg", "adabreg", "magnitude_pruning")


@pytest.fixture(scope="module")
def benchmark():
    return Benchmark(BENCHMARK_DIR)


@pytest.fixture
def no_network(monkeypatch):
    """Every download fails at once, as on a machine without network."""

    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network disabled by the test")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def _component(classes, name):
    (found,) = [c for c in classes if c.name == name]
    return found


def load_data(benchmark, name, repetition=0, **parameters):
    dataset = _component(benchmark.get_datasets(), name).get_instance(**parameters)
    # get_seed needs the context a benchopt run sets (as benchopt's own tests).
    RunContext().set_run_context("dummy", dataset, "dummy", repetition=repetition, base_seed=0)
    return dataset, dataset.get_data()


def make_objective(benchmark, dataset, model="mlp"):
    objective = benchmark.get_benchmark_objective().get_instance(model=model)
    objective._set_dataset(dataset)
    return objective


def train(benchmark, solver_name, dataset_name="digits", repetition=0, dataset_parameters=None,
          base_seed=0, **parameters):
    """Run one solver to the end of its epochs, in the context of a benchopt
    run with ``--seed base_seed`` at repetition ``repetition``; returns
    (result, objective)."""
    dataset = _component(benchmark.get_datasets(), dataset_name).get_instance(
        **(dataset_parameters or {}))
    objective = benchmark.get_benchmark_objective().get_instance(model="mlp")
    solver = _component(benchmark.get_solvers(), solver_name).get_instance(**parameters)
    RunContext().set_run_context(objective, dataset, solver, repetition=repetition,
                                 base_seed=base_seed)
    objective._set_dataset(dataset)
    skip, reason = solver._set_objective(objective)
    assert not skip, reason
    solver.run(lambda: True)  # a callback that never stops: `epochs` ends the run
    return solver.get_result(), objective


# ---------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------


def test_digits_dataset(benchmark):
    _, data = load_data(benchmark, "digits")
    assert data["X_train"].shape == (1347, 1, 8, 8) and data["X_test"].shape == (450, 1, 8, 8)
    assert data["X_train"].dtype == np.float32 and data["y_train"].dtype == np.int64
    assert data["n_classes"] == 10
    # Standardized with the training images' statistics.
    assert abs(data["X_train"].mean()) < 1e-5 and abs(data["X_train"].std() - 1) < 1e-5
    _, subset = load_data(benchmark, "digits", n_train=100, n_test=50)
    assert subset["X_train"].shape == (100, 1, 8, 8) and subset["y_test"].shape == (50,)


def test_simulated_dataset_is_seeded(benchmark):
    _, first = load_data(benchmark, "simulated")
    _, again = load_data(benchmark, "simulated")
    _, other = load_data(benchmark, "simulated", repetition=1)
    assert first["X_train"].shape == (600, 1, 4, 4) and first["n_classes"] == 3
    np.testing.assert_array_equal(first["X_train"], again["X_train"])
    assert not np.array_equal(first["X_train"], other["X_train"])


@pytest.mark.skipif(
    not (MNIST_RAW / "t10k-images-idx3-ubyte.gz").exists()
    or not (MNIST_RAW / "t10k-labels-idx1-ubyte.gz").exists(),
    reason=f"MNIST's test files are not in {MNIST_RAW}",
)
def test_mnist_dataset_from_disk_offline(benchmark, no_network, tmp_path, monkeypatch):
    # torchvision wants all four files decompressed under MNIST/raw/; only the
    # test split is at hand, so it also stands in for the training split.
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for kind in ("images-idx3", "labels-idx1"):
        with gzip.open(MNIST_RAW / f"t10k-{kind}-ubyte.gz") as compressed:
            with open(raw / f"t10k-{kind}-ubyte", "wb") as decompressed:
                shutil.copyfileobj(compressed, decompressed)
        shutil.copyfile(raw / f"t10k-{kind}-ubyte", raw / f"train-{kind}-ubyte")
    monkeypatch.setenv("LEARNOPT_DATA", str(tmp_path))
    dataset, data = load_data(benchmark, "mnist", n_train=500, n_test=200)
    assert data["X_train"].shape == (500, 1, 28, 28) and data["X_test"].shape == (200, 1, 28, 28)
    assert data["n_classes"] == 10 and set(np.unique(data["y_train"])) == set(range(10))
    assert abs(data["X_train"].mean()) < 1e-5
    objective = make_objective(benchmark, dataset, model="convnet")
    assert objective.skip(**data) == (False, None)


def test_unavailable_dataset_is_skipped(benchmark, no_network, tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNOPT_DATA", str(tmp_path))
    dataset, data = load_data(benchmark, "cifar10", n_train=20, n_test=10)
    assert set(data) == {"unavailable"} and data["unavailable"].startswith("CIFAR-10:")
    objective = benchmark.get_benchmark_objective().get_instance()
    assert objective.skip(**data) == (True, data["unavailable"])


def test_objective_skips_a_convnet_on_digits(benchmark):
    dataset, data = load_data(benchmark, "digits")
    objective = benchmark.get_benchmark_objective().get_instance(model="convnet")
    skip, reason = objective.skip(**data)
    assert skip and "16 x 16" in reason


# ---------------------------------------------------------------------------
# The objective's scores
# ---------------------------------------------------------------------------


def test_objective_on_a_hand_built_network(benchmark):
    dataset, data = load_data(benchmark, "simulated")
    objective = make_objective(benchmark, dataset)
    model = build_model("mlp", (1, 4, 4), 3)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model[5].bias.copy_(torch.tensor([1.0, 0.0, 0.0]))  # always class 0
        model[5].weight[1, 3] = 2.0  # 1 of the 16*200 + 200*80 + 80*3 weights
    metrics = objective.evaluate_result(model=model)
    share_of_zeros = np.mean(data["y_train"] == 0)
    log_partition = math.log(math.e + 2)
    assert metrics["value"] == pytest.approx(log_partition - share_of_zeros)
    assert metrics["train_acc"] == pytest.approx(share_of_zeros)
    assert metrics["test_acc"] == pytest.approx(np.mean(data["y_test"] == 0))
    assert metrics["density"] == 1 / (16 * 200 + 200 * 80 + 80 * 3)
    assert metrics["neuron_density"] == 1 / (200 + 80 + 3)
    assert metrics["flops_ratio"] == metrics["density"]  # no convolution
    assert "kernel_density" not in metrics  # the mlp has no kernels


def test_objective_scores_a_diverged_network_as_nan(benchmark):
    dataset, _ = load_data(benchmark, "simulated")
    objective = make_objective(benchmark, dataset)
    model = build_model("mlp", (1, 4, 4), 3)
    with torch.no_grad():
        model[1].weight.fill_(float("nan"))
    metrics = objective.evaluate_result(model=model)
    assert math.isnan(metrics["value"])  # benchopt records the run as diverged


# ---------------------------------------------------------------------------
# Solvers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("solver_name", SOLVERS)
def test_short_training_beats_chance(benchmark, solver_name):
    # AdaBreg moves the dual variable by about lr = 1e-3 per step: its zero
    # weights need lmbd / lr = 100 steps (9 epochs of digits) to join.
    epochs = 20 if solver_name == "adabreg" else 8
    result, objective = train(benchmark, solver_name, epochs=epochs)
    metrics = objective.evaluate_result(**result)
    # Ten classes: chance is 10%.
    assert metrics["test_acc"] > 0.5, metrics
    # From a 1% initialization, LinBreg stays sparse (about 3% here); AdaBreg's
    # Adam-normalized steps let many weights join at once (about 28% here).
    if solver_name == "linbreg":
        assert metrics["density"] < 0.1, metrics
    if solver_name == "adabreg":
        assert metrics["density"] < 0.5, metrics
    if solver_name == "magnitude_pruning":
        # The schedule ends at 60% of the epochs: pruned to 10% by then.
        assert metrics["density"] == pytest.approx(0.1, abs=1e-4)


def test_same_seed_same_numbers_and_another_seed_other_numbers(benchmark):
    """Initialization and mini-batches follow benchopt's seed (``--seed``)
    and repetition (``-r``): the same pair gives the same network, changing
    either gives another one."""
    first, _ = train(benchmark, "linbreg", epochs=2)
    again, _ = train(benchmark, "linbreg", epochs=2)
    for a, b in zip(first["model"].state_dict().values(), again["model"].state_dict().values()):
        assert torch.equal(a, b)
    for seed in (dict(base_seed=1), dict(repetition=1)):
        other, _ = train(benchmark, "linbreg", epochs=2, **seed)
        assert not torch.equal(first["model"][1].weight, other["model"][1].weight), seed


def test_template_solver_runs(benchmark):
    (template,) = benchmark.check_solver_patterns(
        [str(BENCHMARK_DIR / "solvers" / "template_solver.py")], class_only=True)
    dataset = _component(benchmark.get_datasets(), "simulated").get_instance()
    objective = benchmark.get_benchmark_objective().get_instance()
    solver = template.get_instance(epochs=5)
    RunContext().set_run_context(objective, dataset, solver, repetition=0, base_seed=0)
    objective._set_dataset(dataset)
    solver._set_objective(objective)
    solver.run(lambda: True)
    assert objective.evaluate_result(**solver.get_result())["test_acc"] > 0.6  # 3 classes


@pytest.mark.parametrize("solver_name, parameters, message", [
    ("linbreg", dict(lmbd=-0.1), "lmbd=-0.1"),
    ("linbreg", dict(delta=0.0), "delta=0.0"),
    ("linbreg", dict(regularizer="l2"), "regularizer='l2'.*'l1_rows'"),
    ("linbreg", dict(init_density=0.0), "density=0.0"),
    ("adabreg", dict(lr=-1e-3), "lr=-0.001"),
    ("prox_sgd", dict(lmbd=-1.0), "lmbd=-1.0"),
    ("sgd", dict(batch_size=0), "batch_size=0"),
    ("sgd", dict(lr_schedule="step"), "lr_schedule='step'"),
    ("adam", dict(epochs=-1), "epochs=-1"),
    ("adamw", dict(weight_decay=-0.1), "weight_decay=-0.1"),
    ("adamw", dict(label_smoothing=1.0), "label_smoothing=1.0"),
    ("magnitude_pruning", dict(pruning_start=0.7, pruning_end=0.5), "pruning_start=0.7"),
    ("magnitude_pruning", dict(target_density=2.0), "density=2.0"),
])
def test_solvers_reject_bad_parameters(benchmark, solver_name, parameters, message):
    with pytest.raises(ValueError, match=message):
        train(benchmark, solver_name, **{"epochs": 1, **parameters})


# ---------------------------------------------------------------------------
# Custom plots
# ---------------------------------------------------------------------------


def test_custom_plots(benchmark):
    rows = []
    for solver, densities, accuracy in (("linbreg[lmbd=0.1,lr=0.1]", (0.01, 0.02, 0.05), 0.9),
                                        ("linbreg[lmbd=0.01,lr=0.1]", (0.01, 0.1, 0.2), 0.92),
                                        ("sgd[lr=0.1]", (1.0, 1.0, 1.0), 0.93)):
        for stop_val, value in enumerate(densities):
            rows.append(dict(dataset_name="digits", objective_name="Sparse training[model=mlp]",
                             solver_name=solver, idx_rep=0, stop_val=stop_val,
                             time=0.5 * stop_val, objective_density=value,
                             objective_test_acc=accuracy if stop_val == 2 else 0.1))
    data, _ = benchmark.get_plot_data(pd.DataFrame(rows),
                                      ["density_versus_time", "accuracy_versus_density"])
    (curves,) = data["density_versus_time"].values()
    by_label = {curve["label"]: curve for curve in curves["data"]}
    assert set(by_label) == {"linbreg[lmbd=0.1]", "linbreg[lmbd=0.01]", "sgd"}
    assert by_label["linbreg[lmbd=0.1]"]["x"] == [0.0, 0.5, 1.0]
    assert by_label["linbreg[lmbd=0.1]"]["y"] == [0.01, 0.02, 0.05]
    (points,) = data["accuracy_versus_density"].values()
    final = {point["label"]: (point["x"], point["y"]) for point in points["data"]}
    assert final == {"linbreg[lmbd=0.1]": ([0.05], [0.9]), "linbreg[lmbd=0.01]": ([0.2], [0.92]),
                     "sgd": ([1.0], [0.93])}


@pytest.mark.parametrize("config", sorted((BENCHMARK_DIR / "configs").glob("*.yml")),
                         ids=lambda path: path.name)
def test_configs_name_existing_components_and_parameters(benchmark, config):
    settings = yaml.safe_load(config.read_text())
    # Each check raises on an unknown name or parameter.
    assert len(benchmark.check_solver_patterns(settings["solver"])) == len(settings["solver"])
    assert benchmark.check_dataset_patterns(settings["dataset"])
    assert benchmark.check_objective_filters(settings["objective"])


def test_a_nan_training_loss_stops_the_run_as_diverged(benchmark):
    solver_class = _component(benchmark.get_solvers(), "sgd")
    objective = benchmark.get_benchmark_objective().get_instance()
    solver_class._inherit_stopping_criterion(objective)
    criterion = solver_class._stopping_criterion.get_runner_instance(
        solver=solver_class.get_instance(), max_runs=100)
    stop_val = criterion.init_stop_val()
    curve = [dict(objective_value=2.3)]
    stop, status, stop_val = criterion.should_stop(stop_val, curve)
    assert not stop and status == "running"
    curve.append(dict(objective_value=float("nan")))
    stop, status, _ = criterion.should_stop(stop_val, curve)
    assert stop and status == "diverged"
