"""Claims of benchmark_inverse_problems and how their evidence configs
measure them (see ci/evidence.py). Every number comes from the config's
result file: the last evaluation of each solver (the end of its training),
averaged over the repetitions."""
import math
import re

import pandas as pd
from evidence import Claim, Finding, Missing, cannot_tell_when_missing

from solvers_common.results import final_evaluations

PNP_WARM_START = "benchmark_inverse_problems/configs/evidence_pnp_warm_start.yml"
GLOW_PROX = "benchmark_inverse_problems/configs/evidence_glow_prox.yml"

# C13: warm-started 20/1 "approaches" 20/20 when their final PSNRs differ by
# at most CLOSE_DB; "a fraction of the cost" is at most COST_FRACTION of
# 20/20's time per image; cold 20/1 "deviates" when its PSNR is further from
# 20/20's than twice the warm one's, and by more than DEVIATES_DB.
CLOSE_DB = 0.5
COST_FRACTION = 0.25
DEVIATES_DB = 0.1
# C14: the constrained GLOW-Prox "descends at every layer" when its mean
# ||A^T (A x_l - y)|| over the test images falls from each layer l >= 1 to the
# next (the constraints bound these batch means, layer 1 to L; the objective's
# gradient_descent_rate also counts the step from x_0 = A^T y, whose gradient
# is 0 in noiseless-mask inpainting, so it is reported, not judged);
# "similar final error" is a final PSNR within SIMILAR_DB of the
# unconstrained one's; "more robust" is a higher PSNR with perturbed iterates
# at the largest noise level of the run.
SIMILAR_DB = 1.0


def _same(column, value):
    if value is None:
        return column.isna() | (column.astype(str) == "None")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # Integers come back as floats when another solver lacks the column.
        return pd.to_numeric(column, errors="coerce") == float(value)
    return column.astype(str) == str(value)


def final_scores(df, name, **parameters):
    """The last evaluation of solver ``name`` whose ``p_solver_<key>`` columns
    equal ``parameters`` (numbers as numbers, others as strings; None: absent
    or None),
    averaged over repetitions: a Series of the numeric columns. Raises
    ``Missing`` when no row matches."""
    rows = df[df["solver_name"].str.split("[").str[0] == name]
    for key, value in parameters.items():
        column = f"p_solver_{key}"
        if column in rows:
            rows = rows[_same(rows[column], value)]
        elif value is not None:
            rows = rows.iloc[:0]
    if rows.empty:
        described = ",".join(f"{key}={value}" for key, value in parameters.items())
        raise Missing(f"{name}[{described}] is missing from the result file (an older config, "
                      "or a run that raised)")
    last = final_evaluations(rows, ["idx_rep"])
    return last.mean(numeric_only=True)


def _pnp(df, n_train, n_pnp, warm, lmbd_pnp):
    return final_scores(df, "pnp_dictionary", n_layers_train=n_train, n_layers_pnp=n_pnp,
                        warm_start=warm, lmbd_pnp=lmbd_pnp)


def _lmbd_values(df):
    rows = df[df["solver_name"].str.split("[").str[0] == "pnp_dictionary"]
    if "p_solver_lmbd_pnp" not in rows:
        return [None]
    values = {None if str(value) in ("None", "nan") else value
              for value in rows["p_solver_lmbd_pnp"]}
    return sorted(values, key=lambda value: -math.inf if value is None else float(value))


@cannot_tell_when_missing
def pnp_warm_start(df):
    """C13, for each PnP regularization of the run: final PSNR of 20/20 and
    20/1 warm-started and of 20/1 cold-started, and 20/1's time per image
    as a fraction of 20/20's."""
    parts, holds = [], True
    for lmbd in _lmbd_values(df):
        reference = _pnp(df, 20, 20, True, lmbd)
        one, cold = _pnp(df, 20, 1, True, lmbd), _pnp(df, 20, 1, False, lmbd)
        psnr = {key: row["objective_psnr"] for key, row in
                (("20/20", reference), ("20/1", one), ("20/1 cold", cold))}
        cost = one["objective_seconds_per_image"] / reference["objective_seconds_per_image"]
        gap_warm = abs(psnr["20/1"] - psnr["20/20"])
        gap_cold = abs(psnr["20/1 cold"] - psnr["20/20"])
        holds &= bool(gap_warm <= CLOSE_DB and cost <= COST_FRACTION
                      and gap_cold > max(2 * gap_warm, DEVIATES_DB))
        label = "training lmbd" if lmbd is None else f"lmbd_pnp={lmbd}"
        parts.append(f"{label}: 20/20 warm {psnr['20/20']:.2f} dB, 20/1 warm "
                     f"{psnr['20/1']:.2f} dB at {cost:.2f}x the time per image, 20/1 cold "
                     f"{psnr['20/1 cold']:.2f} dB")
    try:
        parts.append(f"TV baseline {final_scores(df, 'tv_pgd')['objective_psnr']:.2f} dB")
    except Missing:
        pass
    return Finding("; ".join(parts), holds)


def _noise_levels(row):
    pattern = re.compile(r"^objective_psnr_iterate_noise_([0-9.e+-]+)$")
    return sorted(float(match.group(1)) for column in row.index
                  if (match := pattern.match(column)) and not math.isnan(row[column]))


def _layer_norms(row):
    pattern = re.compile(r"^objective_gradient_norm_iter_([0-9]+)$")
    norms = sorted((int(match.group(1)), row[column]) for column in row.index
                   if (match := pattern.match(column)))
    return [value for _, value in norms]


@cannot_tell_when_missing
def glow_prox_descent(df):
    """C14: the constrained and unconstrained GLOW-Prox at the end of
    training: descent rate of the data-fidelity gradient norm over layers,
    final PSNR, PSNR with perturbed iterates."""
    constrained = final_scores(df, "glow_prox", constrained=True)
    free = final_scores(df, "glow_prox", constrained=False)
    parts, verdicts = [], {}
    for label, row in (("constrained", constrained), ("unconstrained", free)):
        if math.isnan(row["objective_psnr"]):
            return Finding(f"the {label} GLOW-Prox diverged (NaN PSNR)", False)
        parts.append(f"{label}: PSNR {row['objective_psnr']:.2f} dB, descent rate "
                     f"{row['objective_gradient_descent_rate']:.2f}")
    norms = {label: _layer_norms(row)[1:] for label, row in
             (("constrained", constrained), ("unconstrained", free))}
    parts.append("mean gradient norm by layer " + "; ".join(
        f"{label} " + ", ".join(f"{value:.3g}" for value in values)
        for label, values in norms.items()))
    verdicts["descends"] = all(later < earlier for earlier, later in
                               zip(norms["constrained"], norms["constrained"][1:]))
    verdicts["similar error"] = bool(
        abs(constrained["objective_psnr"] - free["objective_psnr"]) <= SIMILAR_DB)
    levels = _noise_levels(constrained)
    if levels:
        column = f"objective_psnr_iterate_noise_{levels[-1]:g}"
        column = column if column in constrained.index else \
            f"objective_psnr_iterate_noise_{levels[-1]}"
        verdicts["more robust"] = bool(constrained[column] > free[column])
        losses = [row["objective_psnr"] - row[column] for row in (constrained, free)]
        parts.append(f"perturbed iterates (sigma {levels[-1]:g}): {constrained[column]:.2f} "
                     f"vs {free[column]:.2f} dB (losses of {losses[0]:.2f} and "
                     f"{losses[1]:.2f} dB)")
    else:
        verdicts["more robust"] = False
        parts.append("no perturbed-iterate metric in the run")
    return Finding.of_parts("; ".join(parts), verdicts)


PNP_CLAIM = Claim(
    key="C13",
    statement=("Warm-started plug-and-play with an unrolled dictionary denoiser: 1 inner "
               "layer (20/1) reaches the PSNR of 20 layers (20/20) at a fraction of the "
               "cost per iteration; cold-started, 20/1 deviates"),
    source=("Kowalski, Malezieux, Moreau & Repetti 2024, analysis and synthesis denoisers "
            "for forward-backward plug-and-play, Propositions 4.2 and 4.4"),
    config=PNP_WARM_START,
    measure=pnp_warm_start,
)

GLOW_CLAIM = Claim(
    key="C14",
    statement=("GLOW-Prox trained with descending constraints decreases the data-fidelity "
               "gradient norm at every layer, at a final error similar to the "
               "unconstrained network's, and holds up better when its iterates are "
               "perturbed"),
    source=("Hadou, NaderiAlizadeh & Ribeiro 2024, robust stochastically-descending "
            "unrolled networks, Section 5.2"),
    config=GLOW_PROX,
    measure=glow_prox_descent,
)

CLAIMS = [
    PNP_CLAIM,
    GLOW_CLAIM,
]
