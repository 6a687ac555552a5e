"""Every shipped run config parses and names only existing solvers, datasets,
objective parameters and `benchopt run` options, checked with benchopt's own
validation, so that no config rots when the code changes."""
from pathlib import Path

import pytest
import yaml
from benchopt.benchmark import Benchmark
from benchopt.cli.main import run as benchopt_run

ROOT = Path(__file__).parents[1]
RUN_OPTIONS = {parameter.name for parameter in benchopt_run.params}
CONFIGS = sorted(
    path for path in ROOT.glob("benchmark_*/configs/*.yml")
    # Parallel configs describe a backend, not a run (see test_parallel.py).
    if not path.name.startswith("parallel_")
)


def test_every_benchmark_has_a_quick_config():
    benchmarks = sorted(path.parent for path in ROOT.glob("benchmark_*/objective.py"))
    assert benchmarks
    for benchmark in benchmarks:
        assert (benchmark / "configs" / "quick.yml").exists(), benchmark.name


@pytest.mark.parametrize("config_file", CONFIGS, ids=lambda p: f"{p.parents[1].name}/{p.name}")
def test_config_is_valid(config_file):
    config = yaml.safe_load(config_file.read_text())
    assert isinstance(config, dict), f"{config_file} is not a mapping"
    unknown = {key for key in config if key.replace("-", "_") not in RUN_OPTIONS}
    assert not unknown, f"unknown benchopt run options {unknown} in {config_file}"
    benchmark = Benchmark(config_file.parents[1])

    def as_list(value):
        return value if isinstance(value, list) else [value]

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
