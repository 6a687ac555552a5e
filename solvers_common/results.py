"""Reading benchopt's result tables (the plots of ``plots/``, the results
site and the tuner of ``ci/tune.py``), and the literal declarations of a
benchmark's classes that say how to read them (``primary_metric``,
``validation_metric``, ``tuning_space``).

A *run* is one (dataset, objective, solver, repetition): the rows of
:data:`RUN_KEYS`. Its *final evaluation* is its row of largest ``stop_val``,
whatever its values (a run that ended in NaN ends in NaN: no value is taken
from an earlier row), and its *first evaluation* the row of smallest
``stop_val``: for the trained solvers the untrained state (their callback is
called before the first round).
"""
import ast
import math

import numpy as np
import pandas as pd

RUN_KEYS = ["dataset_name", "objective_name", "solver_name", "idx_rep"]
BETTER = ("lower", "higher")


def final_evaluations(df, keys=RUN_KEYS):
    """The final evaluation of each run: per group of ``keys`` (default
    :data:`RUN_KEYS`; the columns present), its row of largest ``stop_val``,
    every column as that row has it, NaN included (``GroupBy.last`` would
    take each column's last non-NaN value and hide a divergence). The one
    reader of "the end of a run" for the plots, the site, the claims and the
    tuner."""
    keys = [key for key in keys if key in df]
    ordered = df.sort_values("stop_val", kind="stable")
    return ordered.groupby(keys, sort=False).tail(1) if keys else ordered.tail(1)


def first_evaluations(df, keys=RUN_KEYS):
    """The first evaluation of each run (its row of smallest ``stop_val``;
    for trained solvers, the untrained network), as :func:`final_evaluations`."""
    keys = [key for key in keys if key in df]
    ordered = df.sort_values("stop_val", kind="stable")
    return ordered.groupby(keys, sort=False).head(1) if keys else ordered.head(1)


def final_results(df):
    """The first stored ``final_results`` of the result rows ``df`` (what an
    objective's ``save_final_results`` kept at the end of a run), or None."""
    if "final_results" not in df:
        return None
    stored = df["final_results"].dropna()
    return stored.iloc[0] if len(stored) else None


def class_attribute(path, class_name, attribute):
    """The literal value of ``class_name.attribute`` in the Python file
    ``path``, read from its source with ``ast.literal_eval`` (importing a
    benchmark's file would import its ``benchmark_utils``); None when the
    class does not assign it. Raises ValueError when the value is not a
    literal."""
    tree = ast.parse(open(path, encoding="utf-8").read(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for statement in node.body:
                if (isinstance(statement, ast.Assign)
                        and any(getattr(t, "id", None) == attribute
                                for t in statement.targets)):
                    try:
                        return ast.literal_eval(statement.value)
                    except ValueError as error:
                        raise ValueError(f"{class_name}.{attribute} in {path} must be a "
                                         f"literal (read without importing): {error}") from None
    return None


def metric_alternatives(declared, attribute="validation_metric"):
    """``declared`` (a dict or a list of dicts, as an Objective writes
    ``primary_metric`` or ``validation_metric``) as a list of checked dicts:
    ``name``, ``better`` in :data:`BETTER`, and optionally ``work`` (a
    cumulative work column) with ``reduction`` in (0, 1), which makes a run's
    score the work it needed to divide the metric by ``1 / reduction``."""
    alternatives = declared if isinstance(declared, list) else [declared]
    if not alternatives:
        raise ValueError(f"{attribute} is empty.")
    for metric in alternatives:
        if (not isinstance(metric, dict) or not metric.get("name")
                or metric.get("better") not in BETTER):
            raise ValueError(f"{attribute} must be {{'name': ..., 'better': 'lower' or "
                             f"'higher'}} or a list of them, got {declared!r}.")
        if ("work" in metric) != ("reduction" in metric):
            raise ValueError(f"{attribute} {metric!r}: 'work' and 'reduction' go together.")
        if "work" in metric:
            if not 0 < metric["reduction"] < 1 or metric["better"] != "lower":
                raise ValueError(f"{attribute} {metric!r}: 'reduction' must be in (0, 1) and "
                                 "'better' 'lower' (the work to divide the metric by "
                                 "1 / reduction).")
    return list(alternatives)


def metric_of_run(rows, alternatives):
    """The first of ``alternatives`` whose column the rows of one run have
    with at least one non-NaN value (and, for a metric with a ``work``
    counter, a counter with one too: a solver that cannot count its work
    falls through to the next alternative), or None."""
    for metric in alternatives:
        columns = [f"objective_{metric['name']}"]
        if "work" in metric:
            columns.append(f"objective_{metric['work']}")
        if all(column in rows and rows[column].notna().any() for column in columns):
            return metric
    return None


def is_worse(value, reference, better):
    """Whether ``value`` is worse than ``reference`` (NaN is worse than any
    number)."""
    if math.isnan(value):
        return not math.isnan(reference)
    return value > reference if better == "lower" else value < reference


def work_to_target(rows, metric):
    """The ``work`` of the evaluation of a run (rows sorted by ``stop_val``)
    from which ``metric`` stays at most ``reduction`` times its first value
    until the run's end; +inf when the final value is above that target (a
    run that reaches it and leaves it again has not converged to it)."""
    values = rows[f"objective_{metric['name']}"].to_numpy(dtype=float)
    work = rows[f"objective_{metric['work']}"].to_numpy(dtype=float)
    above = np.flatnonzero(~(values <= metric["reduction"] * values[0]))
    first = above[-1] + 1 if len(above) else 0
    return float(work[first]) if first < len(values) else math.inf


def training_summary(df, alternatives):
    """One row per run: the validation metric it is read on (``metric``),
    its value at the first evaluation (``start``), at the final one
    (``final``), its best value and the ``stop_val`` of the first evaluation
    that attains it (``best_stop_val``: the epoch for solvers evaluated once
    per epoch), ``diverged`` (final value NaN) and ``did_not_train``: the
    final value is worse than the first (a diverged run is one). ``score`` is
    what the tuner selects on: the final value, or, for a metric with a
    ``work`` column, the work to reach the target (:func:`work_to_target`).
    Runs that report none of the alternatives are left out."""
    alternatives = metric_alternatives(alternatives)
    summaries = []
    for key, rows in df.sort_values("stop_val", kind="stable").groupby(RUN_KEYS, sort=False):
        metric = metric_of_run(rows, alternatives)
        if metric is None:
            continue
        values = rows[f"objective_{metric['name']}"].to_numpy(dtype=float)
        start, final = float(values[0]), float(values[-1])
        finite = np.where(np.isnan(values), np.inf if metric["better"] == "lower" else -np.inf,
                          values)
        best_index = int(np.argmin(finite) if metric["better"] == "lower" else np.argmax(finite))
        score = work_to_target(rows, metric) if "work" in metric else final
        summaries.append(dict(
            zip(RUN_KEYS, key), metric=metric["name"], better=metric["better"],
            start=start, final=final, best=float(values[best_index]),
            best_stop_val=rows["stop_val"].iloc[best_index],
            diverged=math.isnan(final),
            did_not_train=is_worse(final, start, metric["better"]),
            score=score))
    columns = [*RUN_KEYS, "metric", "better", "start", "final", "best", "best_stop_val",
               "diverged", "did_not_train", "score"]
    return pd.DataFrame(summaries, columns=columns)
