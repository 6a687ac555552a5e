"""Helpers shared by the custom plots of benchmark_bilevel."""
import re

import numpy as np


def split_solver_name(full_name):
    """``"soba[batch_size=64,step_size=0.1]"`` -> ``("soba", {...})``."""
    match = re.fullmatch(r"([^\[]+)\[(.*)\]", full_name)
    if match is None:
        return full_name, {}
    pairs = (item.split("=", 1) for item in match.group(2).split(",") if "=" in item)
    return match.group(1), dict(pairs)


def solver_labels(solver_names):
    """A label per solver: its name, with the parameters in which it differs
    from the other runs of the same solver (one run per solver in most
    configs gives bare names)."""
    parsed = {name: split_solver_name(name) for name in solver_names}
    labels = {}
    for name, (base, parameters) in parsed.items():
        siblings = [other for other_base, other in parsed.values() if other_base == base]
        varying = [key for key, value in parameters.items()
                   if any(other.get(key) != value for other in siblings)]
        labels[name] = base + ("[" + ",".join(f"{key}={parameters[key]}" for key in varying)
                               + "]" if varying else "")
    return labels


def select(df, dataset, objective):
    return df.query("dataset_name == @dataset and objective_name == @objective")


def median_curve(df, column):
    """(median time, median ``column``) over repetitions at each evaluation
    of one solver, in evaluation order."""
    grouped = df.groupby("stop_val")[["time", column]].median().sort_index()
    return grouped["time"].to_numpy(), grouped[column].to_numpy()


def positive_or_nan(values):
    """Values for a log axis: non-positive ones (h - h* at float precision,
    the best run's own minimum) are not drawn."""
    values = np.asarray(values, dtype=float)
    return np.where(values > 0, values, np.nan)
