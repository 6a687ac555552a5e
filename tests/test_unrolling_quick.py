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
