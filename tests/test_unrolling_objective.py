"""The scores of benchmark_unrolling: metrics on hand-built iterates, and the
Objective driven through benchopt's API."""
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from benchopt.benchmark import Benchmark
from benchopt.utils.run_context import RunContext

from solvers_common.lasso import lasso_objective, lmbd_max, solve_lasso
from solvers_common.unrolled import FISTA, ISTA, LISTA, LISTATied
from solvers_common.unrolled.metrics import (
    every_layer_perturbation,
    extra_layer_metrics,
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
        n_features=8, n_atoms=16, n_train=60, n_test=30, n_validation=20)
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


def dataset_data(benchmark, name, **parameters):
    dataset_class = next(d for d in benchmark.get_datasets() if d.name == name)
    dataset = dataset_class.get_instance(**parameters)
    RunContext().set_run_context("dummy", dataset, "dummy", repetition=0, base_seed=0)
    return dataset.get_data()


def rows(X):
    return {np.asarray(row).tobytes() for row in X}


def test_simulated_validation_split_is_disjoint_and_keeps_train_and_test(benchmark):
    sizes = dict(n_features=8, n_atoms=64, density=0.2, n_train=60, n_test=30)
    data = dataset_data(benchmark, "simulated", n_validation=25, **sizes)
    assert data["X_validation"].shape == (25, 8)
    train, test, validation = (rows(data[k]) for k in ("X_train", "X_test", "X_validation"))
    assert len(validation) == 25  # (no zero signal at this density: all distinct)
    assert not validation & train and not validation & test and not train & test
    # Drawn after the other splits: the training and test signals are those
    # of a dataset with another validation size.
    other = dataset_data(benchmark, "simulated", n_validation=3, **sizes)
    for key in ("D", "X_train", "X_test"):
        np.testing.assert_array_equal(data[key], other[key])
    assert not rows(other["X_validation"]) & train


def test_patches_validation_split_comes_from_held_out_images(benchmark):
    data = dataset_data(benchmark, "patches", source="digits", n_atoms=16,
                        dictionary="random_patches", n_train=100, n_test=20, n_validation=30)
    assert data["X_validation"].shape == (30, 64)
    train, test, validation = (rows(data[k]) for k in ("X_train", "X_test", "X_validation"))
    # digits' 8 x 8 windows are whole images: disjoint rows, disjoint images.
    assert len(validation) == 30
    assert not validation & train and not validation & test


def test_validation_gap_is_the_final_gap_on_the_validation_signals(benchmark):
    objective, data = make_objective(benchmark, n_layers=4)
    X_validation, D = torch.as_tensor(data["X_validation"]), torch.as_tensor(data["D"])
    lmbd = objective.lmbd
    network = ISTA(D, lmbd, 4)
    metrics = objective.evaluate_result(network=network)
    z_star, _ = solve_lasso(X_validation, D, lmbd)
    with torch.no_grad():
        z_last = network(X_validation)[-1]
    gap = (lasso_objective(z_last, X_validation, D, lmbd)
           - lasso_objective(z_star, X_validation, D, lmbd)).mean()
    assert metrics["validation_gap"] == pytest.approx(gap.item(), rel=1e-8)
    assert metrics["validation_gap"] != pytest.approx(metrics["value"], rel=1e-3)
    assert objective.validation_metric == {"name": "validation_gap", "better": "lower"}


def test_a_dataset_without_validation_split_is_refused(benchmark):
    objective, data = make_objective(benchmark)
    without = {key: value for key, value in data.items() if key != "X_validation"}
    with pytest.raises(ValueError, match="X_validation"):
        objective.set_data(**without)


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


def test_every_layer_perturbation_on_hand_built_iterates():
    # L = 3: z_1 and z_2 get sigma * scale * noise[l - 1], z_3 nothing.
    noise = torch.tensor([[[1.0, -1.0]], [[2.0, 0.0]]], dtype=torch.float64)
    scale = torch.tensor([[0.5]], dtype=torch.float64)
    hook = every_layer_perturbation(0.1, noise, scale)
    z = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    np.testing.assert_allclose(hook(1, z), [[3.05, 3.95]])
    np.testing.assert_allclose(hook(2, z), [[3.1, 4.0]])
    assert hook(3, z) is z


def test_iterate_noise_at_every_layer(benchmark):
    """``iterate_noise_layers=every``: the objective's gap equals ISTA run by
    hand with sigma ||z*|| / sqrt(m) xi_l added to z_1 .. z_{L-1}."""
    L, sigma = 4, 0.3
    objective, data = make_objective(benchmark, n_layers=L, noise_levels=f"{sigma}",
                                     iterate_noise_layers="every")
    D, X = torch.as_tensor(data["D"]), torch.as_tensor(data["X_test"])
    network = ISTA(D, objective.lmbd, L)
    metrics = objective.evaluate_result(network=network)
    z_star, _ = solve_lasso(X, D, objective.lmbd)
    scale = torch.linalg.vector_norm(z_star, dim=-1, keepdim=True) / D.shape[1] ** 0.5
    noise = objective.layer_noise
    assert noise.shape == (L - 1, *z_star.shape)
    z = torch.zeros_like(z_star)
    for layer in range(1, L + 1):
        z = network.preactivation(layer - 1, z, None, network.prepare(X))
        z = torch.sign(z) * torch.clamp(z.abs() - network.threshold, min=0)
        if layer < L:
            z = z + sigma * scale * noise[layer - 1]
    gap = (lasso_objective(z, X, D, objective.lmbd)
           - lasso_objective(z_star, X, D, objective.lmbd)).mean().item()
    assert metrics[f"gap_iterate_noise_{sigma}"] == pytest.approx(gap, rel=1e-7)
    assert metrics[f"gap_iterate_noise_{sigma}"] > 1.5 * metrics["value"]
    # The other metrics do not depend on where the iterates are perturbed.
    middle, _ = make_objective(benchmark, n_layers=L, noise_levels=f"{sigma}")
    other = middle.evaluate_result(network=network)
    assert other["value"] == metrics["value"]
    assert other[f"gap_input_noise_{sigma}"] == metrics[f"gap_input_noise_{sigma}"]
    assert other[f"gap_iterate_noise_{sigma}"] != metrics[f"gap_iterate_noise_{sigma}"]


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
    (dict(iterate_noise_layers="all"), "iterate_noise_layers"),
])
def test_objective_bad_parameters(benchmark, parameters, match):
    with pytest.raises(ValueError, match=match):
        make_objective(benchmark, **parameters)


def test_objective_mismatched_dictionary(benchmark):
    objective, data = make_objective(benchmark)
    bad = dict(data, D=np.ones((data["D"].shape[0] + 1, data["D"].shape[1])))
    with pytest.raises(ValueError, match="D has"):
        objective.set_data(**bad)


# ---------------------------------------------------------------------------
# Past the trained depth
# ---------------------------------------------------------------------------

def test_extra_layer_metrics_on_hand_built_iterates():
    # D = I, lmbd = 1, x = (3, 0): F* = 2.5. Trained depth L = 1 (z_0, z_1),
    # then 3 extra layers. F: 4.5, 3.0 | 3.625, 2.5, 2.5 + 1e-13 (+ 1e-26).
    D = torch.eye(2, dtype=torch.float64)
    X = torch.tensor([[3.0, 0.0]], dtype=torch.float64)
    iterates = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.5, 0.0], [2.0, 0.0],
                             [2.0, 1e-13]], dtype=torch.float64)[:, None, :]
    scores = extra_layer_metrics(iterates, X, D, 1.0, torch.tensor([2.5], dtype=D.dtype),
                                 n_layers=1, extra_layers=(0, 1, 2, 3))
    assert scores[0] == (pytest.approx(0.5), None)
    assert scores[1] == (pytest.approx(1.125), 0.0)  # F went up at layer 2
    assert scores[2] == (pytest.approx(0.0), 0.5)    # down at layer 3
    # up by 1e-13 < 1e-12 at layer 4: not an increase
    assert scores[3][0] == pytest.approx(1e-13, abs=1e-15)
    assert scores[3][1] == pytest.approx(2 / 3)


def test_gap_past_the_trained_depth_is_the_gap_of_longer_ista(benchmark):
    objective, data = make_objective(benchmark, n_layers=4, extra_layers="0,3,10")
    D = torch.as_tensor(data["D"])
    for network_class in (ISTA, FISTA):
        metrics = objective.evaluate_result(network=network_class(D, objective.lmbd, 4))
        assert metrics["gap_extra_layers_0"] == metrics["value"]
        for k in (3, 10):
            longer, _ = make_objective(benchmark, n_layers=4 + k, extra_layers="0")
            expected = longer.evaluate_result(network=network_class(D, objective.lmbd, 4 + k))
            assert metrics[f"gap_extra_layers_{k}"] == pytest.approx(expected["value"],
                                                                    rel=1e-12)
        # The layer metrics are those of the network at its depth.
        alone, _ = make_objective(benchmark, n_layers=4, extra_layers="")
        reference = alone.evaluate_result(network=network_class(D, objective.lmbd, 4))
        assert not any("extra_layers" in key for key in reference)
        assert {key: value for key, value in metrics.items()
                if "extra_layers" not in key} == reference
    # ISTA decreases F at every layer (Beck & Teboulle 2009, Lemma 2.3).
    metrics = objective.evaluate_result(network=ISTA(D, objective.lmbd, 4))
    assert metrics["descent_rate_extra_layers_10"] == 1.0
    assert metrics["gap_extra_layers_10"] < metrics["gap_extra_layers_3"] < metrics["value"]
    assert "descent_rate_extra_layers_0" not in metrics


def test_networks_continue_their_own_way_in_the_objective(benchmark):
    objective, data = make_objective(benchmark, n_layers=3, extra_layers="2")
    D = torch.as_tensor(data["D"])
    X_test = torch.as_tensor(data["X_test"])
    generator = torch.Generator().manual_seed(0)
    for network in (LISTA(D, objective.lmbd, 3, init="random", generator=generator),
                    LISTATied(D, objective.lmbd, 3, init="random", generator=generator)):
        metrics = objective.evaluate_result(network=network)
        with torch.no_grad():
            z = network(X_test, extra_layers=2)[-1]
        gap = (lasso_objective(z, X_test, D, objective.lmbd)
               - objective.objective_star_test).mean().item()
        assert metrics["gap_extra_layers_2"] == pytest.approx(gap, rel=1e-10)


class _NoContinuation(ISTA):
    continuation = None


def test_a_network_that_cannot_continue_gets_nan_and_one_warning(benchmark):
    objective, data = make_objective(benchmark, n_layers=3, extra_layers="0,5")
    network = _NoContinuation(torch.as_tensor(data["D"]), objective.lmbd, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = objective.evaluate_result(network=network)
        objective.evaluate_result(network=network)
    messages = [str(warning.message) for warning in caught]
    assert len(messages) == 1
    assert "_NoContinuation cannot run past its trained depth" in messages[0]
    assert "gap_extra_layers_<k>" in messages[0]
    assert math.isnan(metrics["gap_extra_layers_5"])
    assert math.isnan(metrics["descent_rate_extra_layers_5"])
    assert metrics["gap_extra_layers_0"] == metrics["value"]
    assert math.isfinite(metrics["value"])


@pytest.mark.parametrize("extra_layers", ["'-1'", "'1.5'", "'abc'", "'1,1'", "'1,,2'", "True"])
def test_bad_extra_layers_raise_value_error(benchmark, extra_layers):
    with pytest.raises(ValueError, match="extra_layers"):
        make_objective(benchmark, extra_layers=eval(extra_layers))


def test_gap_beyond_trained_depth_plot(benchmark):
    rows = []
    for solver, gaps, extra in (("ista", [1.0, 0.5, 0.3], [0.1, 0.01]),
                                ("lista[init=random]", [1.0, 0.2, 0.01], [0.02, 0.5]),
                                ("plain", [1.0, 0.4, 0.2], [math.nan, math.nan])):
        row = dict(dataset_name="simulated", objective_name="Unrolled sparse coding",
                   solver_name=solver, idx_rep=0, stop_val=1, time=1.0)
        row.update({f"objective_gap_layer_{layer}": gap for layer, gap in enumerate(gaps)})
        row.update({"objective_gap_extra_layers_0": gaps[-1],
                    "objective_gap_extra_layers_5": extra[0],
                    "objective_gap_extra_layers_20": extra[1]})
        rows.append(row)
    data, _ = benchmark.get_plot_data(pd.DataFrame(rows), ["gap_beyond_trained_depth"])
    (plot,) = data["gap_beyond_trained_depth"].values()
    curves = {curve["label"]: curve for curve in plot["data"]}
    assert curves["ista"]["x"] == [0, 1, 2, 7, 22]
    assert curves["ista"]["y"] == [1.0, 0.5, 0.3, 0.1, 0.01]
    assert curves["lista"]["y"][-2:] == [0.02, 0.5]
    assert curves["plain"]["x"] == [0, 1, 2]  # NaN: no points past L
    line = curves["trained depth L = 2"]
    assert set(line["x"]) == {2}
    finite = [y for y in line["y"] if math.isfinite(y)]
    assert min(finite) == pytest.approx(0.01) and max(finite) == pytest.approx(1.0)
    assert sum(math.isnan(y) for y in line["y"]) > 5  # dashed


# ---------------------------------------------------------------------------
# Every trained solver in bfloat16
# ---------------------------------------------------------------------------

TRAINED_SOLVERS = ["lista", "lista_tied", "lista_cp", "alista", "slista", "lista_constrained"]


@pytest.mark.parametrize("solver_name", TRAINED_SOLVERS)
def test_every_trained_solver_trains_in_bfloat16(benchmark, solver_name):
    objective, data = make_objective(benchmark, n_layers=3, extra_layers="0,2")
    dataset_class = next(d for d in benchmark.get_datasets() if d.name == "simulated")
    dataset = dataset_class.get_instance(n_features=8, n_atoms=16, n_train=60, n_test=30)
    solver_class = next(s for s in benchmark.get_solvers() if s.name == solver_name)
    solver = solver_class.get_instance(dtype="bfloat16", batch_size=20, epochs=2)
    RunContext().set_run_context(objective, dataset, solver, repetition=0, base_seed=0)
    skip, reason = solver._set_objective(objective)
    assert not skip, reason
    solver._warm_up()
    calls = []

    def callback():
        calls.append(None)
        return True

    solver.run(callback)
    assert len(calls) == 3  # epochs 0, 1, 2
    network = solver.get_result()["network"]
    assert solver.trainer.autocast_dtype is torch.bfloat16
    assert all(p.dtype == torch.float32 for p in network.parameters())  # master weights
    metrics = objective.evaluate_result(**solver.get_result())
    assert all(math.isfinite(value) for value in metrics.values())


def test_lista_tied_parameters(benchmark):
    objective, _ = make_objective(benchmark, n_layers=3)
    solver_class = next(s for s in benchmark.get_solvers() if s.name == "lista_tied")
    solver = solver_class.get_instance(training="implicit", thresholds="per_layer")
    skip, reason = solver._set_objective(objective)
    assert skip and "thresholds=shared" in reason
    for parameters, match in ((dict(training="unrolled", thresholds="per_layer"), None),
                              (dict(training="deq"), "training")):
        solver = solver_class.get_instance(**parameters)
        if match is None:
            assert solver._set_objective(objective) == (False, None)
        else:
            with pytest.raises(ValueError, match=match):
                solver._set_objective(objective)
    solver = solver_class.get_instance(backward="newton")
    with pytest.raises(ValueError, match="backward"):
        solver._set_objective(objective)


def _train_solver(benchmark, solver_name, **parameters):
    objective, _ = make_objective(benchmark, n_layers=3)
    dataset_class = next(d for d in benchmark.get_datasets() if d.name == "simulated")
    dataset = dataset_class.get_instance(n_features=8, n_atoms=16, n_train=60, n_test=30)
    solver_class = next(s for s in benchmark.get_solvers() if s.name == solver_name)
    solver = solver_class.get_instance(batch_size=20, epochs=2, **parameters)
    RunContext().set_run_context(objective, dataset, solver, repetition=0, base_seed=0)
    assert solver._set_objective(objective) == (False, None)
    solver.run(lambda: True)
    return solver


def test_lista_trains_with_iterate_noise(benchmark):
    """``noise_level`` reaches LISTA's trainer: the same seed gives other
    weights with noise than without (the noise draws are injected into the
    iterates of the training steps)."""
    plain = _train_solver(benchmark, "lista", init="random")
    noisy = _train_solver(benchmark, "lista", init="random", noise_level=0.1)
    assert plain.trainer.noise_level == 0 and noisy.trainer.noise_level == 0.1
    again = _train_solver(benchmark, "lista", init="random", noise_level=0.1)
    torch.testing.assert_close(noisy.network.W_z, again.network.W_z, rtol=0, atol=0)
    assert (noisy.network.W_z - plain.network.W_z).abs().max() > 1e-6


def test_lista_tied_trains_implicitly_with_cg(benchmark):
    solver = _train_solver(benchmark, "lista_tied", training="implicit", backward="cg")
    assert solver.trainer.backward == "cg"
    assert solver.trainer.stats["backward_iterations"] >= 1
