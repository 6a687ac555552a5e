"""benchmark_unrolling's trained solvers: the learning-rate schedules, and the
conditions that the quick config must show, on stand-ins small enough to
train in seconds."""
import math
from pathlib import Path

import pytest
import torch
from benchopt.benchmark import Benchmark
from benchopt.utils.run_context import RunContext

from solvers_common.lasso import lmbd_max
from solvers_common.unrolled import LISTA, LISTATied, UnrolledTrainer
from solvers_common.unrolled.implicit import ImplicitTrainer

BENCHMARK = Path(__file__).parents[1] / "benchmark_unrolling"


@pytest.fixture(scope="module")
def benchmark():
    return Benchmark(BENCHMARK)


def small_problem(n_signals=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    D = torch.randn(6, 10, generator=generator, dtype=torch.float64)
    D /= torch.linalg.vector_norm(D, dim=0)
    X = torch.randn(n_signals, 6, generator=generator, dtype=torch.float64)
    lmbd = 0.1 * lmbd_max(X, D).item()
    z_star = torch.zeros(n_signals, 10, dtype=torch.float64)
    return D, X, lmbd, z_star


# ---------------------------------------------------------------------------
# Learning-rate schedules
# ---------------------------------------------------------------------------

def closed_form(schedule, lr, k, total):
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        return lr * (1 + math.cos(math.pi * min(k, total) / total)) / 2
    return lr * 0.1 ** ((k >= total / 2) + (k >= 3 * total / 4))


@pytest.mark.parametrize("trainer_class", [UnrolledTrainer, ImplicitTrainer])
@pytest.mark.parametrize("schedule", ["constant", "cosine", "step"])
def test_the_trainers_follow_the_schedules_closed_form(trainer_class, schedule):
    D, X, lmbd, z_star = small_problem()
    network = LISTATied(D, lmbd, 3)
    total = 12
    trainer = trainer_class(network, X, z_star, D, lmbd, lr=0.01, batch_size=16,
                            lr_schedule=schedule, total_steps=total)
    for k in range(total + 1):
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(
            closed_form(schedule, 0.01, k, total), rel=1e-12, abs=1e-15), (schedule, k)
        if k < total:
            trainer.train(1)


def test_a_schedule_without_its_length_or_unknown_is_refused():
    D, X, lmbd, z_star = small_problem()
    network = LISTA(D, lmbd, 3)
    with pytest.raises(ValueError, match="total_steps"):
        UnrolledTrainer(network, X, z_star, D, lmbd, lr_schedule="cosine")
    with pytest.raises(ValueError, match="lr_schedule='linear'"):
        UnrolledTrainer(network, X, z_star, D, lmbd, lr_schedule="linear", total_steps=4)


def make_solver(benchmark, solver_name, n_layers=3, **parameters):
    dataset_class = next(d for d in benchmark.get_datasets() if d.name == "simulated")
    dataset = dataset_class.get_instance(n_features=8, n_atoms=16, n_train=64, n_test=16,
                                         n_validation=16)
    objective = benchmark.get_benchmark_objective().get_instance(n_layers=n_layers)
    RunContext().set_run_context(objective, dataset, "dummy", repetition=0, base_seed=0)
    objective.set_data(**dataset.get_data())
    solver_class = next(s for s in benchmark.get_solvers() if s.name == solver_name)
    solver = solver_class.get_instance(**parameters)
    RunContext().set_run_context(objective, dataset, solver, repetition=0, base_seed=0)
    return objective, solver


@pytest.mark.parametrize("solver_name, extra", [
    ("lista", {}), ("lista_tied", {"training": "implicit"}), ("lista_constrained", {})])
def test_the_solvers_schedule_spans_the_whole_training(benchmark, solver_name, extra):
    # 64 signals, batch 16: 4 steps per epoch, 5 epochs, 20 steps; the cosine
    # rate reaches 0 exactly at the last step.
    objective, solver = make_solver(benchmark, solver_name, batch_size=16, epochs=5,
                                    lr_schedule="cosine", dtype="float64", **extra)
    skip, reason = solver._set_objective(objective)
    assert not skip, reason
    solver.run(lambda: True)
    assert solver.trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0, abs=1e-15)
    assert solver.trainer.scheduler.last_epoch == 20


def test_a_bad_schedule_is_refused_before_any_work(benchmark):
    objective, solver = make_solver(benchmark, "lista", lr_schedule="linear")
    with pytest.raises(ValueError, match="lr_schedule='linear' is unknown"):
        solver._set_objective(objective)
    assert not hasattr(solver, "X")  # raised before the data were moved


# ---------------------------------------------------------------------------
# What the quick config shows, on a stand-in trained in seconds
# ---------------------------------------------------------------------------

STAND_IN = dict(n_features=16, n_atoms=32, density=0.2, n_train=256, n_test=64,
                n_validation=64)


def training_curve(benchmark, solver_name, n_layers=5, **parameters):
    """The objective's metrics at every evaluation of one benchopt-like run
    (the first one before any training) on the stand-in problem, seed 0."""
    dataset_class = next(d for d in benchmark.get_datasets() if d.name == "simulated")
    dataset = dataset_class.get_instance(**STAND_IN)
    objective = benchmark.get_benchmark_objective().get_instance(
        n_layers=n_layers, noise_levels="", extra_layers="0")
    RunContext().set_run_context(objective, dataset, "dummy", repetition=0, base_seed=0)
    objective.set_data(**dataset.get_data())
    solver_class = next(s for s in benchmark.get_solvers() if s.name == solver_name)
    solver = solver_class.get_instance(**parameters)
    RunContext().set_run_context(objective, dataset, solver, repetition=0, base_seed=0)
    skip, reason = solver._set_objective(objective)
    assert not skip, reason
    curve = []

    def callback():
        curve.append(objective.evaluate_result(**solver.get_result()))
        return True

    solver.run(callback)
    return curve


TRAINING = dict(batch_size=32, epochs=15, lr=3e-3, dtype="float64")


@pytest.fixture(scope="module")
def lista_from_ista(benchmark):
    return training_curve(benchmark, "lista", init="ista", **TRAINING)


def test_the_constrained_lista_from_ista_descends_and_matches_lista(benchmark, lista_from_ista):
    curve = training_curve(benchmark, "lista_constrained", init="ista", **TRAINING)
    first, last = curve[0], curve[-1]
    # From ISTA's weights (nonexpansive toward z*) every layer gets closer;
    # here, as in the quick config, no constraint binds: it trains as LISTA.
    assert first["distance_descent_rate"] >= 0.95
    assert last["distance_descent_rate"] >= 0.9
    assert last["value"] < 0.8 * first["value"]  # it trained
    assert last["value"] < last["gap_layer_0"]
    assert last["value"] <= 1.5 * lista_from_ista[-1]["value"]
    assert last["validation_gap"] < first["validation_gap"]


@pytest.mark.parametrize("solver_name, parameters", [
    ("lista", dict(init="random")),
    ("lista_tied", dict(training="unrolled")),
    ("lista_tied", dict(training="implicit")),
    ("lista_cp", {}),
])
def test_a_trained_network_ends_below_its_input_gap(benchmark, solver_name, parameters):
    curve = training_curve(benchmark, solver_name, **parameters, **TRAINING)
    assert len(curve) == TRAINING["epochs"] + 1
    first, last = curve[0], curve[-1]
    assert last["value"] < last["gap_layer_0"], (solver_name, parameters, last["value"])
    assert last["value"] < 0.9 * first["value"]
    assert last["validation_gap"] < last["gap_layer_0"]


@pytest.mark.parametrize("solver_name", ["lista", "lista_constrained", "lista_cp", "lista_tied"])
def test_tuning_spaces_have_four_candidates_of_the_solvers_parameters(benchmark, solver_name):
    solver_class = next(s for s in benchmark.get_solvers() if s.name == solver_name)
    space = solver_class.tuning_space
    assert set(space) <= set(solver_class.parameters), (solver_name, space)
    assert math.prod(len(values) for values in space.values()) >= 4
    assert 1e-3 in space["lr"]  # centred on the suite's Adam rate
    if solver_name in ("lista", "lista_constrained"):
        assert space["noise_level"] == [0.0, 0.1]  # the same comparator noise
