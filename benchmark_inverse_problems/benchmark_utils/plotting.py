"""Helpers of the custom plots of benchmark_inverse_problems."""
import re

from solvers_common.results import final_evaluations


def final_points(df, dataset, objective):
    """Last evaluation of every solver, averaged over repetitions."""
    df = df.query("dataset_name == @dataset and objective_name == @objective")
    last = final_evaluations(df, ["solver_name", "idx_rep"])
    return last.groupby("solver_name").mean(numeric_only=True)


def final_curves(plot, df, dataset, objective, prefix):
    """One curve per solver through its final ``objective_<prefix><x>``
    values, x the number in the column names (an iteration, a noise level)."""
    final = final_points(df, dataset, objective)
    pattern = re.compile(rf"^objective_{re.escape(prefix)}([0-9.e+-]+)$")
    curves = []
    for solver, row in final.iterrows():
        points = sorted((float(m.group(1)), row[c]) for c in final.columns
                        if (m := pattern.match(c)) and row[c] == row[c])
        curves.append(dict(x=[x for x, _ in points], y=[y for _, y in points],
                           label=solver, **plot.get_style(solver)))
    return curves
