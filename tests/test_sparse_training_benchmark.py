"""benchmark_sparse_training driven through benchopt's API: datasets (offline),
the objective's scores on hand-built networks, every solver on a short run,
seeding, bad parameters and the custom plots."""
import gzip
import itertools
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

from solvers_common.data import load_images
from solvers_common.data.classification import validation_split
from solvers_common.learning_rate import step_decay_factor
from solvers_common.models import build_model
from solvers_common.results import class_attribute
from solvers_common.seeding import numpy_generator
from solvers_common.stopping import DivergedRunWarning

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
    # 1,347 training images: 135 (10%, rounded) for validation, 1,212 to train on.
    assert data["X_train"].shape == (1212, 1, 8, 8) and data["X_test"].shape == (450, 1, 8, 8)
    assert data["X_validation"].shape == (135, 1, 8, 8) and data["y_validation"].shape == (135,)
    assert data["X_train"].dtype == np.float32 and data["y_train"].dtype == np.int64
    assert data["X_validation"].dtype == np.float32 and data["y_validation"].dtype == np.int64
    assert data["n_classes"] == 10
    # Standardized with the training images' statistics.
    assert abs(data["X_train"].mean()) < 1e-5 and abs(data["X_train"].std() - 1) < 1e-5
    _, subset = load_data(benchmark, "digits", n_train=100, n_test=50)
    assert subset["X_train"].shape == (90, 1, 8, 8) and subset["y_test"].shape == (50,)
    assert subset["X_validation"].shape == (10, 1, 8, 8)
    _, larger = load_data(benchmark, "digits", n_train=100, n_test=50, validation_fraction=0.3)
    assert larger["X_train"].shape == (70, 1, 8, 8) and larger["X_validation"].shape[0] == 30
    # The test images do not depend on the validation split.
    np.testing.assert_array_equal(np.sort(larger["y_test"]), np.sort(subset["y_test"]))


def test_simulated_dataset_is_seeded(benchmark):
    _, first = load_data(benchmark, "simulated")
    _, again = load_data(benchmark, "simulated")
    _, other = load_data(benchmark, "simulated", repetition=1)
    assert first["X_train"].shape == (540, 1, 4, 4) and first["n_classes"] == 3
    assert first["X_validation"].shape == (60, 1, 4, 4)
    for split in ("X_train", "X_validation", "X_test"):
        np.testing.assert_array_equal(first[split], again[split])
        assert not np.array_equal(first[split], other[split])


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
    assert data["X_train"].shape == (450, 1, 28, 28) and data["X_test"].shape == (200, 1, 28, 28)
    assert data["X_validation"].shape == (50, 1, 28, 28)
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


def _rows(images):
    return [row.tobytes() for row in images]


def test_validation_split_indices_partition_the_training_images():
    train, validation = validation_split(1347, 0.1, numpy_generator(0))
    assert len(validation) == 135 and len(train) == 1212
    assert not set(train) & set(validation)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, validation])), np.arange(1347))
    again, other = (validation_split(1347, 0.1, numpy_generator(seed))[1] for seed in (0, 1))
    np.testing.assert_array_equal(again, validation)
    assert not np.array_equal(other, validation)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, "0.1", True])
def test_bad_validation_fraction(benchmark, fraction):
    with pytest.raises(ValueError, match=f"validation_fraction={fraction!r}"):
        load_data(benchmark, "simulated", validation_fraction=fraction)
    with pytest.raises(ValueError, match=f"validation_fraction={fraction!r}"):
        load_data(benchmark, "digits", n_train=100, n_test=50, validation_fraction=fraction)


def test_a_validation_split_too_small_to_exist_is_refused(benchmark):
    with pytest.raises(ValueError, match="leaves 0 for validation"):
        load_data(benchmark, "digits", n_train=4, n_test=10)


def test_simulated_validation_images_are_disjoint_from_train_and_test(benchmark):
    # Continuous Gaussian images: equal rows would be the same draw.
    _, data = load_data(benchmark, "simulated")
    train, validation, test = (set(_rows(data[f"X_{split}"]))
                               for split in ("train", "validation", "test"))
    assert len(train) == 540 and len(validation) == 60 and len(test) == 300
    assert not train & validation and not validation & test and not train & test


def test_digits_validation_images_are_carved_out_of_the_training_split(benchmark):
    def gray_levels(data):
        """Each split's images as the integers k of digits' pixels k / 16:
        every split of ``data`` went through the same affine standardization."""
        levels = np.unique(data["X_train"])
        low, spacing = levels[0], np.diff(levels).min()
        return [set(_rows(np.round((data[f"X_{split}"] - low) / spacing).astype(np.int64)))
                for split in ("train", "validation", "test")]

    _, data = load_data(benchmark, "digits")
    raw_train, _ = load_images("digits", train=True)
    raw_test, _ = load_images("digits", train=False)
    # No image of digits appears twice, so images are told apart by content.
    train, validation, test = gray_levels(data)
    assert len(train) == 1212 and len(validation) == 135
    assert not train & validation and not validation & test and not train & test
    # Together the training and validation images are digits' training split,
    # and the test images its test split.
    assert train | validation == set(_rows(np.round(raw_train[:, None] * 16).astype(np.int64)))
    assert test == set(_rows(np.round(raw_test[:, None] * 16).astype(np.int64)))
    # Another repetition carves out other images.
    _, other = load_data(benchmark, "digits", repetition=1)
    other_train, other_validation, other_test = gray_levels(other)
    assert other_validation != validation and other_train | other_validation == train | validation
    assert other_test == test


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
    assert metrics["validation_acc"] == pytest.approx(np.mean(data["y_validation"] == 0))
    assert metrics["density"] == 1 / (16 * 200 + 200 * 80 + 80 * 3)
    assert metrics["neuron_density"] == 1 / (200 + 80 + 3)
    assert metrics["flops_ratio"] == metrics["density"]  # no convolution
    assert "kernel_density" not in metrics  # the mlp has no kernels


def test_validation_scores_are_direct_computations_on_the_validation_split(benchmark):
    result, objective = train(benchmark, "sgd", dataset_name="simulated", epochs=1,
                              batch_size=64)
    metrics = objective.evaluate_result(**result)
    dataset, data = load_data(benchmark, "simulated")
    network = result["model"].double().eval()
    with torch.no_grad():
        predicted = network(torch.as_tensor(data["X_validation"]).double()).argmax(dim=1)
        test_predicted = network(torch.as_tensor(data["X_test"]).double()).argmax(dim=1)
    expected = float((predicted.numpy() == data["y_validation"]).mean())
    assert metrics["validation_acc"] == pytest.approx(expected, abs=1e-12)
    assert metrics["test_acc"] == pytest.approx(
        float((test_predicted.numpy() == data["y_test"]).mean()), abs=1e-12)
    # One epoch leaves the 60 validation images short of perfect: the
    # comparison above is not the trivial one of a perfect classifier.
    assert 0.4 < metrics["validation_acc"] < 1 and "validation_mse" not in metrics


def test_denoising_validation_mse_is_the_mse_on_the_validation_split(benchmark):
    dataset, data = load_data(benchmark, "simulated")
    objective = benchmark.get_benchmark_objective().get_instance(
        model="mlp_deep", width=16, depth=2, skip_connections=True, task="denoising",
        noise_std=0.3)
    RunContext().set_run_context(objective, dataset, "dummy", repetition=0, base_seed=0)
    objective._set_dataset(dataset)
    # A network of zero weights outputs zero images: its MSE is the mean
    # squared clean validation image.
    network = build_model("mlp_deep", (1, 4, 4), 16, width=16, depth=2, skip_connections=True)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.zero_()
    metrics = objective.evaluate_result(model=network)
    clean = objective.y_validation.double()
    assert clean.shape == (60, 1, 4, 4)
    assert metrics["validation_mse"] == pytest.approx(float(clean.pow(2).mean()), rel=1e-12)
    assert metrics["test_mse"] == pytest.approx(float(objective.y_test.double().pow(2).mean()),
                                                rel=1e-12)
    assert metrics["validation_mse"] != metrics["test_mse"]
    # The validation inputs are noisy copies of the validation images, with
    # noise of their own.
    noise = objective.X_validation - objective.y_validation
    assert float(noise.std()) == pytest.approx(0.3, rel=0.15)
    assert "validation_acc" not in metrics


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


@pytest.mark.parametrize("solver_name", SOLVERS)
def test_step_schedule_follows_its_closed_form(benchmark, solver_name):
    """lr_schedule="step" over a whole run: after ``k`` optimizer steps every
    parameter group's rate is ``lr * step_decay_factor(k, T)``, ``T`` =
    epochs x batches per epoch of the training split (validation images
    excluded)."""
    dataset = _component(benchmark.get_datasets(), "simulated").get_instance()
    objective = benchmark.get_benchmark_objective().get_instance(model="mlp")
    solver = _component(benchmark.get_solvers(), solver_name).get_instance(
        epochs=4, batch_size=16, lr_schedule="step")
    RunContext().set_run_context(objective, dataset, solver, repetition=0, base_seed=0)
    objective._set_dataset(dataset)
    skip, reason = solver._set_objective(objective)
    assert not skip, reason
    rates = []

    def record():
        rates.append([group["lr"] for group in solver.optimizer.param_groups])
        return True

    solver.run(record)
    steps_per_epoch = math.ceil(540 / 16)  # 540 = 600 images less 60 for validation
    assert objective.X_train.shape[0] == 540
    total = 4 * steps_per_epoch
    expected = [solver.lr * step_decay_factor(epoch * steps_per_epoch, total)
                for epoch in range(5)]
    # The milestones fall on epochs 2 and 3 exactly: 1, 1, 0.1, 0.01, 0.01.
    assert [factor / solver.lr for factor in expected] == pytest.approx([1, 1, 0.1, 0.01, 0.01])
    assert len(rates) == 5
    for after_epoch, expected_rate in zip(rates, expected):
        assert after_epoch == pytest.approx([expected_rate] * len(after_epoch), rel=1e-12)


def _tuning_space(solver_name):
    """The solver's ``tuning_space`` read from its source as a literal."""
    return class_attribute(BENCHMARK_DIR / "solvers" / f"{solver_name}.py", "Solver",
                           "tuning_space")


def test_every_solver_of_the_quick_and_evidence_configs_has_a_tuning_space(benchmark):
    configured = set()
    for config in ["quick.yml", *(path.name for path in (BENCHMARK_DIR / "configs").glob(
            "evidence_*.yml"))]:
        for entry in yaml.safe_load((BENCHMARK_DIR / "configs" / config).read_text())["solver"]:
            configured.add(entry.split("[")[0])
    assert configured == set(SOLVERS)
    for name in sorted(configured):
        assert _tuning_space(name), name


@pytest.mark.parametrize("solver_name", SOLVERS)
def test_tuning_spaces_are_writable_and_hold_the_default_setting(benchmark, solver_name):
    space = _tuning_space(solver_name)
    solver_class = _component(benchmark.get_solvers(), solver_name)
    assert set(space) <= set(solver_class.parameters)
    combinations = list(itertools.product(*space.values()))
    assert len(combinations) >= 4
    for name, values in space.items():
        assert len(set(values)) == len(values) and values == sorted(values), name
        # The default (the paper's value) is one of the candidates.
        assert solver_class.parameters[name][0] in values, name
    for combination in combinations:
        written = ",".join(f"{name}={value}" for name, value in zip(space, combination))
        ((klass, parameters),) = benchmark.check_solver_patterns([f"{solver_name}[{written}]"])
        instance = klass.get_instance(**parameters)
        assert [getattr(instance, name) for name in space] == pytest.approx(list(combination))


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
    ("sgd", dict(lr_schedule="linear"), "lr_schedule='linear'.*'step'.*'plateau'"),
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


def test_a_nan_training_loss_stops_the_run_and_keeps_its_rows(benchmark):
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
    # Stopped at the NaN; reported done so that benchopt keeps the rows
    # (solvers_common.stopping), with a warning.
    with pytest.warns(DivergedRunWarning, match="diverged"):
        stop, status, _ = criterion.should_stop(stop_val, curve)
    assert stop and status == "done"
