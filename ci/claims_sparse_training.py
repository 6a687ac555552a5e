"""Claims of benchmark_sparse_training and how their result files show them.

Each ``measure`` reads a benchopt result DataFrame (one row per evaluation:
``solver_name``, ``objective_name``, ``dataset_name``, ``idx_rep``,
``stop_val`` = epochs trained, the solver's parameters ``p_solver_<name>``,
the objective's ``p_obj_<name>``, the metrics ``objective_<metric>``) and
returns a :class:`~evidence.Finding`. A solver's last evaluation is its final
network (benchopt labels it ``epochs + 1`` when the schedule skipped the last
epoch); numbers are means over repetitions, curves medians per epoch.

Bungert, Roith, Tenbrinck & Burger, "A Bregman learning framework for sparse
neural networks", JMLR 2022: C7, C8, C9. Yu, Buchanan, Pai, Chu, Wu, Tong,
Haeffele & Ma, "White-box transformers via sparse rate reduction", NeurIPS
2023: C10a, C10b, C11.
"""
import numpy as np
from evidence import Claim, Finding, Missing, cannot_tell_when_missing

from solvers_common.results import final_evaluations

BUNGERT = "Bungert, Roith, Tenbrinck & Burger 2022"
YU = "Yu et al. 2023"
CONFIGS = "benchmark_sparse_training/configs"
BREGMAN_CONFIG = f"{CONFIGS}/evidence_bregman_mnist_mlp.yml"
ARCHITECTURE_CONFIG = f"{CONFIGS}/evidence_architecture_search.yml"
CRATE_CONFIG = f"{CONFIGS}/evidence_crate_vs_vit.yml"

# C7: the paper's sparse LinBreg run (lmbd 0.1) against SGD.
LINBREG_LMBD = 0.1
MAX_DENSITY = 0.10
MAX_ACCURACY_GAP = 0.02
# C8: "starts sparse" and "dense", as fractions of non-zero weights.
SPARSE_START = 0.02
DENSE = 0.99
# C11: "far fewer parameters" and "close" accuracy.
MAX_PARAMETER_RATIO = 0.5
MAX_TRANSFORMER_GAP = 0.03


def _column(rows, name):
    if name not in rows:
        raise Missing(f"no column {name!r} in the result file")
    return rows[name]


def _on_mnist_or_digits(results):
    """``(name, rows)``: the rows on MNIST when the file has any (MNIST runs
    only where its files are), else those on digits."""
    datasets = _column(results, "dataset_name").astype(str)
    for name in ("mnist", "digits"):
        rows = results[datasets.str.match(rf"{name}(\[|$)")]
        if len(rows):
            return name, rows
    raise Missing("neither MNIST nor digits runs in the result file")


def _runs(rows, solver, **parameters):
    """Rows of ``solver`` (the name before its parameters) whose parameters
    equal ``parameters`` (``p_solver_<name>`` columns)."""
    selected = rows[_column(rows, "solver_name").astype(str).str.match(rf"{solver}(\[|$)")]
    for name, value in parameters.items():
        selected = selected[np.isclose(_column(selected, f"p_solver_{name}").astype(float),
                                       value)]
    if not len(selected):
        settings = ", ".join(f"{name}={value}" for name, value in parameters.items())
        raise Missing(f"no {solver} run{' with ' + settings if settings else ''}")
    return selected


def _model_runs(rows, model):
    selected = rows[_column(rows, "p_obj_model").astype(str) == model]
    if not len(selected):
        raise Missing(f"no run of model={model}")
    return selected


def _final(runs):
    """The last evaluation of each run (solver setting and repetition)."""
    return final_evaluations(runs, ["solver_name", "objective_name", "idx_rep"])


def _final_mean(runs, metric):
    return float(_column(_final(runs), f"objective_{metric}").mean())


def _curve(runs, metric):
    """Median of ``metric`` over repetitions at each evaluation, by epoch."""
    return _column(runs, f"objective_{metric}").groupby(runs["stop_val"]).median().sort_index()


def _n_runs(runs):
    return runs.groupby(["solver_name", "objective_name", "idx_rep"]).ngroups


def _percent(values):
    return "[" + ", ".join(f"{value:.1%}" for value in values) + "]"


@cannot_tell_when_missing
def linbreg_sparse_and_accurate(results):
    """C7: LinBreg (lmbd 0.1) ends with at most 10% non-zero weights and at
    most 2 points of test accuracy below SGD's."""
    dataset, rows = _on_mnist_or_digits(results)
    linbreg, sgd = _runs(rows, "linbreg", lmbd=LINBREG_LMBD), _runs(rows, "sgd")
    density = _final_mean(linbreg, "density")
    accuracy, sgd_accuracy = _final_mean(linbreg, "test_acc"), _final_mean(sgd, "test_acc")
    gap = sgd_accuracy - accuracy
    return Finding(
        f"{dataset}: LinBreg (lmbd {LINBREG_LMBD}) {accuracy:.1%} test accuracy with "
        f"{density:.1%} non-zero weights, SGD {sgd_accuracy:.1%}: {100 * gap:.1f} points "
        f"below (means of {_n_runs(linbreg)} and {_n_runs(sgd)} runs)",
        bool(density <= MAX_DENSITY and gap <= MAX_ACCURACY_GAP))


def _grows(curve):
    """Starts sparse, never loses more than 0.1 point of density from one
    evaluation to the next and ends denser."""
    return bool(curve.iloc[0] <= SPARSE_START and curve.iloc[-1] > curve.iloc[0]
                and (np.diff(curve.to_numpy()) >= -1e-3).all())


def _slowly(curve):
    """After its first epoch, less than half of the final growth is made:
    weights enter over the whole training, not at once."""
    start, first, final = curve.iloc[0], curve.loc[1], curve.iloc[-1]
    return bool(first - start < 0.5 * (final - start))


@cannot_tell_when_missing
def density_paths(results):
    """C8: LinBreg grows from sparse (every lmbd of the file), slowly with the
    paper's sparse setting lmbd 0.1 and more slowly for a larger lmbd at every
    epoch; proximal SGD starts dense and comes down (final density at
    least a point below that after one epoch), SGD is dense from its first
    step on."""
    dataset, rows = _on_mnist_or_digits(results)
    parts, holds = [], []
    linbreg = _runs(rows, "linbreg")
    linbreg_curves = {lmbd: _curve(runs, "density")
                      for lmbd, runs in linbreg.groupby("p_solver_lmbd")}
    for lmbd, curve in sorted(linbreg_curves.items()):
        parts.append(f"LinBreg lmbd {lmbd:g} {_percent(curve.loc[[0, 1]])} after 0, 1 epochs "
                     f"-> {curve.iloc[-1]:.1%}")
        holds.append(_grows(curve))
        if np.isclose(lmbd, LINBREG_LMBD):
            slowly = _slowly(curve)
            parts[-1] += f" (less than half of its growth in epoch 1: {'yes' if slowly else 'no'})"
            holds.append(slowly)
    if len(linbreg_curves) > 1:
        # The larger lmbd below the smaller at every epoch after the start.
        ordered = [curve.iloc[1:].to_numpy() for _, curve in sorted(linbreg_curves.items())]
        slower = all((larger <= smaller + 1e-12).all()
                     for smaller, larger in zip(ordered, ordered[1:]))
        parts.append(f"larger lmbd sparser at every epoch: {'yes' if slower else 'no'}")
        holds.append(slower)
    for lmbd, runs in sorted(_runs(rows, "prox_sgd").groupby("p_solver_lmbd")):
        curve = _curve(runs, "density")
        parts.append(f"proximal SGD lmbd {lmbd:g} {_percent(curve.loc[[0, 1]])} -> "
                     f"{curve.iloc[-1]:.1%}")
        holds.append(bool(curve.iloc[0] >= DENSE and curve.iloc[-1] <= curve.loc[1] - 0.01))
    sgd = _curve(_runs(rows, "sgd"), "density")
    parts.append(f"SGD lowest after epoch 1: {sgd.iloc[1:].min():.1%}")
    holds.append(bool(sgd.iloc[1:].min() >= DENSE))
    return Finding(f"{dataset}, non-zero weights (median over repetitions): "
                   + "; ".join(parts), all(holds))


@cannot_tell_when_missing
def architecture_found(results):
    """C9: every AdaBreg run (row group norm) starts from few neurons per
    layer and ends with its narrowest hidden layer strictly inside (narrower
    than both the first and the last hidden layer)."""
    dataset, rows = _on_mnist_or_digits(results)
    adabreg = _runs(rows, "adabreg")
    depth = int(_column(adabreg, "p_obj_depth").iloc[0])
    parts, holds = [], []
    for lmbd, runs in sorted(adabreg.groupby("p_solver_lmbd")):
        start = runs[runs["stop_val"] == 0]
        final = _final(runs)
        widths = [round(float(_column(final, f"objective_neurons_per_layer_{layer}").median()))
                  for layer in range(1, depth + 1)]
        started = [round(float(_column(start, f"objective_neurons_per_layer_{layer}").median()))
                   for layer in range(1, depth + 1)]
        middle = min(widths[1:-1])
        narrow_middle = middle < min(widths[0], widths[-1])
        test_mse = float(_column(final, "objective_test_mse").mean())
        parts.append(f"AdaBreg lmbd {lmbd:g} hidden widths {started} -> {widths}, "
                     f"test MSE {test_mse:.4f}")
        holds.append(bool(narrow_middle and sum(widths) > sum(started)))
    try:
        adam = _final_mean(_runs(rows, "adam"), "test_mse")
        parts.append(f"dense Adam test MSE {adam:.4f}")
    except Missing:
        pass
    width = int(_column(adabreg, "p_obj_width").iloc[0])
    return Finding(f"{dataset} (hidden layers of {width}): "
                   + "; ".join(parts), all(holds))


def _layer_values(row, metric):
    values, layer = [], 1
    while f"objective_{metric}_layer_{layer}" in row.index:
        values.append(float(row[f"objective_{metric}_layer_{layer}"]))
        layer += 1
    if not values:
        raise Missing(f"no objective_{metric}_layer_1 column for CRATE")
    return values


def _crate_layers(results, metric):
    """``(dataset, initial, trained, runs)``: CRATE's per-layer ``metric``
    before training and after it (medians over repetitions), and after it
    for each repetition."""
    dataset, rows = _on_mnist_or_digits(results)
    crate = _model_runs(rows, "crate")
    initial = crate[crate["stop_val"] == 0].median(numeric_only=True)
    final = _final(crate)
    runs = [_layer_values(row, metric) for _, row in final.iterrows()]
    trained = _layer_values(final.median(numeric_only=True), metric)
    return dataset, _layer_values(initial, metric), trained, runs


def _rounded(values, digits):
    return "[" + ", ".join(f"{value:.{digits}f}" for value in values) + "]"


def _every_layer(values, sign):
    """Whether ``values`` move in the direction ``sign`` (+1 rises, -1
    falls) at every layer."""
    return bool((sign * np.diff(values) > 0).all())


def _layer_finding(results, metric, sign, what, digits):
    dataset, initial, trained, runs = _crate_layers(results, metric)
    every = sum(_every_layer(values, sign) for values in runs)
    direction = "rises" if sign > 0 else "falls"
    return Finding(f"{dataset}: {what} per layer after training {_rounded(trained, digits)} "
                   f"(median of {len(runs)} runs; {direction} at every layer in {every} of "
                   f"them), at initialization {_rounded(initial, digits)}",
                   _every_layer(trained, sign))


@cannot_tell_when_missing
def crate_compresses(results):
    """C10a: after training, the compression term R^c(Z^l | U^l) (median
    over repetitions) falls at every layer."""
    return _layer_finding(results, "compression", -1, "R^c", 1)


@cannot_tell_when_missing
def crate_sparsifies(results):
    """C10b: after training, the fraction of zeros of the ISTA block's output
    (median over repetitions) rises at every layer."""
    return _layer_finding(results, "token_sparsity", +1,
                          "zero fraction of the ISTA output", 3)


@cannot_tell_when_missing
def crate_matches_vit(results):
    """C11: CRATE has at most half of ViT's parameters and a final test
    accuracy at most 3 points below ViT's."""
    dataset, rows = _on_mnist_or_digits(results)
    crate, vit = _model_runs(rows, "crate"), _model_runs(rows, "vit")
    accuracy, vit_accuracy = _final_mean(crate, "test_acc"), _final_mean(vit, "test_acc")
    parameters, vit_parameters = _final_mean(crate, "n_params"), _final_mean(vit, "n_params")
    ratio, gap = parameters / vit_parameters, vit_accuracy - accuracy
    return Finding(
        f"{dataset}: CRATE {accuracy:.1%} test accuracy with {parameters:,.0f} parameters, "
        f"ViT {vit_accuracy:.1%} with {vit_parameters:,.0f} ({ratio:.2f}x the parameters; "
        f"ViT - CRATE: {100 * gap:+.1f} points)",
        bool(ratio <= MAX_PARAMETER_RATIO and gap <= MAX_TRANSFORMER_GAP))


CLAIMS = [
    Claim("C7", "LinBreg trains a sparse network (at most 10% non-zero weights) within 2 "
          "points of SGD's test accuracy", BUNGERT, BREGMAN_CONFIG, linbreg_sparse_and_accurate),
    Claim("C8", "LinBreg starts sparse and adds weights slowly (inverse scale space), "
          "proximal SGD starts dense and comes down, SGD is dense after one step",
          BUNGERT, BREGMAN_CONFIG, density_paths),
    Claim("C9", "Row-group sparsity with Bregman iterations (AdaBreg) finds an architecture: "
          "a denoising MLP grown from few neurons ends narrower in its middle layers",
          BUNGERT, ARCHITECTURE_CONFIG, architecture_found),
    Claim("C10a", "In a trained CRATE every layer lowers the coding rate of the tokens "
          "against its subspaces (compression)", YU, CRATE_CONFIG, crate_compresses),
    Claim("C10b", "In a trained CRATE the tokens get sparser with depth (fraction of zeros of "
          "the ISTA block's output)", YU, CRATE_CONFIG, crate_sparsifies),
    Claim("C11", "CRATE reaches a test accuracy within 3 points of ViT's with at most half "
          "its parameters", YU, CRATE_CONFIG, crate_matches_vit),
]
