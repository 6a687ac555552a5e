"""The clock and the last evaluation of every benchmark's solver loop
(:func:`solvers_common.device.callback_loop`), driven by benchopt's own
``_Callback`` and stopping criteria.

The clock: work queued to a worker thread stands for CUDA kernels, which
finish only when the device is synchronized; the time benchopt records must
count all of it and none of a (slow) evaluation. The last evaluation: a run
with a training budget is scored after its last step, whatever benchopt's
geometric schedule of evaluations."""
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from benchopt.benchmark import Benchmark
from benchopt.callback import _Callback
from benchopt.utils.run_context import RunContext

from solvers_common.device import callback_loop

ROOT = Path(__file__).parents[1]

# benchmark: (dataset and its tiny parameters, objective parameters, solver
# and its parameters).
SETUPS = {
    "benchmark_unrolling": (
        ("simulated", dict(n_features=8, n_atoms=16, n_train=32, n_test=16)),
        dict(n_layers=2), ("lista", dict(batch_size=16))),
    "benchmark_bilevel": (
        ("quadratic", dict(dim_inner=5, dim_outer=3, n_inner_samples=32,
                           n_outer_samples=32)),
        {}, ("soba", dict(batch_size=8, eval_freq=5))),
    "benchmark_sparse_training": (
        ("simulated", dict(n_train=32, n_test=16)), dict(model="mlp"),
        ("sgd", dict(batch_size=16))),
}


@pytest.fixture(scope="module")
def benchmarks():
    return {}


def make_solver(benchmarks, name, **solver_parameters):
    if name not in benchmarks:
        benchmarks[name] = Benchmark(ROOT / name)
    benchmark = benchmarks[name]
    (dataset_name, dataset_parameters), objective_parameters, (solver_name, parameters) = (
        SETUPS[name])
    dataset = next(d for d in benchmark.get_datasets() if d.name == dataset_name
                   ).get_instance(**dataset_parameters)
    objective = benchmark.get_benchmark_objective().get_instance(**objective_parameters)
    RunContext().set_run_context(objective, dataset, "dummy", repetition=0, base_seed=0)
    objective.set_data(**dataset.get_data())
    solver_class = next(s for s in benchmark.get_solvers() if s.name == solver_name)
    solver = solver_class.get_instance(**{**parameters, **solver_parameters})
    RunContext().set_run_context(objective, "dummy", solver, repetition=0, base_seed=0)
    solver.set_objective(**objective.get_objective())
    return solver


def run_with_benchopt_callback(solver, objective, max_runs=100):
    """``solver.run`` under benchopt's callback with the solver's own stopping
    criterion; returns benchopt's curve and status."""
    criterion = solver.stopping_criterion.get_runner_instance(
        solver=solver, max_runs=max_runs, timeout=1e6)
    callback = _Callback(objective, solver, {}, criterion)
    callback.start()
    solver.run(callback)
    curve, status, _ = callback.get_results()
    return curve, status


class DelayedWork:
    """Rounds of work queued to a worker thread, finished only by
    ``synchronize``, as CUDA kernels are."""

    def __init__(self, seconds):
        self.seconds, self.pending, self.rounds = seconds, [], 0
        self.executor = ThreadPoolExecutor(max_workers=1)

    def queue(self, *_):
        self.pending.append(self.executor.submit(time.sleep, self.seconds))
        self.rounds += 1

    def synchronize(self):
        while self.pending:
            self.pending.pop().result()


class FakeUnrolledTrainer:
    """Stands for ``UnrolledTrainer``: each call to ``train`` is one round
    of delayed work."""

    steps_per_epoch = 2

    def __init__(self, work):
        self.train = work.queue


def install_delayed_work(name, solver, work):
    """Make one round of ``solver``'s training loop a round of ``work``."""
    if name == "benchmark_unrolling":
        solver.make_trainer = lambda: FakeUnrolledTrainer(work)
    elif name == "benchmark_bilevel":
        # One round is eval_freq steps: one delayed step per round, the
        # others free.
        steps = []

        def step():
            steps.append(None)
            if len(steps) % solver.eval_freq == 0:
                work.queue()
        solver.step = step
    else:
        solver.trainer.train_epoch = work.queue
    solver.synchronize = work.synchronize


class SlowObjective:
    """Takes ``seconds`` per evaluation; records the rounds of work queued
    by then."""

    def __init__(self, seconds, work):
        self.seconds, self.work, self.rounds = seconds, work, []

    def __call__(self, result):
        self.rounds.append(self.work.rounds)
        time.sleep(self.seconds)
        return [dict(objective_value=0.0, value=0.0)]


@pytest.mark.parametrize("name", sorted(SETUPS))
def test_recorded_time_counts_queued_work_and_not_the_evaluation(benchmarks, name):
    work_seconds, evaluation_seconds = 0.04, 0.2
    n_rounds = 4
    # benchmark_bilevel: 32 samples in batches of 8, 4 iterations per epoch,
    # 5 epochs are 4 rounds of eval_freq 5.
    solver = make_solver(benchmarks, name, epochs=5 if name == "benchmark_bilevel" else n_rounds)
    work = DelayedWork(work_seconds)
    install_delayed_work(name, solver, work)
    objective = SlowObjective(evaluation_seconds, work)
    curve, _ = run_with_benchopt_callback(solver, objective, max_runs=n_rounds)
    times = [point["time"] for point in curve]
    assert len(times) >= 3 and objective.rounds[-1] == n_rounds, (objective.rounds, times)
    for rounds, recorded in zip(objective.rounds, times):
        done = rounds * work_seconds  # rounds of work queued before this evaluation
        # Without the synchronization, evaluation k starts while its last
        # round is still queued: the round would be missing from the time.
        assert done <= recorded, times
        # An evaluation counted in the time would add evaluation_seconds.
        assert recorded < done + evaluation_seconds / 2, times
    work.executor.shutdown()


class ProgressObjective:
    """Records how far training went when each evaluation happens."""

    def __init__(self, solver, progress):
        self.solver, self.progress, self.seen = solver, progress, []

    def __call__(self, result):
        self.seen.append(self.progress(self.solver))
        return [dict(objective_value=0.0, value=0.0)]


@pytest.mark.parametrize("epochs", [2, 3, 5, 7, 10])
@pytest.mark.parametrize("name", ["benchmark_unrolling", "benchmark_sparse_training"])
def test_the_last_epoch_is_scored(benchmarks, name, epochs):
    solver = make_solver(benchmarks, name, epochs=epochs)
    objective = ProgressObjective(solver, lambda solver: solver.trainer.epochs_done)
    curve, status = run_with_benchopt_callback(solver, objective)
    assert status == "done"
    assert objective.seen[-1] == epochs, objective.seen
    assert objective.seen[0] == 0 and objective.seen == sorted(set(objective.seen))
    assert len(curve) == len(objective.seen)


@pytest.mark.parametrize("name", ["benchmark_unrolling", "benchmark_sparse_training"])
def test_max_runs_still_cuts_a_run_short(benchmarks, name):
    solver = make_solver(benchmarks, name, epochs=10)
    objective = ProgressObjective(solver, lambda solver: solver.trainer.epochs_done)
    _, status = run_with_benchopt_callback(solver, objective, max_runs=3)
    assert status == "max_runs"
    # (benchopt's schedule stretches on a flat curve, as this one is)
    assert len(objective.seen) == 4 and objective.seen[-1] < 10, objective.seen


def test_callback_loop_order_and_budget():
    events = []

    def callback():
        events.append("callback")
        return True
    callback_loop(callback, lambda: events.append("round"),
                  lambda: events.append("sync"), n_rounds=2)
    assert events == ["sync", "callback", "round"] * 2 + ["sync", "callback"]
    events.clear()
    callback_loop(lambda: events.append("callback") or len(events) < 3,
                  lambda: events.append("round"), lambda: None)
    assert events == ["callback", "round", "callback"]
    events.clear()
    callback_loop(callback, lambda: events.append("round"), lambda: None, n_rounds=0)
    assert events == ["callback"]
