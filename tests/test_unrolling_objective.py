"""The scores of benchmark_unrolling: metrics on hand-built iterates, and the
Objective driven through benchopt's API."""
from pathlib import Path

import numpy as np
import pytest
import torch
from benchopt.benchmark import Benchmark
from benchopt.utils.run_context import RunContext

from solvers_common.lasso import lasso_objective, lmbd_max, solve_lasso
from solvers_common.unrolled import ISTA
from solvers_common.unrolled.metrics import (
    iterate_perturbation,
    layer_metrics,
    perturb_signals,
)

BENCHMARK = Path(__file__).parents[1] / "benchmark_unrolling"


def test_layer_metrics_on_hand_built_iterates():
    # D = I, lmbd = 1, x = (3, 0): z* = (2, 0), F* = 1/2 + 2 = 2.5.
    D = torch.eye(2, dtype=torch.float64)
    X = torch.tensor([[3.0, 0.0]], dtype=torch.float64)
    z_star = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
    objective_star = lasso_objective(z_star, X, D, 1.0)
    assert objective_star.item() == 2.5
    # F: 4.5, 3.0, 3.625, 2.5 -> one increase (layer 2).
    # distances: 2, 1, 1.5, 0 -> decreases at layers 1 and 3.
    iterates = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.5, 0.0], [2.0, 0.0]],
                            dtype=torch.float64)[:, None, :]
    scores = layer_metrics(iterates, X, D, 1.0, z_star, objective_star)
    np.testing.assert_allclose(scores["gap"], [2.0, 0.5, 1.125, 0.0])
    np.testing.assert_allclose(scores["nmse"], [1.0, 0.25, 0.5625, 0.0])
    np.testing.assert_array_equal(scores["descent_violation"], [0, 1, 0])
    np.testing.assert_array_equal(scores["distance_descent"], [1, 0, 1])
    np.testing.assert_array_equal(scores["support_size"], [0, 1, 1, 1])


def test_descent_tolerance_and_averaging_over_signals():
    D = torch.eye(1, dtype=torch.float64)
    X = torch.tensor([[1.0], [1.0]], dtype=torch.float64)
    z_star = torch.zeros(2, 1, dtype=torch.float64)
    # lmbd = 1. Signal 0 changes F by less than 1e-12 (not a violation),
    # signal 1 goes from F = 0.5 to 0.625 (a violation): rate 1/2.
    iterates = torch.tensor([[[0.0], [0.0]], [[1e-14], [0.5]]], dtype=torch.float64)
    F0 = lasso_objective(iterates[0], X, D, 1.0)
    scores = layer_metrics(iterates, X, D, 1.0, z_star, F0)
    assert scores["descent_violation"].item() == 0.5
    # nmse with z* = 0 is guarded (no division by zero).
    assert torch.isfinite(scores["nmse"]).all()


def test_perturbations_have_the_requested_relative_size():
    X = torch.tensor([[3.0, 4.0], [0.0, 0.0]], dtype=torch.float64)
    noise = torch.tensor([[1.0, -1.0], [1.0, 1.0]], dtype=torch.float64)
    perturbed = perturb_signals(X, 0.1, noise)
    # sigma ||x|| / sqrt(n) xi = 0.1 * 5 / sqrt(2) * (1, -1); zero stays zero.
    np.testing.assert_allclose(perturbed[0], X[0] + 0.5 / 2**0.5 * noise[0])
    np.testing.assert_array_equal(perturbed[1], X[1])
    hook = iterate_perturbation(2, 0.1, noise)
    assert hook(1, X) is X
    np.testing.assert_allclose(hook(2, X), perturbed)


@pytest.fixture(scope="module")
def benchmark():
    return Benchmark(BENCHMARK)


def make_objective(benchmark, data=None, **parameters):
    dataset_class = next(d for d in benchmark.get_datasets() if d.name == "simulated")
    dataset = dataset_class.get_instance(
        n_features=8, n_atoms=16, n_train=60, n_test=30)
    objective = benchmark.get_benchmark_objective().get_instance(**parameters)
    RunContext().set_run_context(objective, dataset, "dummy", repetition=0, base_seed=0)
    if data is None:
        data = dataset.get_data()
    objective.set_data(**data)
    return objective, data


def test_objective_references_and_what_solvers_see(benchmark):
    objective, data = make_objective(benchmark, n_layers=4, lmbd_ratio=0.2)
    X_train = torch.as_tensor(data["X_train"])
    D = torch.as_tensor(data["D"])
    lmbd = 0.2 * lmbd_max(X_train, D).item()
    handed = objective.get_objective()
    assert set(handed) == {"X", "D", "lmbd", "n_layers", "z_star"}
    np.testing.assert_array_equal(handed["X"], X_train)  # training signals only
    assert handed["lmbd"] == pytest.approx(lmbd, rel=1e-14)
    z_star, gap = solve_lasso(X_train, D, lmbd)
    assert gap.max() <= 1e-10
    np.testing.assert_allclose(
        lasso_objective(handed["z_star"], X_train, D, lmbd),
        lasso_objective(z_star, X_train, D, lmbd), rtol=1e-9)


def test_evaluate_result_of_ista(benchmark):
    objective, data = make_objective(benchmark, n_layers=4)
    X_test, D = torch.as_tensor(data["X_test"]), torch.as_tensor(data["D"])
    lmbd = objective.lmbd
    network = ISTA(D, lmbd, 4)
    metrics = objective.evaluate_result(network=network)
    z_star, _ = solve_lasso(X_test, D, lmbd)
    F_star = lasso_objective(z_star, X_test, D, lmbd)
    with torch.no_grad():
        iterates = network(X_test)
    gaps = (lasso_objective(iterates, X_test, D, lmbd) - F_star).mean(-1)
    for layer in range(5):
        assert metrics[f"gap_layer_{layer}"] == pytest.approx(gaps[layer].item(), rel=1e-8)
    assert metrics["value"] == metrics["gap_layer_4"]
    assert metrics["gap_layer_0"] == pytest.approx(
        (0.5 * (X_test**2).sum(-1) - F_star).mean().item(), rel=1e-8)
    # ISTA decreases F at every layer (Beck & Teboulle 2009, Lemma 2.3).
    assert metrics["descent_violation_rate"] == 0
    assert set(f"gap_input_noise_{s}" for s in (0.05, 0.1, 0.2)) <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())


def test_robustness_gaps_use_the_perturbed_references(benchmark):
    # A network that solves each Lasso (ISTA run long) has ~zero gap on noisy
    # inputs only if the objective compares with z* of the noisy signal.
    objective, data = make_objective(benchmark, n_layers=3000, lmbd_ratio=0.3)
    network = ISTA(torch.as_tensor(data["D"]), objective.lmbd, 3000)
    metrics = objective.evaluate_result(network=network)
    for sigma in (0.05, 0.1, 0.2):
        assert abs(metrics[f"gap_input_noise_{sigma}"]) < 1e-6
        # Iterate noise at layer L/2 is forgotten by the remaining 1500 layers.
        assert abs(metrics[f"gap_iterate_noise_{sigma}"]) < 1e-6
    assert metrics["support_size"] == pytest.approx(metrics["support_size_star"], abs=0.1)


def test_evaluate_result_rejects_wrong_depth_and_keeps_nan(benchmark):
    objective, data = make_objective(benchmark, n_layers=4)
    D = torch.as_tensor(data["D"])
    with pytest.raises(ValueError, match="n_layers"):
        objective.evaluate_result(network=ISTA(D, objective.lmbd, 3))
    network = ISTA(D, objective.lmbd, 4)
    network.W_z.fill_(float("nan"))
    metrics = objective.evaluate_result(network=network)
    assert np.isnan(metrics["value"])


@pytest.mark.parametrize("parameters, match", [
    (dict(lmbd_ratio=0.0), "lmbd_ratio"),
    (dict(lmbd_ratio=1.5), "lmbd_ratio"),
    (dict(n_layers=0), "n_layers"),
])
def test_objective_bad_parameters(benchmark, parameters, match):
    with pytest.raises(ValueError, match=match):
        make_objective(benchmark, **parameters)


def test_objective_mismatched_dictionary(benchmark):
    objective, data = make_objective(benchmark)
    bad = dict(data, D=np.ones((data["D"].shape[0] + 1, data["D"].shape[1])))
    with pytest.raises(ValueError, match="D has"):
        objective.set_data(**bad)
