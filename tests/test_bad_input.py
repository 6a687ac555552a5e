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
from benchopt.benchmark import Benchmark
from benchopt.utils.parametrized_name_mixin import product_param
from benchopt.utils.run_context import RunContext

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK_NAMES = ("benchmark_bilevel", "benchmark_inverse_problems",
                   "benchmark_sparse_training", "benchmark_unrolling")
WRONG_TYPE = "abc"

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
}

# Bad values still accepted, or refused without a ValueError naming the
# parameter, by components whose files this test's change did not touch
# (their owners fix them): (benchmark, component, parameter, value) -> what
# happens today. Strict xfails: a fix turns them into failures, to be
# removed from here.
_UNROLLING_TRAINED = ("alista", "lista", "lista_constrained", "lista_cp", "lista_tied",
                      "slista")
_LATE = ("accepted by set_objective; refused only by warm_up, when "
         "benchmark_utils/trained_solver.py builds the trainer")
NOT_YET_REFUSED = {
    ("benchmark_inverse_problems", "objective", "n_iterations", WRONG_TYPE):
        "ValueError from int() that does not name n_iterations (objective.py)",
    ("benchmark_bilevel", "objective", "study_stride", 0):
        "accepted: checked only when study_lmbd_ratio is set (objective.py)",
    ("benchmark_bilevel", "objective", "study_stride", -1):
        "accepted: checked only when study_lmbd_ratio is set (objective.py)",
    ("benchmark_bilevel", "objective", "study_stride", WRONG_TYPE):
        "accepted: checked only when study_lmbd_ratio is set (objective.py)",
    **{("benchmark_bilevel", solver, "epochs", 0):
       "accepted: scores the initial point, no docstring says so "
       "(benchmark_utils/bilevel_solver.py)"
       for solver in ("aid_cg", "aid_neumann", "amigo", "bsa", "f2sa", "fsla", "grid_search",
                      "implicit", "implicit_forward", "itd", "itd_backward", "itd_forward",
                      "jacobian_free", "mrbo", "random_search", "saba", "soba", "srba",
                      "stocbio", "sustain", "ttsa", "vrbo")},
    ("benchmark_bilevel", "soba", "step_size_exponent", -0.5):
        "accepted by set_objective; refused by the schedule at warm_up (soba.py)",
    ("benchmark_bilevel", "soba", "step_size_exponent", WRONG_TYPE):
        "accepted by set_objective; TypeError at warm_up (soba.py)",
    **{("benchmark_sparse_training", solver, "lr", 0):
       "accepted (check_nonnegative): a run that never moves, no docstring says so"
       for solver in ("adabreg", "adam", "adamw", "linbreg", "magnitude_pruning", "prox_sgd",
                      "sgd")},
    **{("benchmark_sparse_training", solver, "epochs", 0):
       "accepted: scores the initialization, no docstring says so "
       "(benchmark_utils/training_solver.py)"
       for solver in ("adabreg", "adam", "adamw", "linbreg", "magnitude_pruning", "prox_sgd",
                      "sgd")},
    ("benchmark_sparse_training", "magnitude_pruning", "pruning_start", WRONG_TYPE):
        "TypeError from a comparison (magnitude_pruning.py)",
    ("benchmark_sparse_training", "magnitude_pruning", "pruning_end", WRONG_TYPE):
        "TypeError from a comparison (magnitude_pruning.py)",
    **{("benchmark_sparse_training", solver, "init_density", value):
       "ValueError naming `density`, not init_density "
       "(solvers_common/models/initialization.py, check_density)"
       for solver in ("adabreg", "adam", "adamw", "linbreg", "magnitude_pruning", "prox_sgd",
                      "sgd")
       for value in (0, -0.5, WRONG_TYPE)},
    **{("benchmark_sparse_training", "magnitude_pruning", "target_density", value):
       "ValueError naming `density`, not target_density (solvers_common/pruning.py)"
       for value in (0, -0.5, WRONG_TYPE)},
    **{("benchmark_bilevel", solver, parameter, WRONG_TYPE):
       "ValueError from int() that does not name the parameter "
       "(solvers_common/bilevel/sparse_hypergradients.py, check_iterations)"
       for solver, parameter in (("implicit", "max_inner_steps"),
                                 ("implicit_forward", "max_inner_steps"),
                                 ("implicit_forward", "max_jacobian_steps"),
                                 ("itd_backward", "n_inner_steps"),
                                 ("itd_forward", "n_inner_steps"))},
    ("benchmark_unrolling", "objective", "n_layers", WRONG_TYPE):
        "ValueError from int() that does not name n_layers (objective.py)",
    ("benchmark_unrolling", "objective", "lmbd_ratio", WRONG_TYPE):
        "TypeError from a comparison (objective.py)",
    **{("benchmark_unrolling", solver, parameter, value): _LATE
       for solver in _UNROLLING_TRAINED for parameter, value in (
           ("lr", 0), ("lr", -0.5), ("lr", WRONG_TYPE), ("batch_size", -1),
           ("batch_size", WRONG_TYPE), ("batch_size", 0))},
    **{("benchmark_unrolling", solver, "epochs", 0):
       "accepted: scores the initialization, no docstring says so "
       "(benchmark_utils/trained_solver.py)" for solver in _UNROLLING_TRAINED},
    **{("benchmark_unrolling", solver, parameter, value): _LATE
       for solver in ("lista", "lista_constrained")
       for parameter, value in (("noise_level", -0.5), ("noise_level", WRONG_TYPE))},
    **{("benchmark_unrolling", "lista_constrained", parameter, value): _LATE
       for parameter, value in (("epsilon", -0.5), ("epsilon", WRONG_TYPE), ("lr_dual", 0),
                                ("lr_dual", -0.5), ("lr_dual", WRONG_TYPE))},
    ("benchmark_unrolling", "lista_constrained", "epsilon", 0):
        "accepted: no docstring rule for epsilon=0 (lista_constrained.py)",
    **{("benchmark_unrolling", "alista", parameter, 0):
       "accepted: no docstring rule for 0 (alista.py)"
       for parameter in ("support_percent", "support_max_percent")},
    **{("benchmark_unrolling", "lista_tied", parameter, value):
       "accepted: checked only when training='implicit', at warm_up (lista_tied.py)"
       for parameter, values in (("fixed_point_tol", (0, -0.5, WRONG_TYPE)),
                                 ("fixed_point_max_iter", (0, -1, WRONG_TYPE)))
       for value in values},
}


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
    (klass,) = [solver for solver in bench.get_solvers() if solver.name == component]
    dataset_name = bench.get_test_dataset_names(solver_class=klass)[0]
    objective = ready_objective(benchmark_name, dataset_name)
    test_parameters = {key: item for key, item in (klass.test_config or {}).items()
                       if key != "dataset"}
    solver = klass.get_instance(**{**test_parameters, parameter: value})
    RunContext().set_run_context(objective, objective._dataset, solver, repetition=0,
                                 base_seed=0)
    return solver._set_objective(objective)


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
