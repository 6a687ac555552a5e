"""Helpers shared by the custom plots of benchmark_unrolling."""
import re

from solvers_common.results import final_evaluations


def final_points(df, dataset, objective):
    """Last evaluation of every solver (and repetition) on one dataset and
    objective, averaged over repetitions: one row per solver."""
    df = df.query("dataset_name == @dataset and objective_name == @objective")
    last = final_evaluations(df, ["solver_name", "idx_rep"])
    return last.groupby("solver_name").mean(numeric_only=True)


def indexed_columns(df, prefix):
    """Columns named ``objective_<prefix><number>`` sorted by their number,
    with the numbers: ``[(number, column), ...]``."""
    pattern = re.compile(rf"^objective_{re.escape(prefix)}([0-9.e+-]+)$")
    found = [(float(m.group(1)), c) for c in df.columns if (m := pattern.match(c))]
    return sorted(found)


def short_labels(solver_names):
    """Solver names without the parameters that all solvers of the same kind
    share: ``lista[init=random,lr=0.001]`` and ``lista[init=ista,lr=0.001]``
    become ``lista[init=random]`` and ``lista[init=ista]``."""
    parsed = {}
    for full in solver_names:
        match = re.fullmatch(r"([^\[]+)\[(.*)\]", full)
        base, arguments = (match.group(1), match.group(2)) if match else (full, "")
        parsed[full] = (base, dict(
            item.split("=", 1) for item in re.split(r",(?![^()\[\]]*[)\]])", arguments)
            if "=" in item))
    labels = {}
    for full, (base, arguments) in parsed.items():
        siblings = [args for b, args in parsed.values() if b == base]
        varying = [key for key, value in arguments.items()
                   if any(args.get(key) != value for args in siblings)]
        labels[full] = base + (
            "[" + ",".join(f"{key}={arguments[key]}" for key in varying) + "]"
            if varying else "")
    return labels


def final_curves(plot, df, dataset, objective, prefix):
    """One curve per solver through its final ``objective_<prefix><x>``
    values, with x the number in the column names (a layer, a noise level)."""
    final = final_points(df, dataset, objective)
    labels = short_labels(final.index)
    columns = indexed_columns(final, prefix)
    if not columns:  # for example no noise level (noise_levels=''): no plot
        return []
    return [
        dict(x=[x for x, _ in columns], y=[row[column] for _, column in columns],
             label=labels[solver], **plot.get_style(solver))
        for solver, row in final.iterrows()
    ]
