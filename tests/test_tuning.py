"""The tuning protocol of ci/tune.py and the run summaries of
solvers_common.results: on a tiny benchmark whose best candidates are known,
the tuner selects them on the validation metric (the test metric points
elsewhere), gives every solver the same number of candidates, ranks a
diverging candidate last, and writes its record into the config."""
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from solvers_common.results import (
    class_attribute,
    final_evaluations,
    first_evaluations,
    metric_alternatives,
    training_summary,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ci"))
import tune  # noqa: E402

# Validation and test losses point to different x: selecting on the test
# data would pick x = TEST_TARGET.
VALIDATION_TARGET, TEST_TARGET = 3.0, 1.0

OBJECTIVE = '''
from benchopt import BaseObjective


class Objective(BaseObjective):
    name = "Tuning check"
    min_benchopt_version = "1.9"
    requirements = []
    validation_metric = {"name": "validation_loss", "better": "lower"}

    def set_data(self, validation_target, test_target):
        self.validation_target, self.test_target = validation_target, test_target

    def evaluate_result(self, x):
        return dict(value=(x - self.test_target) ** 2,
                    validation_loss=(x - self.validation_target) ** 2)

    def get_one_result(self):
        return dict(x=0.0)

    def get_objective(self):
        return dict(validation_target=self.validation_target)
'''
DATASET = f'''
from benchopt import BaseDataset


class Dataset(BaseDataset):
    name = "targets"
    requirements = []

    def get_data(self):
        return dict(validation_target={VALIDATION_TARGET}, test_target={TEST_TARGET})
'''
# Gradient descent on (x - 3)^2 from 0 for five rounds: lr 0.5 lands on 3 in
# one step, 0.1 contracts by 0.8 a step, 1.5 and 10 diverge (factors -2, -19).
DESCENT = '''
from benchopt import BaseSolver
from benchopt.stopping_criterion import NoCriterion


class Solver(BaseSolver):
    name = "descent"
    requirements = []
    sampling_strategy = "callback"
    stopping_criterion = NoCriterion(strategy="callback")
    parameters = {"lr": [0.1], "rounds": [5]}
    tuning_space = {"lr": [0.1, 0.5, 1.5, 10.0]}

    def set_objective(self, validation_target):
        self.target = validation_target

    def run(self, callback):
        self.x = 0.0
        for _ in range(self.rounds):
            if not callback():
                return
            self.x -= self.lr * 2 * (self.x - self.target)

    def get_result(self):
        return dict(x=self.x)
'''
# A constant answer x * scale: twelve candidates, of which the tuner draws
# the budget.
CONSTANT = '''
from benchopt import BaseSolver


class Solver(BaseSolver):
    name = "constant"
    requirements = []
    sampling_strategy = "run_once"
    parameters = {"x": [0.0], "scale": [1.0]}
    tuning_space = {"x": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "scale": [1.0, 2.0]}

    def set_objective(self, validation_target):
        pass

    def run(self, _):
        pass

    def get_result(self):
        return dict(x=self.x * self.scale)
'''
FIXED = '''
from benchopt import BaseSolver


class Solver(BaseSolver):
    name = "fixed"
    requirements = []
    sampling_strategy = "run_once"

    def set_objective(self, validation_target):
        pass

    def run(self, _):
        pass

    def get_result(self):
        return dict(x=2.0)
'''
CONFIG = """\
# A tiny config: its header comment is kept.
max-runs: 10   # enough for the five rounds
n-repetitions: 1
dataset:
  - targets
solver:
  - "descent[rounds=5,lr=0.1]"
  - "constant[scale=1.0]"  # pinned: scale
  - fixed
"""


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tuning") / "benchmark_tuning_check"
    for path, text in {"objective.py": OBJECTIVE, "datasets/targets.py": DATASET,
                       "solvers/descent.py": DESCENT, "solvers/constant.py": CONSTANT,
                       "solvers/fixed.py": FIXED}.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(textwrap.dedent(text))
    (folder / "configs").mkdir()
    (folder / "configs" / "quick.yml").write_text(CONFIG)
    return folder


@pytest.fixture(scope="module")
def tuned(tiny_benchmark):
    config = tiny_benchmark / "configs" / "quick.yml"
    output = tiny_benchmark / "configs" / "quick_tuned.yml"
    results = tiny_benchmark / "outputs" / "tuning.parquet"
    tune.main([str(config), "--budget", "4", "--output", str(output),
               "--results", str(results)])
    from benchopt.results import read_results
    return output.read_text(), read_results(results)


def test_the_tuner_selects_the_known_best_on_the_validation_metric(tuned):
    text, _ = tuned
    solvers = yaml.safe_load(text)["solver"]
    # The descent's best rate (exact after one step), the config's own
    # `rounds` kept, the solver without a space kept as written.
    assert "descent[rounds=5,lr=0.5]" in solvers
    assert '- "descent[rounds=5,lr=0.5]"  # tuned: lr' in text
    assert "fixed" in solvers
    constant = [s for s in solvers if s.startswith("constant")]
    assert len(constant) == 1 and '"  # tuned: x; pinned: scale' in text


def test_a_parameter_the_config_sets_is_pinned(tuned):
    """constant[scale=1.0] # pinned: scale: only x is tuned; descent's lr,
    set to one value by the config, is a starting guess and is tuned."""
    _, df = tuned
    constant = df[df["solver_name"].str.startswith("constant")]
    assert set(constant["p_solver_scale"]) == {1.0}
    assert constant["p_solver_x"].nunique() == 4


def test_the_constant_solver_gets_the_best_of_its_drawn_candidates(tuned):
    text, df = tuned
    rows = df[df["solver_name"].str.startswith("constant")]
    answers = rows["p_solver_x"] * rows["p_solver_scale"]
    best = rows.loc[(answers - VALIDATION_TARGET).abs().idxmin()]
    selected = [s for s in yaml.safe_load(text)["solver"] if s.startswith("constant")][0]
    assert selected == tune.solver_string(
        "constant", {"scale": float(best["p_solver_scale"]), "x": float(best["p_solver_x"])})


def test_every_tuned_solver_gets_the_same_number_of_candidates(tuned):
    _, df = tuned
    per_solver = df.groupby(df["solver_name"].str.split("[", regex=False).str[0])[
        "solver_name"].nunique()
    # `fixed` declares no space: it is not run by the tuner.
    assert per_solver.to_dict() == {"descent": 4, "constant": 4}


def test_the_record_lists_every_candidate_and_the_command(tuned):
    text, _ = tuned
    record = text[text.index(tune.RECORD_START):text.index(tune.RECORD_END)]
    assert "Command: python ci/tune.py" in record and "--budget 4" in record
    assert "4 candidates per tuned solver" in record
    for lr in ("0.1", "0.5", "1.5", "10.0"):
        assert f"#   lr={lr}: validation_loss" in record
    assert "lr=0.5: validation_loss 0  <- selected" in record
    # The diverging rates ended worse than they started.
    assert record.count("(1/1 runs diverged or did not train)") == 2
    # The header comment and the inline comment survive.
    assert text.startswith("# A tiny config")
    assert "max-runs: 10   # enough for the five rounds" in text


def test_a_second_tuning_replaces_the_record(tuned, tmp_path):
    text, _ = tuned
    again = tune.rewrite(text, {}, [tune.RECORD_START, "# new", tune.RECORD_END])
    assert again.count(tune.RECORD_START) == 1 and "# new" in again
    assert "lr=0.5: validation_loss" not in again


def test_a_grid_in_the_config_pins_its_parameter(tiny_benchmark):
    classes = tune.solver_classes(tiny_benchmark)
    config = {"solver": ["constant[scale=[1.0,2.0],x=0.0]"]}
    [(_, variants)] = tune.plan(config, classes, budget=4, seed=0)
    assert [v["fixed"] for v in variants] == [{"scale": 1.0}, {"scale": 2.0}]
    for variant in variants:
        assert list(variant["space"]) == ["x"] and len(variant["candidates"]) == 4
        assert {c["scale"] for c in variant["candidates"]} == {variant["fixed"]["scale"]}
    # With x pinned too, nothing of the space is left to draw from.
    pinned = tune.pinned_by_comment('solver:\n  - "constant[scale=[1.0,2.0]]"  # pinned: x\n')
    assert pinned == {"constant[scale=[1.0,2.0]]": {"x"}}
    [(_, variants)] = tune.plan({"solver": ["constant[scale=[1.0,2.0]]"]}, classes, 4, 0, pinned)
    assert all(v["space"] == {} and v["candidates"] == [] for v in variants)


def test_a_space_smaller_than_the_budget_is_refused(tiny_benchmark):
    config = tiny_benchmark / "configs" / "quick.yml"
    with pytest.raises(SystemExit, match="tuning space has 4 candidates, fewer than the budget 5"):
        tune.main([str(config), "--budget", "5", "--dry-run"])


def test_candidates_are_a_seeded_subset_of_the_product():
    space = {"a": [1, 2, 3], "b": ["x", "y"]}
    first, again = tune.candidates(space, 4, seed=0), tune.candidates(space, 4, seed=0)
    assert first == again and len(first) == 4
    assert len({tuple(c.items()) for c in first}) == 4
    assert all(c["a"] in space["a"] and c["b"] in space["b"] for c in first)
    assert tune.candidates(space, 6, seed=3) == [
        {"a": a, "b": b} for a in space["a"] for b in space["b"]]


def test_solver_strings_read_back_by_benchopt():
    from benchopt.utils.parametrized_name_mixin import _extract_options
    parameters = {"lr": 1e-05, "init": "ista", "flag": True, "levels": "0.1,1", "n": 3}
    name, _, parsed = _extract_options(tune.solver_string("lista", parameters))
    assert name == "lista" and parsed == parameters


def runs(values_by_run, metric="validation_gap"):
    rows = []
    for (solver, rep), values in values_by_run.items():
        for stop_val, value in enumerate(values):
            rows.append(dict(dataset_name="d", objective_name="o", solver_name=solver,
                             idx_rep=rep, stop_val=stop_val, **{f"objective_{metric}": value}))
    return pd.DataFrame(rows)


def test_final_evaluation_is_the_last_row_of_each_run_nan_included():
    # Rows out of order; run (s, 0) ends in NaN in one column only.
    df = pd.DataFrame(dict(
        dataset_name="d", objective_name="o", solver_name=["s", "s", "s", "s", "t"],
        idx_rep=[0, 0, 1, 0, 0], stop_val=[2, 0, 0, 1, 5],
        objective_value=[np.nan, 3.0, 4.0, 2.0, 1.0], time=[2.0, 0.0, 0.0, 1.0, 5.0]))
    last = final_evaluations(df).set_index(["solver_name", "idx_rep"])
    assert last["stop_val"].to_dict() == {("s", 0): 2, ("s", 1): 0, ("t", 0): 5}
    assert np.isnan(last.loc[("s", 0), "objective_value"])  # not 2.0, its last finite
    assert last.loc[("s", 0), "time"] == 2.0
    first = first_evaluations(df).set_index(["solver_name", "idx_rep"])
    assert first.loc[("s", 0), "objective_value"] == 3.0
    # Fewer keys: one row per idx_rep over the selected rows.
    assert list(final_evaluations(df[df["solver_name"] == "s"], ["idx_rep"])["stop_val"]) == [0, 2]


def test_training_summary_flags_runs_that_ended_worse_than_they_started():
    df = runs({("good", 0): [3.0, 1.0, 0.5, 0.7], ("bad", 0): [3.0, 5.0, 2.0, 3.5],
               ("nan", 0): [3.0, 1.0, np.nan]})
    summary = training_summary(df, {"name": "validation_gap", "better": "lower"})
    by = summary.set_index("solver_name")
    assert list(by.loc["good", ["start", "final", "best", "best_stop_val"]]) == [3.0, 0.7, 0.5, 2]
    assert not by.loc["good", "did_not_train"] and not by.loc["good", "diverged"]
    assert by.loc["bad", "did_not_train"] and not by.loc["bad", "diverged"]
    # The final evaluation is the last row, NaN included: never an earlier value.
    assert by.loc["nan", "diverged"] and by.loc["nan", "did_not_train"]
    assert np.isnan(by.loc["nan", "final"]) and by.loc["nan", "best"] == 1.0
    higher = training_summary(df, {"name": "validation_gap", "better": "higher"})
    assert higher.set_index("solver_name").loc["good", "did_not_train"]


def test_work_to_target_is_the_first_evaluation_below_the_reduction():
    df = runs({("s", 0): [1.0, 0.1, 1e-3, 1e-7, 1e-9]})
    df["objective_oracle_calls"] = [0, 10, 20, 30, 40]
    metric = {"name": "validation_gap", "better": "lower", "work": "oracle_calls",
              "reduction": 1e-6}
    summary = training_summary(df, metric)
    assert summary["score"].iloc[0] == 30
    never = training_summary(df, {**metric, "reduction": 1e-10})
    assert never["score"].iloc[0] == np.inf
    # Reached at 30, left at 40, back at 50: it stays from 50 on.
    rebound = runs({("s", 0): [1.0, 0.1, 1e-7, 1e-3, 1e-8, 1e-9]})
    rebound["objective_oracle_calls"] = [0, 10, 20, 30, 40, 50]
    assert training_summary(rebound, metric)["score"].iloc[0] == 40
    # Reached, then left for good: not converged to the target.
    rebound["objective_validation_gap"] = [1.0, 0.1, 1e-7, 1e-8, 1e-3, 1e-3]
    assert training_summary(rebound, metric)["score"].iloc[0] == np.inf
    # A solver that cannot count its work (NaN) falls through to the next
    # alternative.
    df["objective_oracle_calls"] = np.nan
    fallback = training_summary(df, [metric, {"name": "validation_gap", "better": "lower"}])
    assert fallback["score"].iloc[0] == 1e-9


def test_the_first_reported_alternative_applies():
    df = runs({("s", 0): [2.0, 1.0]}, metric="validation_mse")
    alternatives = [{"name": "validation_acc", "better": "higher"},
                    {"name": "validation_mse", "better": "lower"}]
    assert training_summary(df, alternatives)["metric"].tolist() == ["validation_mse"]


@pytest.mark.parametrize("declared", [
    {"name": "v"}, {"name": "v", "better": "up"}, [],
    {"name": "v", "better": "higher", "work": "w", "reduction": 0.1},
    {"name": "v", "better": "lower", "work": "w"},
    {"name": "v", "better": "lower", "work": "w", "reduction": 2.0},
])
def test_bad_metric_declarations_are_refused(declared):
    with pytest.raises(ValueError, match="validation_metric"):
        metric_alternatives(declared)


def test_class_attribute_reads_literals_without_importing(tmp_path):
    source = tmp_path / "solver.py"
    source.write_text("import missing_module\n\nclass Solver:\n    tuning_space = "
                      "{'lr': [1e-3, 1e-2]}\n    other = len([])\n")
    assert class_attribute(source, "Solver", "tuning_space") == {"lr": [1e-3, 1e-2]}
    assert class_attribute(source, "Solver", "absent") is None
    with pytest.raises(ValueError, match="must be a literal"):
        class_attribute(source, "Solver", "other")


def test_a_broken_learning_rate_is_flagged_did_not_train(tmp_path):
    """A real trained solver with a learning rate far too large (Adam 1.0 on
    a tiny unrolling problem: its validation gap goes from 0.06 to about 140)
    is flagged, the same solver at 1e-3 is not. (At 10 the run produces NaN,
    which benchopt records as diverged and does not save: the tuner counts a
    candidate without rows as failed.)"""
    import subprocess

    from benchopt.results import read_results
    from benchopt_runs import TIMEOUT, benchopt_command

    output = tmp_path / "broken.parquet"
    command = benchopt_command(
        "benchmark_unrolling",
        ["-d", "simulated[n_features=8,n_atoms=16,n_train=64,n_test=32,n_validation=32]",
         "-o", "Unrolled sparse coding[n_layers=3,noise_levels='',extra_layers='0']",
         "-s", "lista[batch_size=16,lr=[0.001,1.0],epochs=6,init=ista]", "-n", "8"], output)
    subprocess.run(command, check=True, capture_output=True, timeout=TIMEOUT)
    summary = training_summary(read_results(output),
                               {"name": "validation_gap", "better": "lower"})
    flagged = dict(zip(summary["solver_name"].str.extract(r"lr=([0-9.]+)")[0],
                       summary["did_not_train"]))
    assert flagged == {"0.001": False, "1.0": True}


def test_training_report_names_the_flagged_runs(tmp_path):
    import training_report

    df = runs({("lista[lr=0.001]", 0): [0.3, 0.2, 0.1], ("lista[lr=1.0]", 0): [0.3, 0.1, 140.0]})
    df["time"] = df["stop_val"].astype(float)
    from benchopt.results import save_results
    result_file = save_results(df, tmp_path / "runs.parquet", uniquify=False)
    lines = training_report.report(ROOT / "benchmark_unrolling", result_file)
    text = "\n".join(lines)
    assert "lista[lr=0.001]: validation_gap 0.3 -> 0.1 (best 0.1 at 2)" in text
    assert "lista[lr=1.0]: validation_gap 0.3 -> 140 (best 0.1 at 1)  DID NOT TRAIN" in text
    assert lines[-1] == "  1 of 2 runs flagged."


def test_a_grid_in_the_solver_defaults_makes_variants():
    class Solver:
        parameters = {"training": ["unrolled", "implicit"], "lr": [1e-3], "tol": [1e-5]}
        tuning_space = {"lr": [1e-4, 3e-4, 1e-3, 3e-3]}

    [(_, variants)] = tune.plan({"solver": ["tied[tol=1e-06]"]}, {"tied": Solver}, 4, 0)
    assert [v["fixed"] for v in variants] == [
        {"training": "unrolled", "tol": 1e-06}, {"training": "implicit", "tol": 1e-06}]
    # What the config wrote, kept when every candidate diverges.
    [(_, variants)] = tune.plan({"solver": ["tied[lr=0.01]"]}, {"tied": Solver}, 4, 0)
    assert [v["written"] for v in variants] == [
        {"training": "unrolled", "lr": 0.01}, {"training": "implicit", "lr": 0.01}]
    assert all(c["training"] == v["fixed"]["training"]
               for v in variants for c in v["candidates"])


def test_ties_on_the_score_are_broken_by_the_final_value():
    inf = np.inf
    # Candidates 0 and 1 never reach the work target; 1 ends closer. 2 failed.
    losses = pd.DataFrame({"d": [inf, inf, inf]})
    finals = pd.DataFrame({"d": [1e-3, 1e-5, inf]})
    assert tune.select(losses, finals) == 1
    # A candidate that reaches the target beats any that does not.
    losses = pd.DataFrame({"d": [inf, 5.0, inf]})
    assert tune.select(losses, finals) == 1
    losses, finals = pd.DataFrame({"d": [3.0, 2.0, inf]}), pd.DataFrame({"d": [1e-9, 1e-3, inf]})
    assert tune.select(losses, finals) == 1
    # Every candidate failed: nothing is selected.
    assert tune.select(pd.DataFrame({"d": [inf]}), pd.DataFrame({"d": [inf]})) is None
