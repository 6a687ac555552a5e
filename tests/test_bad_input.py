"""Every declared numeric parameter of every solver and objective of the four
benchmarks refuses a bad value before any work: 0, a negative value and a
string each raise a ValueError that names the parameter, from the hooks
benchopt calls before a run (the objective's ``skip`` and ``set_data``, the
solver's ``skip`` and ``set_objective``; never ``warm_up`` nor ``run``), or
are accepted by a rule that the component's docstring states (ALLOWED).

A parameter is numeric when its default (the first value of its
``parameters`` list) is an int or a float, not a bool. The data is the tiny
test data of each benchmark (the dataset of the solver's or the objective's
``test_config`` with its ``test_parameters``), so the whole walk takes
seconds. A value equal to the declared default is not tried: the default is
accepted by definition.
"""
import math
import numbers
import re
import sys
from functools import cache
from pathlib import Path

import pytest
import torch
from benchopt.benchmark import Benchmark
from benchopt.utils.parametrized_name_mixin import product_param
from benchopt.utils.run_context import RunContext

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK_NAMES = ("benchmark_bilevel", "benchmark_inverse_problems",
                   "benchmark_sparse_training", "benchmark_unrolling")
WRONG_TYPE = "abc"
_BILEVEL_SOLVERS = ("aid_cg", "aid_neumann", "amigo", "bsa", "f2sa", "fsla", "grid_search",
                    "implicit", "implicit_forward", "itd", "itd_backward", "itd_forward",
                    "jacobian_free", "mrbo", "random_search", "saba", "soba", "srba",
                    "stocbio", "sustain", "ttsa", "vrbo")
_SPARSE_SOLVERS = ("adabreg", "adam", "adamw", "linbreg", "magnitude_pruning", "prox_sgd",
                   "sgd")
_UNROLLING_TRAINED = ("alista", "lista", "lista_constrained", "lista_cp", "lista_tied",
                      "slista")

# (benchmark, component, parameter, value) -> the sentence of the
# component's docstring (its class, a base class, or their modules) that
# makes the value legitimate. The test checks that the sentence is there and
# that the value is accepted.
ALLOWED = {
    # epochs=0: the run scores the initial point, a baseline.
    **{("benchmark_inverse_problems", solver, "epochs", 0):
       "``epochs=0`` scores the untrained model, its initialization."
       for solver in ("glow_prox", "pnp_dictionary", "pnp_dncnn", "unrolled_pgd")},
    # The descending constraint g_{l+1} <= (1 - epsilon) g_l at epsilon=0:
    # no growth, the weakest constraint that still descends.
    **{("benchmark_inverse_problems", solver, "epsilon", 0):
       "``epsilon=0`` asks only that it does not grow."
       for solver in ("glow_prox", "unrolled_pgd")},
    # No noise: the degradation is the blur alone, or nothing.
    ("benchmark_sparse_training", "objective", "noise_std", 0):
        "Gaussian noise of standard deviation ``noise_std``, 0 for none",
    # The formulas of the docstrings at 0: a constant step size (SOBA), no
    # penalty (Bregman iterations and proximal SGD become SGD-like steps, as
    # lmbd=0 makes J = 0 and its prox the identity), no weight decay, no
    # label smoothing, pruning from the first epoch.
    ("benchmark_bilevel", "soba", "step_size_exponent", 0):
        "rho_t = step_size / (t + 1)^step_size_exponent",
    **{("benchmark_sparse_training", solver, "lmbd", 0): "J = lmbd * regularizer"
       for solver in ("adabreg", "linbreg", "prox_sgd")},
    ("benchmark_sparse_training", "adamw", "weight_decay", 0):
        "``theta <- theta - lr weight_decay theta``",
    ("benchmark_sparse_training", "adamw", "label_smoothing", 0):
        "label smoothing of the cross-entropy targets",
    ("benchmark_sparse_training", "magnitude_pruning", "pruning_start", 0):
        "after each epoch between ``pruning_start * epochs`` and ``pruning_end * epochs``",
    # epochs=0 in the other three benchmarks: the run's one evaluation is the
    # initial point (test_epochs_zero_scores_the_initial_point).
    **{("benchmark_bilevel", solver, "epochs", 0):
       "``epochs=0`` scores the initial point, no iteration."
       for solver in _BILEVEL_SOLVERS},
    **{("benchmark_sparse_training", solver, "epochs", 0):
       "``epochs=0`` scores the initialization, untrained"
       for solver in _SPARSE_SOLVERS},
    **{("benchmark_unrolling", solver, "epochs", 0):
       "``epochs=0`` scores the untrained network, its initialization."
       for solver in _UNROLLING_TRAINED},
    # ALISTA's support selection at 0 percent keeps no entry: the plain
    # soft-thresholding network (test_alista_slista checks the iterates).
    **{("benchmark_unrolling", "alista", parameter, 0):
       "``support_percent=0`` or ``support_max_percent=0`` selects no entry, the plain "
       "soft-thresholding network again."
       for parameter in ("support_percent", "support_max_percent")},
    # The descending constraint of Hadou et al. at epsilon=0, as above.
    ("benchmark_unrolling", "lista_constrained", "epsilon", 0):
        "``epsilon=0`` asks only that the mean ratio stays at most 1: the distance (or the "
        "gradient-mapping norm) must not grow.",
}

# Bad values still accepted, or refused without a ValueError naming the
# parameter: (benchmark, component, parameter, value) -> what happens today
# and in which file. Strict xfails: a fix turns them into failures, to be
# removed from here. Empty: every bad value of the walk is refused or allowed.
NOT_YET_REFUSED = {}


@cache
def benchmark(name):
    return Benchmark(ROOT / name)


def numeric_parameters(klass):
    """{name: default} of the parameters whose default is an int or a float."""
    numeric = {}
    for name, values in klass.parameters.items():
        default = values[0] if isinstance(values, (list, tuple)) else values
        if isinstance(default, numbers.Real) and not isinstance(default, bool):
            numeric[name] = default
    return numeric


def bad_values(default):
    negative = -1 if isinstance(default, numbers.Integral) else -0.5
    return [value for value in (0, negative, WRONG_TYPE) if value != default]


def components(benchmark_name):
    bench = benchmark(benchmark_name)
    return [("objective", bench.get_benchmark_objective())] + [
        (solver.name, solver) for solver in bench.get_solvers()]


def make_cases():
    cases = []
    for benchmark_name in BENCHMARK_NAMES:
        for component, klass in components(benchmark_name):
            for parameter, default in numeric_parameters(klass).items():
                for value in bad_values(default):
                    key = (benchmark_name, component, parameter, value)
                    marks = ([pytest.mark.xfail(strict=True, reason=NOT_YET_REFUSED[key])]
                             if key in NOT_YET_REFUSED else [])
                    cases.append(pytest.param(
                        *key, marks=marks,
                        id=f"{benchmark_name.removeprefix('benchmark_')}-{component}-"
                           f"{parameter}={value!r}"))
    return cases


CASES = make_cases()


def test_the_walk_covers_every_benchmark_and_every_listed_case():
    walked = {tuple(case.values) for case in CASES}
    assert {key[0] for key in walked} == set(BENCHMARK_NAMES)
    assert len(walked) > 400, len(walked)
    stale = [key for key in {**ALLOWED, **NOT_YET_REFUSED} if key not in walked]
    assert not stale, f"listed cases that the walk does not try: {stale}"
    assert not set(ALLOWED) & set(NOT_YET_REFUSED)


@cache
def tiny_dataset(benchmark_name, dataset_name):
    """The dataset ``dataset_name`` with its ``test_parameters``."""
    klass = benchmark(benchmark_name).get_test_dataset(name=dataset_name)
    parameters = next(product_param(getattr(klass, "test_parameters", None) or {}))
    return klass.get_instance(**parameters)


def objective_instance(benchmark_name, dataset, **parameters):
    klass = benchmark(benchmark_name).get_benchmark_objective()
    test_parameters = (klass.test_config or {}).get("objective", {})
    objective = klass.get_instance(**{**test_parameters, **parameters})
    RunContext().set_run_context(objective, dataset, "dummy", repetition=0, base_seed=0)
    return objective


@cache
def ready_objective(benchmark_name, dataset_name):
    """The default objective, its data set on the test dataset."""
    dataset = tiny_dataset(benchmark_name, dataset_name)
    objective = objective_instance(benchmark_name, dataset)
    skip, reason = objective._set_dataset(dataset)
    assert not skip, reason
    return objective


def run_hooks(benchmark_name, component, parameter, value):
    """What benchopt calls before any work, with ``parameter=value``:
    returns (skipped, reason); raises what the hooks raise."""
    bench = benchmark(benchmark_name)
    if component == "objective":
        dataset_name = bench.get_test_dataset_names()[0]
        dataset = tiny_dataset(benchmark_name, dataset_name)
        objective = objective_instance(benchmark_name, dataset, **{parameter: value})
        return objective._set_dataset(dataset)
    _, skipped, reason = hooked_solver(benchmark_name, component, **{parameter: value})
    return skipped, reason


def hooked_solver(benchmark_name, solver_name, **parameters):
    """(solver, skipped, reason): the solver with its ``test_config`` and
    ``parameters``, after the hooks before any work on its test dataset."""
    bench = benchmark(benchmark_name)
    (klass,) = [solver for solver in bench.get_solvers() if solver.name == solver_name]
    dataset_name = bench.get_test_dataset_names(solver_class=klass)[0]
    objective = ready_objective(benchmark_name, dataset_name)
    test_parameters = {key: item for key, item in (klass.test_config or {}).items()
                       if key != "dataset"}
    solver = klass.get_instance(**{**test_parameters, **parameters})
    RunContext().set_run_context(objective, objective._dataset, solver, repetition=0,
                                 base_seed=0)
    skipped, reason = solver._set_objective(objective)
    return solver, skipped, reason


def docstrings(benchmark_name, component):
    """The docstrings of a component's class, its bases and their modules,
    whitespace collapsed."""
    bench = benchmark(benchmark_name)
    klass = (bench.get_benchmark_objective() if component == "objective" else
             next(solver for solver in bench.get_solvers() if solver.name == component))
    texts = []
    for cls in klass.__mro__:
        texts.append(cls.__doc__ or "")
        texts.append(getattr(sys.modules.get(cls.__module__), "__doc__", None) or "")
    return " ".join(" ".join(text.split()) for text in texts)


@pytest.mark.parametrize("benchmark_name, component, parameter, value", CASES)
def test_bad_value_is_refused_before_any_work(benchmark_name, component, parameter, value):
    key = (benchmark_name, component, parameter, value)
    if key in ALLOWED:
        rule = " ".join(ALLOWED[key].split())
        assert rule in docstrings(benchmark_name, component), (
            f"{component}: the rule that allows {parameter}={value!r} is not in its docstring: "
            f"{rule!r}")
        skipped, reason = run_hooks(*key)
        assert not skipped, f"{component}[{parameter}={value!r}] is allowed but skipped: {reason}"
        return
    # Word boundaries: "lr" must not be found inside "lr_dual".
    with pytest.raises(ValueError, match=rf"(?<![\w]){re.escape(parameter)}(?![\w])"):
        skipped, reason = run_hooks(*key)
        if skipped:
            pytest.fail(f"{component}[{parameter}={value!r}] skipped instead of a ValueError: "
                        f"{reason}")


@pytest.mark.parametrize("benchmark_name, solver_name", [
    ("benchmark_bilevel", "soba"), ("benchmark_bilevel", "implicit"),
    ("benchmark_bilevel", "grid_search"), ("benchmark_sparse_training", "sgd"),
    ("benchmark_sparse_training", "magnitude_pruning"), ("benchmark_unrolling", "lista"),
    ("benchmark_unrolling", "lista_constrained")])
def test_epochs_zero_scores_the_initial_point(benchmark_name, solver_name):
    """The rule of ALLOWED for ``epochs=0``: the run calls benchopt's
    callback once, on the initial point, and returns it untouched."""
    solver, skipped, reason = hooked_solver(benchmark_name, solver_name, epochs=0)
    assert not skipped, reason
    if benchmark_name == "benchmark_sparse_training":  # built in set_objective
        initial = [tensor.detach().clone() for tensor in solver.network.state_dict().values()]
    calls = []
    solver.run(lambda: calls.append(None) or True)
    assert len(calls) == 1
    result = solver.get_result()
    if benchmark_name == "benchmark_bilevel":
        initial = solver.problem.initial_point()
        final = (result["theta"], result["lmbd"])
    elif benchmark_name == "benchmark_sparse_training":
        final = list(result["model"].state_dict().values())
    else:  # built in run: the same seed builds the same initial network again
        final = [tensor.detach().clone() for tensor in result["network"].state_dict().values()]
        solver.build(solver.get_seed(use_repetition=True))
        initial = list(solver.network.state_dict().values())
    assert len(final) == len(initial)
    for got, expected in zip(final, initial):
        assert torch.equal(got, expected)


# ---------------------------------------------------------------------------
# The four cases of issue 25, one by one, with their messages.

def test_sparse_training_model_typo_raises_listing_the_models():
    dataset = tiny_dataset("benchmark_sparse_training", "simulated")
    objective = objective_instance("benchmark_sparse_training", dataset, model="mpl")
    with pytest.raises(ValueError, match=r"model='mpl' is unknown; accepted values: 'mlp', "
                                         r"'convnet', 'resnet18', .*'mlp_deep'"):
        objective._set_dataset(dataset)


@pytest.mark.parametrize("size, value", [("width", 0), ("depth", -1), ("heads", WRONG_TYPE),
                                         ("patch_size", 0)])
def test_sparse_training_sizes_no_model_takes_raise(size, value):
    """Sizes default to None (the model's), so the walk does not try them."""
    dataset = tiny_dataset("benchmark_sparse_training", "simulated")
    objective = objective_instance("benchmark_sparse_training", dataset, model="vit",
                                   **{size: value})
    with pytest.raises(ValueError, match=rf"{size}={value!r} must be None \(the model's "
                                         r"default\) or an integer >= 1"):
        objective._set_dataset(dataset)


@pytest.mark.parametrize("solver, parameter, value, message", [
    ("unrolled_pgd", "n_layers", 0, "n_layers=0 must be an integer >= 1"),
    ("pnp_dncnn", "depth", 0, "depth=0 must be an integer >= 2"),
    ("pnp_dncnn", "depth", 1, "depth=1 must be an integer >= 2"),
    ("tv_pgd", "n_inner", 0, "n_inner=0 must be an integer >= 1"),
])
def test_inverse_problems_cases_of_issue_25(solver, parameter, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        run_hooks("benchmark_inverse_problems", solver, parameter, value)


def test_a_valid_value_still_passes_the_hooks():
    """The checks refuse the bad values only: the smallest valid ones pass."""
    for solver, parameter, value in [("unrolled_pgd", "n_layers", 1), ("pnp_dncnn", "depth", 2),
                                     ("tv_pgd", "n_inner", 1), ("glow_prox", "depth", 1)]:
        skipped, reason = run_hooks("benchmark_inverse_problems", solver, parameter, value)
        assert not skipped, reason
    assert math.isfinite(ready_objective("benchmark_inverse_problems", "images").lipschitz)
