"""Every shipped run config parses, names only existing solvers, datasets,
objective parameters and `benchopt run` options (checked with benchopt's own
validation), and runs: each of its objectives and solvers, with the config's
parameters, is run for one evaluation on a tiny stand-in for its dataset, so
that no config rots when the code changes."""
import math
from pathlib import Path

import pytest
import torch
import yaml
from benchopt.benchmark import Benchmark
from benchopt.cli.main import run as benchopt_run
from benchopt.utils.parametrized_name_mixin import _get_used_parameters, product_param
from benchopt.utils.run_context import RunContext

ROOT = Path(__file__).parents[1]
RUN_OPTIONS = {parameter.name for parameter in benchopt_run.params}
CONFIGS = sorted(
    path for path in ROOT.glob("benchmark_*/configs/*.yml")
    # Parallel configs describe a backend, not a run (see test_parallel.py).
    if not path.name.startswith("parallel_")
)

# Metrics documented as NaN where a solver cannot compute them.
NAN_WHEN_NOT_COUNTED = {"objective_oracle_calls"}


def config_id(path):
    return f"{path.parents[1].name}/{path.name}"


def as_list(value):
    return value if isinstance(value, list) else [value]


def test_every_benchmark_has_a_quick_config():
    benchmarks = sorted(path.parent for path in ROOT.glob("benchmark_*/objective.py"))
    assert benchmarks
    for benchmark in benchmarks:
        assert (benchmark / "configs" / "quick.yml").exists(), benchmark.name


@pytest.mark.parametrize("config_file", CONFIGS, ids=config_id)
def test_config_is_valid(config_file):
    config = yaml.safe_load(config_file.read_text())
    assert isinstance(config, dict), f"{config_file} is not a mapping"
    unknown = {key for key in config if key.replace("-", "_") not in RUN_OPTIONS}
    assert not unknown, f"unknown benchopt run options {unknown} in {config_file}"
    benchmark = Benchmark(config_file.parents[1])

    # Each call raises when a name or a parameter does not exist.
    benchmark.check_dataset_patterns(as_list(config.get("dataset", [])))
    benchmark.check_objective_filters(as_list(config.get("objective", [])))
    benchmark.check_solver_patterns(as_list(config.get("solver", [])))


def test_validation_catches_unknown_names(tmp_path):
    # The check above must be able to fail: an unknown solver, an unknown
    # parameter and an unknown option are all rejected.
    benchmark = Benchmark(ROOT / "benchmark_unrolling")
    with pytest.raises(Exception, match="did not match any solver"):
        benchmark.check_solver_patterns(["no_such_solver"])
    with pytest.raises(ValueError, match="Unknown parameter"):
        benchmark.check_solver_patterns(["lista[no_such_parameter=1]"])
    assert "max_runs" in RUN_OPTIONS and "no_such_option" not in RUN_OPTIONS


# ---------------------------------------------------------------------------
# Every config runs.
#
# The stand-in for a dataset a config names is, unless listed below, the
# same dataset with its benchopt `test_parameters` (the tiny sizes of
# `benchopt test`). Datasets that need files, and those whose test sizes are
# still large for a run of every solver of a config, are listed: (stand-in,
# parameters forced on top of the stand-in's test_parameters). Either way the
# stand-in keeps the config's other parameters of that dataset (the noise of
# `simulated`, the corruption of `datacleaning`, ...): only sizes and sources
# change. Image datasets become Gaussian clusters of their image size (one
# channel). A dataset whose stand-in is skipped (files missing) fails the test
# with benchopt's reason: give it a stand-in here.
TINY_IMAGES = {"n_train": 24, "n_test": 12, "n_classes": 10}
STAND_INS = {
    "benchmark_unrolling": {
        "patches": ("simulated", {}),
    },
    "benchmark_bilevel": {
        "ijcnn1": ("simulated", {}),
        "datacleaning": ("datacleaning", {"source": "digits"}),
        "libsvm_sparse": ("lasso_simulated", {}),
    },
    "benchmark_sparse_training": {
        "simulated": ("simulated", {"n_train": 24, "n_test": 12}),
        "digits": ("simulated", {**TINY_IMAGES, "image_size": 8}),
        "mnist": ("simulated", {**TINY_IMAGES, "image_size": 28}),
        "fashion_mnist": ("simulated", {**TINY_IMAGES, "image_size": 28}),
        # 32 x 32 in the paper; 8 x 8 keeps ResNet-18's four stages (its
        # last one sees 1 x 1 maps) at a 16th of the cost.
        "cifar10": ("simulated", {**TINY_IMAGES, "image_size": 8}),
    },
    # Every source becomes 16 x 16 crops of scikit-image's bundled images
    # (offline), large enough for a 4-level Glow.
    "benchmark_inverse_problems": {
        "images": ("images", {"source": "skimage", "crop_size": 16}),
    },
}
# Solver parameters that only size a run: the smallest batch of the
# stand-ins, one epoch, an evaluation every 2 iterations; and, at most, the
# flows of 2 steps of width 16 per level (the GPU config's GLOW-Prox, 18
# steps of width 512, took 130 s for one step on 16 x 16 crops).
SOLVER_BUDGET = {"batch_size": 12, "epochs": 1, "eval_freq": 2}
SOLVER_SIZE_CAPS = {"batch_size": 12, "depth": 2, "hidden_channels": 16}
# Objective parameters that only size the evaluation: the restoration
# iterations the objective runs for every solver (the GPU config's 1,000
# iterations, with a score per iterate, take minutes even on tiny images).
OBJECTIVE_BUDGET = {"n_iterations": 10}


def parameter_names(klass):
    """Names of ``klass.parameters``, coupled names ("n_train, n_test") split."""
    return {name.strip() for key in klass.parameters for name in key.split(",")}


def expand(klass, params):
    """The parameter dicts of every instance of benchopt's grid."""
    return list(_get_used_parameters(klass, params))


def stand_in_datasets(benchmark, config):
    """(config's dataset name, stand-in instance) for every dataset of the
    config's grid."""
    classes = {klass.name: klass for klass in benchmark.get_datasets()}
    stand_ins = STAND_INS[benchmark.benchmark_dir.name]
    instances = []
    for klass, params in benchmark.check_dataset_patterns(as_list(config["dataset"])):
        name, forced = stand_ins.get(klass.name, (klass.name, {}))
        stand_in = classes[name]
        test_parameters = next(product_param(getattr(stand_in, "test_parameters", {})))
        forced = {**test_parameters, **forced}
        for parameters in expand(klass, params):
            kept = {key: value for key, value in parameters.items()
                    if key in parameter_names(stand_in) and key not in forced}
            instances.append((klass.name, stand_in.get_instance(**kept, **forced)))
    return instances


def tiny_budget(solver_class, parameters):
    names = parameter_names(solver_class)
    budget = {key: value for key, value in SOLVER_BUDGET.items() if key in names}
    for key, cap in SOLVER_SIZE_CAPS.items():
        if key in names and parameters.get(key) is not None:
            budget[key] = min(parameters[key], cap)
    return {**parameters, **budget}


def run_for_one_evaluation(objective, solver):
    """What benchopt's runner does, up to the first evaluation after some
    work: the callback lets the solver take one round of steps."""
    if solver._solver_strategy == "callback":
        calls = []

        def callback():
            calls.append(None)
            return len(calls) < 2
        solver.pre_run_hook(callback)
        solver.run(callback)
        assert calls, f"{solver} never called the callback"
    else:
        solver.pre_run_hook(1)
        solver.run(1)
    return objective(solver.get_result())[0]


@pytest.fixture(autouse=True)
def restore_thread_count():
    """The bilevel objective sets torch to one thread."""
    n_threads = torch.get_num_threads()
    yield
    torch.set_num_threads(n_threads)


@pytest.mark.parametrize("config_file", CONFIGS, ids=config_id)
def test_config_runs_on_a_tiny_stand_in(config_file):
    """Every solver of the config's grid, with the config's parameters, runs
    and is scored with finite metrics. A config may be a union of settings,
    where the objective skips some (dataset, objective) pairs and a solver
    some problems, but each dataset, each objective and each solver must run
    somewhere (a dataset skipped everywhere, for instance for missing files,
    fails)."""
    config = yaml.safe_load(config_file.read_text())
    benchmark = Benchmark(config_file.parents[1])
    objectives = benchmark.check_objective_filters(as_list(config.get("objective", [])))
    solvers = [(klass, tiny_budget(klass, parameters))
               for klass, params in benchmark.check_solver_patterns(as_list(config["solver"]))
               for parameters in expand(klass, params)]
    skipped = {index: [] for index in range(len(solvers))}
    ran = set()
    pairs = {}  # (dataset, objective): why the objective skips them, or None
    for dataset_name, dataset in stand_in_datasets(benchmark, config):
        for objective_class, objective_params in objectives:
            for objective_parameters in expand(objective_class, objective_params):
                objective_parameters.update(
                    {key: min(value, objective_parameters.get(key, value))
                     for key, value in OBJECTIVE_BUDGET.items()
                     if key in parameter_names(objective_class)})
                objective = objective_class.get_instance(**objective_parameters)
                RunContext().set_run_context(objective, dataset, "dummy", repetition=0,
                                             base_seed=0)
                where = f"{config_id(config_file)}: {objective} on {dataset} ({dataset_name})"
                skip, reason = objective._set_dataset(dataset)
                pairs[f"{dataset_name}: {dataset}", str(objective)] = reason if skip else None
                if skip:
                    continue
                for index, (solver_class, solver_parameters) in enumerate(solvers):
                    solver = solver_class.get_instance(**solver_parameters)
                    RunContext().set_run_context(objective, dataset, solver, repetition=0,
                                                 base_seed=0)
                    skip, reason = solver._set_objective(objective)
                    if skip:
                        skipped[index].append(f"{where}: {reason}")
                        continue
                    solver._warm_up()
                    metrics = run_for_one_evaluation(objective, solver)
                    values = {key: value for key, value in metrics.items()
                              if key.startswith("objective_")}
                    assert values, f"{solver} on {where}: no metric"
                    # oracle_calls is NaN by contract for a bilevel solver that
                    # cannot count its work (tests/test_bilevel_work.py checks
                    # the counts); every other metric must be a number.
                    not_finite = [key for key, value in values.items()
                                  if not math.isfinite(value)
                                  and key not in NAN_WHEN_NOT_COUNTED]
                    assert not not_finite, f"{solver} on {where}: {not_finite} not finite"
                    ran.add(index)
    for position, kind in ((0, "dataset"), (1, "objective")):
        reasons = {}
        for pair, reason in pairs.items():
            reasons.setdefault(pair[position], []).append(reason)
        never = {name: found for name, found in reasons.items() if None not in found}
        assert not never, (f"{kind} skipped by every pairing of the config (a dataset that "
                           f"needs files needs a stand-in in STAND_INS): {never}")
    never_ran = {str(solvers[index][0].get_instance(**solvers[index][1])): skipped[index]
                 for index in skipped if index not in ran}
    assert not never_ran, f"solvers skipped on every problem of the config: {never_ran}"


# ---------------------------------------------------------------------------
# Parameters whose one value is a set of numbers: noise_levels of
# benchmark_unrolling, written as one quoted string of comma-separated values.
TINY_SIMULATED = "simulated[n_features=8,n_atoms=16,n_train=48,n_test=16]"


def unrolling_objectives(selector):
    """The objective instances of an `-o` selector (a string, or a config's
    nested mapping), set on the tiny simulated dataset."""
    benchmark = Benchmark(ROOT / "benchmark_unrolling")
    ((dataset_class, dataset_params),) = benchmark.check_dataset_patterns([TINY_SIMULATED])
    dataset = dataset_class.get_instance(**expand(dataset_class, dataset_params)[0])
    instances = []
    for klass, params in benchmark.check_objective_filters([selector]):
        for parameters in expand(klass, params):
            objective = klass.get_instance(**parameters)
            RunContext().set_run_context(objective, dataset, "dummy", repetition=0, base_seed=0)
            skip, reason = objective._set_dataset(dataset)
            assert not skip, reason
            instances.append(objective)
    return instances


def noise_metric_levels(objective):
    """The sigmas of the objective's gap_input_noise_<sigma> metrics."""
    one_result = objective.get_one_result()
    metrics = objective.evaluate_result(**one_result)
    return sorted(float(key.rsplit("_", 1)[1]) for key in metrics
                  if key.startswith("gap_input_noise_"))


@pytest.mark.parametrize("selector, levels", [
    # The command line: -o "Unrolled sparse coding[noise_levels='0.1,1,10']".
    ("Unrolled sparse coding[n_layers=3,noise_levels='0.1,1,10']", [[0.1, 1.0, 10.0]]),
    ('Unrolled sparse coding[n_layers=3,noise_levels="0.1, 1e-2"]', [[0.01, 0.1]]),
    # A config's nested form.
    ({"Unrolled sparse coding": {"n_layers": 3, "noise_levels": "0.1,1"}}, [[0.1, 1.0]]),
    ({"Unrolled sparse coding": {"n_layers": 3, "noise_levels": [[0.1, 1.0]]}}, [[0.1, 1.0]]),
    # One number is one level; a list of them, benchopt's grid, one
    # objective per level; a list of strings, one objective per set.
    ("Unrolled sparse coding[n_layers=3,noise_levels=0.3]", [[0.3]]),
    ("Unrolled sparse coding[n_layers=3,noise_levels=[0.1,1.0]]", [[0.1], [1.0]]),
    ("Unrolled sparse coding[n_layers=3,noise_levels=['0.1,1','2']]", [[0.1, 1.0], [2.0]]),
    ("Unrolled sparse coding[n_layers=3,noise_levels='']", [[]]),
    ("Unrolled sparse coding[n_layers=3]", [[0.05, 0.1, 0.2]]),  # the default
])
def test_noise_levels_from_the_command_line_and_configs(selector, levels):
    objectives = unrolling_objectives(selector)
    assert [noise_metric_levels(objective) for objective in objectives] == levels
    for objective in objectives:
        metrics = objective.evaluate_result(**objective.get_one_result())
        assert len([key for key in metrics if key.startswith("gap_iterate_noise_")]) == len(
            noise_metric_levels(objective))


@pytest.mark.parametrize("noise_levels", [
    "'0,1'", "'0.1,-1'", "'0.1,abc'", "'0.1,,1'", "'0.1,0.1'", "'inf'", "True", "-0.5",
])
def test_bad_noise_levels_raise_value_error(noise_levels):
    with pytest.raises(ValueError, match="noise_levels"):
        unrolling_objectives(f"Unrolled sparse coding[n_layers=3,noise_levels={noise_levels}]")


def test_shipped_configs_give_noise_levels_as_one_string():
    # noise_levels=(0.01,0.03) runs, but as a grid of one objective per level
    # (a full training each): every shipped config writes one string.
    for config_file in ROOT.glob("benchmark_unrolling/configs/*.yml"):
        config = yaml.safe_load(config_file.read_text())
        benchmark = Benchmark(config_file.parents[1])
        for klass, params in benchmark.check_objective_filters(as_list(config["objective"])):
            for parameters in expand(klass, params):
                assert isinstance(parameters["noise_levels"], str), (
                    f"{config_file.name}: noise_levels={parameters['noise_levels']!r}")
