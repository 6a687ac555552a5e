"""Helpers shared by the custom plots of benchmark_sparse_training."""
import re

from solvers_common.results import final_evaluations, first_evaluations


def final_points(df, dataset, objective):
    """Last evaluation of every solver setting (and repetition) on one dataset
    and objective, averaged over repetitions: one row per solver setting."""
    df = df.query("dataset_name == @dataset and objective_name == @objective")
    last = final_evaluations(df, ["solver_name", "idx_rep"])
    return last.groupby("solver_name").mean(numeric_only=True)


def _split(solver_name):
    """``"linbreg[lmbd=0.1,lr=0.1]"`` -> ``("linbreg", {"lmbd": "0.1", "lr": "0.1"})``."""
    match = re.fullmatch(r"([^\[]+)\[(.*)\]", solver_name)
    if match is None:
        return solver_name, {}
    items = re.split(r",(?![^()\[\]]*[)\]])", match.group(2))
    return match.group(1), dict(item.split("=", 1) for item in items if "=" in item)


def legend_labels(solver_names):
    """Each solver's name with only the parameters that differ between the
    settings of that solver, so that legends stay readable:
    ``linbreg[lmbd=0.1,lr=0.1]`` and ``linbreg[lmbd=0.01,lr=0.1]`` become
    ``linbreg[lmbd=0.1]`` and ``linbreg[lmbd=0.01]``, a lone ``sgd[...]``
    becomes ``sgd``."""
    parsed = {name: _split(name) for name in solver_names}
    labels = {}
    for name, (base, arguments) in parsed.items():
        siblings = [other_arguments for other, other_arguments in parsed.values()
                    if other == base]
        varying = [key for key, value in arguments.items()
                   if any(sibling.get(key) != value for sibling in siblings)]
        shown = ",".join(f"{key}={arguments[key]}" for key in varying)
        labels[name] = f"{base}[{shown}]" if shown else base
    return labels


# Filled markers that stay visible on a single point; benchopt's default
# style indexes all of matplotlib's markers, whose second one is a pixel.
VISIBLE_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "p", "h")


def visible_style(plot, solver_name):
    """``plot.get_style(solver_name)`` (the solver's color, the same in every
    plot) with a marker of :data:`VISIBLE_MARKERS`."""
    style = plot.get_style(solver_name)
    style["marker"] = VISIBLE_MARKERS[style["marker"] % len(VISIBLE_MARKERS)]
    return style


def transformer_objectives(df):
    """Names of the objectives (one per model and sizes) whose runs report
    transformer metrics, in order of appearance."""
    if "objective_n_params" not in df:
        return []
    rows = df[df["objective_n_params"].notna()]
    return rows["objective_name"].unique().tolist()


def architecture_objectives(df):
    """Names of the objectives whose runs report the active neurons of each
    linear layer (``neurons_per_layer_<l>``), transformers excepted (dozens
    of linear layers: their widths are not an architecture to read)."""
    columns = layer_columns(df, "neurons_per")
    if not columns:
        return []
    rows = df[df[columns].notna().any(axis=1)]
    transformers = set(transformer_objectives(df))
    return [name for name in rows["objective_name"].unique().tolist()
            if name not in transformers]


def test_score(df):
    """``(column, label)`` of the held-out score of the runs of ``df``: test
    accuracy for classification, test mean squared error for denoising."""
    if "objective_test_acc" in df and df["objective_test_acc"].notna().any():
        return "objective_test_acc", "test accuracy"
    return "objective_test_mse", "test mean squared error"


def model_name(objective_name):
    """``"Sparse training[model=crate,width=192]"`` -> ``"crate[width=192]"``."""
    _, arguments = _split(objective_name)
    model = arguments.pop("model", objective_name)
    shown = ",".join(f"{key}={value}" for key, value in arguments.items())
    return f"{model}[{shown}]" if shown else model


def layer_columns(df, metric):
    """The columns ``objective_<metric>_layer_<l>`` of ``df``, by layer."""
    columns = [column for column in df.columns
               if re.fullmatch(rf"objective_{metric}_layer_\d+", column)]
    return sorted(columns, key=lambda column: int(column.rsplit("_", 1)[1]))


def first_and_last_points(df):
    """Rows of the first evaluation (the network at its initialization) and
    of the last one, averaged over repetitions."""
    return (first_evaluations(df, ["idx_rep"]).mean(numeric_only=True),
            final_evaluations(df, ["idx_rep"]).mean(numeric_only=True))
