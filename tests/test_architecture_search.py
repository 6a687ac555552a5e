"""Architecture search by group sparsity (Bungert, Roith, Tenbrinck & Burger,
JMLR 2022, the denoising autoencoder): the denoising task of
benchmark_sparse_training, the deep fully connected ``mlp_deep``, the
active-neuron count per layer, every solver on a tiny denoising run, and the
two architecture plots."""
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from benchopt.benchmark import Benchmark
from benchopt.utils.run_context import RunContext
from torch import nn

from solvers_common.denoising import (
    DenoisingTrainer,
    gaussian_blur,
    gaussian_kernel,
    mse_and_psnr,
    noisy_images,
)
from solvers_common.metrics import neurons_per_layer
from solvers_common.models import DeepMLP, build_model, sparse_initialization_
from solvers_common.optim import AdaBreg, regularized_parameter_groups

BENCHMARK_DIR = Path(__file__).resolve().parents[1] / "benchmark_sparse_training"
SOLVERS = ("sgd", "adam", "adamw", "prox_sgd", "linbreg", "adabreg", "magnitude_pruning")

DENOISING = dict(model="mlp_deep", task="denoising")


@pytest.fixture(scope="module")
def benchmark():
    return Benchmark(BENCHMARK_DIR)


def _component(classes, name):
    (found,) = [c for c in classes if c.name == name]
    return found


def objective_on(benchmark, dataset_name="simulated", dataset_parameters=None, repetition=0,
                 base_seed=0, **objective_parameters):
    """The objective with ``objective_parameters``, set on the dataset as in a
    benchopt run with ``--seed base_seed`` at repetition ``repetition``;
    returns (objective, dataset)."""
    dataset = _component(benchmark.get_datasets(), dataset_name).get_instance(
        **(dataset_parameters or {}))
    objective = benchmark.get_benchmark_objective().get_instance(**objective_parameters)
    RunContext().set_run_context(objective, dataset, "dummy", repetition=repetition,
                                 base_seed=base_seed)
    skip, reason = objective._set_dataset(dataset)
    assert not skip, reason
    return objective, dataset


def identity_network(size):
    network = nn.Sequential(nn.Flatten(), nn.Linear(size, size))
    with torch.no_grad():
        network[1].weight.copy_(torch.eye(size))
        network[1].bias.zero_()
    return network


# ---------------------------------------------------------------------------
# The denoising objective
# ---------------------------------------------------------------------------


def test_identity_map_scores_the_noise_variance(benchmark):
    # 2,000 images of 64 pixels: the mean of 128,000 squared N(0, 0.3^2)
    # draws is 0.09 within 0.4% (one standard deviation, sqrt(2 / n)).
    objective, _ = objective_on(
        benchmark, dataset_parameters=dict(n_train=2000, n_test=500, image_size=8),
        noise_std=0.3, **DENOISING)
    metrics = objective.evaluate_result(model=identity_network(64))
    assert metrics["value"] == pytest.approx(0.09, rel=0.02)
    assert metrics["test_mse"] == pytest.approx(0.09, rel=0.04)
    # Exactly the mean squared noise the objective drew, in float64.
    noise = (objective.X_train - objective.y_train).double()
    assert metrics["value"] == pytest.approx(float(noise.pow(2).mean()), rel=1e-9)
    assert metrics["test_psnr"] == pytest.approx(10 * math.log10(1 / metrics["test_mse"]))
    assert metrics["neurons_per_layer_1"] == 64
    # Classification scores do not apply.
    assert not {"train_acc", "test_acc", "test_loss"} & set(metrics)


def test_denoising_targets_are_the_images_in_unit_range(benchmark):
    objective, _ = objective_on(benchmark, dataset_name="digits", noise_std=0.0, **DENOISING)
    clean = objective.y_train
    # digits: 1,347 training images less 135 for validation.
    assert clean.shape == objective.X_train.shape == (1212, 1, 8, 8)
    assert float(clean.min()) == pytest.approx(0.0, abs=1e-6)
    assert float(clean.max()) == pytest.approx(1.0, abs=1e-6)
    # digits are multiples of 1/16 before standardization: recovered.
    assert torch.allclose(clean * 16, (clean * 16).round(), atol=1e-4)
    assert torch.equal(objective.X_train, clean)  # no noise, no blur
    assert objective.get_objective()["n_outputs"] == 64


def test_denoising_noise_follows_the_seed(benchmark):
    def noisy(**seed):
        objective, _ = objective_on(benchmark, noise_std=0.1, **DENOISING, **seed)
        return objective.X_train, objective.X_test

    first, again = noisy(), noisy()
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    for seed in (dict(base_seed=1), dict(repetition=1)):
        assert not torch.equal(first[0], noisy(**seed)[0]), seed


def test_gaussian_blur_by_hand():
    kernel = gaussian_kernel(9, 5.0)
    assert kernel.sum().item() == pytest.approx(1.0)
    assert kernel[4, 4] == kernel.max() and torch.allclose(kernel, kernel.T)
    # The blur of a centred impulse is the kernel; a blur then noise of 0.
    image = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    image[0, 0, 4, 4] = 1.0
    assert torch.allclose(gaussian_blur(image, 5.0, 9)[0, 0], kernel)
    blurred = noisy_images(image, 0.0, torch.Generator().manual_seed(0), blur_sigma=5.0)
    assert torch.allclose(blurred[0, 0], kernel)
    assert torch.equal(noisy_images(image, 0.0, torch.Generator(), blur_sigma=None), image)


def test_objective_with_blur_degrades_the_inputs(benchmark):
    objective, _ = objective_on(benchmark, noise_std=0.0, blur_sigma=1.0, blur_size=3,
                                **DENOISING)
    assert "blur_sigma=1.0" in str(objective)
    assert torch.allclose(objective.X_train, gaussian_blur(objective.y_train, 1.0, 3))


def test_mse_and_psnr_by_hand():
    model = identity_network(4)
    X = torch.zeros(2, 1, 2, 2)
    Y = torch.full((2, 1, 2, 2), 0.1)
    mse, psnr = mse_and_psnr(model, X, Y)
    assert mse == pytest.approx(0.01) and psnr == pytest.approx(20.0)


@pytest.mark.parametrize("parameters, message", [
    (dict(task="regression"), "task='regression'"),
    (dict(task="denoising", noise_std=-0.1), "noise_std=-0.1"),
    (dict(task="denoising", blur_sigma=-1.0), "blur_sigma=-1.0"),
    (dict(task="denoising", blur_sigma=1.0, blur_size=4), "blur_size=4"),
])
def test_objective_rejects_bad_parameters(benchmark, parameters, message):
    with pytest.raises(ValueError, match=message):
        objective_on(benchmark, model="mlp_deep", **parameters)


def test_bad_depth_is_named(benchmark):
    with pytest.raises(ValueError, match="depth=0"):
        build_model("mlp_deep", (1, 4, 4), 16, depth=0)
    with pytest.raises(ValueError, match="width=0"):
        build_model("mlp_deep", (1, 4, 4), 16, width=0)
    with pytest.raises(ValueError, match="skip_connections=1"):
        build_model("mlp_deep", (1, 4, 4), 16, skip_connections=1)
    # A size no model can take is refused by the objective, before any data.
    dataset = _component(benchmark.get_datasets(), "simulated").get_instance()
    objective = benchmark.get_benchmark_objective().get_instance(depth=0, **DENOISING)
    RunContext().set_run_context(objective, dataset, "dummy", repetition=0, base_seed=0)
    with pytest.raises(ValueError, match="depth=0"):
        objective._set_dataset(dataset)


# ---------------------------------------------------------------------------
# mlp_deep and the active-neuron count
# ---------------------------------------------------------------------------


def test_mlp_deep_parameter_counts():
    # Width, input and output all 16: 4 layers of 16 * 16 + 16, and layer k
    # has k skip scalars, 1 + 2 + 3 + 4.
    model = build_model("mlp_deep", (1, 4, 4), 16, width=16, depth=3, skip_connections=True)
    assert sum(p.numel() for p in model.parameters()) == 4 * (16 * 16 + 16) + 10
    assert [len(skips.sources) for skips in model.skips] == [1, 2, 3, 4]
    # Width 8 on 16 pixels: skips only between representations of one size
    # (layer 2 from x_1; layer 3 from x_1, x_2; the output layer from x_0).
    model = build_model("mlp_deep", (1, 4, 4), 16, width=8, depth=3, skip_connections=True)
    assert [skips.sources for skips in model.skips] == [(), (1,), (1, 2), (0,)]
    assert sum(p.numel() for p in model.parameters()) == (16 * 8 + 8) + 2 * (8 * 8 + 8) + (
        8 * 16 + 16) + 4
    # Without skips, the default width is the input's size; a classifier too.
    model = build_model("mlp_deep", (1, 8, 8), 10)
    assert sum(p.numel() for p in model.parameters()) == 5 * (64 * 64 + 64) + 64 * 10 + 10
    assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_skip_connections_by_hand():
    model = DeepMLP(4, 4, width=4, depth=2, skip_connections=True)
    sparse_initialization_(model, 1.0, torch.Generator().manual_seed(0))
    assert all(not skips.scales.detach().any() for skips in model.skips)  # start at 0
    with torch.no_grad():
        for linear in model.linears:
            linear.weight.zero_()
            linear.bias.zero_()
        model.skips[2].scales.copy_(torch.tensor([2.0, 0.0, 0.0]))  # output = 2 x_0
        model.linears[0].bias.fill_(1.0)  # x_1 = 1, not used by the output
    x = torch.arange(4.0).reshape(1, 1, 2, 2)
    assert torch.equal(model(x), 2 * x.reshape(1, 4))


def test_neurons_per_layer_of_a_hand_built_sparse_network(benchmark):
    model = DeepMLP(16, 16, width=6, depth=2)
    sparse_initialization_(model, 1.0, torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.linears[0].weight[[0, 2, 5]] = 0.0  # 3 of 6 rows left
        model.linears[1].weight[:, 1:] = 0.0  # columns, not rows: all 6 rows active
        model.linears[1].weight[4, 0] = 0.0  # row 4 is now zero
        model.linears[2].weight[:15] = 0.0  # 1 of 16 output pixels
    assert neurons_per_layer(model) == [3, 5, 1]
    objective, _ = objective_on(benchmark, width=6, depth=2, **DENOISING)
    metrics = objective.evaluate_result(model=model)
    assert [metrics[f"neurons_per_layer_{layer}"] for layer in (1, 2, 3)] == [3, 5, 1]
    assert metrics["neuron_density"] == pytest.approx(9 / 28)
    # Also on the classification task, with the metrics it always had.
    classification, _ = objective_on(benchmark, model="mlp")
    metrics = classification.evaluate_result(model=build_model("mlp", (1, 4, 4), 3))
    assert [metrics[f"neurons_per_layer_{layer}"] for layer in (1, 2, 3)] == [200, 80, 3]
    assert {"value", "train_acc", "test_loss", "test_acc", "density"} <= set(metrics)


# ---------------------------------------------------------------------------
# Solvers on the denoising task
# ---------------------------------------------------------------------------

SOLVER_SETTINGS = {
    "linbreg": dict(regularizer="l1_rows", lmbd=0.02, init_density=0.25),
    "adabreg": dict(regularizer="l1_rows", lmbd=0.02, init_density=0.25, lr=1e-2),
    "prox_sgd": dict(regularizer="l1_rows", lmbd=1e-3),
    "adamw": dict(label_smoothing=0.0),
}


def train_denoiser(benchmark, solver_name, epochs, **parameters):
    """(score before training, score after, solver) of one solver on the
    simulated images."""
    objective, dataset = objective_on(benchmark, noise_std=0.2, width=16, depth=2,
                                      **DENOISING)
    solver = _component(benchmark.get_solvers(), solver_name).get_instance(
        epochs=epochs, batch_size=16, **parameters)
    RunContext().set_run_context(objective, dataset, solver, repetition=0, base_seed=0)
    skip, reason = solver._set_objective(objective)
    assert not skip, reason
    before = objective.evaluate_result(**solver.get_result())
    solver.run(lambda: True)
    return before, objective.evaluate_result(**solver.get_result()), solver


@pytest.mark.parametrize("solver_name", SOLVERS)
def test_tiny_denoising_run_lowers_the_mse(benchmark, solver_name):
    before, after, _ = train_denoiser(benchmark, solver_name, epochs=5,
                                      **SOLVER_SETTINGS.get(solver_name, {}))
    assert after["value"] < 0.8 * before["value"], (before["value"], after["value"])
    assert after["test_mse"] < before["test_mse"]


def test_adamw_with_label_smoothing_skips_denoising(benchmark):
    objective, dataset = objective_on(benchmark, **DENOISING)
    solver = _component(benchmark.get_solvers(), "adamw").get_instance()
    RunContext().set_run_context(objective, dataset, solver, repetition=0, base_seed=0)
    skip, reason = solver._set_objective(objective)
    assert skip and "label_smoothing" in reason


@pytest.mark.parametrize("solver_name", ["linbreg", "adabreg"])
def test_bregman_solvers_start_from_init_density_of_whole_rows(benchmark, solver_name):
    """With ``l1_rows``, the initialization switches whole rows on with
    probability ``init_density``, and the first steps keep them exactly (the
    dual variable starts at ``theta_0 / delta + p_0``): with lr = 1e-12 (a
    rate must be > 0) the network does not move beyond 1e-6."""
    objective, dataset = objective_on(benchmark, dataset_parameters=dict(image_size=8),
                                      width=400, depth=2, **DENOISING)
    solver = _component(benchmark.get_solvers(), solver_name).get_instance(
        regularizer="l1_rows", lmbd=0.1, init_density=0.25, lr=1e-12, epochs=1)
    RunContext().set_run_context(objective, dataset, solver, repetition=0, base_seed=0)
    solver._set_objective(objective)
    initial = [linear.weight.detach().clone() for linear in solver.network.linears]
    widths = neurons_per_layer(solver.network)
    # 400 rows each (64 for the output layer) on with probability 1/4.
    assert all(70 <= width <= 130 for width in widths[:2]) and 6 <= widths[2] <= 28, widths
    for weight in initial:  # active rows are dense, the others zero
        active = weight.abs().amax(dim=1) > 0
        assert bool((weight[active] != 0).all()) and int(active.sum()) < weight.shape[0]
    solver.run(lambda: True)
    for weight, linear in zip(initial, solver.network.linears):
        assert torch.allclose(linear.weight, weight, atol=1e-6)


def test_adabreg_with_rows_grows_from_few_neurons():
    """Inverse scale space on a denoising problem: AdaBreg with the row
    group norm starts from a few active neurons per layer and adds them as
    the loss needs them, without reaching the full width."""
    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(256, 1, 4, 4, generator=generator)
    noisy = noisy_images(clean, 0.1, generator)
    model = DeepMLP(16, 16, width=32, depth=3)
    sparse_initialization_(model, 0.1, generator, "rows")
    widths = [neurons_per_layer(model)]
    optimizer = AdaBreg(regularized_parameter_groups(model, "l1_rows", 0.05), lr=1e-2)
    trainer = DenoisingTrainer(model, optimizer, noisy, clean, 32, generator)
    losses = [trainer.train_epoch() for _ in range(30)]
    widths.append(neurons_per_layer(model))
    assert losses[-1] < 0.5 * losses[0]
    assert sum(widths[0]) < sum(widths[1]) < 3 * 32 + 16, widths


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------


def test_architecture_plots(benchmark):
    rows = []
    objective = "Sparse training[model=mlp_deep,task=denoising,noise_std=0.1]"
    for solver, profiles in (("adabreg[lmbd=0.07]", ((2, 1, 3), (40, 10, 60))),
                             ("adam[lr=0.001]", ((64, 64, 64), (64, 64, 64)))):
        for stop_val, widths in enumerate(profiles):
            rows.append(dict(dataset_name="digits", objective_name=objective,
                             solver_name=solver, idx_rep=0, stop_val=stop_val,
                             time=2.0 * stop_val, objective_density=sum(widths) / 192,
                             objective_test_mse=0.02,
                             **{f"objective_neurons_per_layer_{layer}": width
                                for layer, width in enumerate(widths, start=1)}))
    data, _ = benchmark.get_plot_data(pd.DataFrame(rows), [
        "architecture_found", "architecture_final_widths", "accuracy_versus_density"])
    panels = {key: panel for key, panel in data["architecture_found"].items()}
    assert len(panels) == 2  # one per solver
    (adabreg,) = [panel for key, panel in panels.items() if "adabreg" in key]
    assert adabreg["title"].startswith("Active neurons per layer along training: adabreg\n")
    curves = {curve["label"]: (curve["x"], curve["y"]) for curve in adabreg["data"]}
    assert curves == {"layer 1": ([0.0, 2.0], [2, 40]), "layer 2": ([0.0, 2.0], [1, 10]),
                      "layer 3": ([0.0, 2.0], [3, 60])}
    (profile,) = data["architecture_final_widths"].values()
    final = {curve["label"]: (curve["x"], curve["y"]) for curve in profile["data"]}
    assert final == {"adabreg": ([1, 2, 3], [40, 10, 60]), "adam": ([1, 2, 3], [64, 64, 64])}
    (points,) = data["accuracy_versus_density"].values()
    assert points["ylabel"] == "test mean squared error"
