"""Claims of benchmark_unrolling and how their evidence configs measure them
(see ci/evidence.py). Every number comes from the config's result file: the
last evaluation of each solver (the end of its training), averaged over the
repetitions."""
import math

from evidence import Claim, Finding, Missing, cannot_tell_when_missing

from solvers_common.results import final_evaluations

LISTA_VS_ISTA = "benchmark_unrolling/configs/evidence_lista_vs_ista.yml"
DESCENDING = "benchmark_unrolling/configs/evidence_descending_lista.yml"

# C1: "many more iterations" = at least this many times the trained depth.
ITERATION_FACTOR = 3
# C2: LISTA "does not descend" when at least this fraction of its layers
# increases the distance to the Lasso solution (Hadou et al.'s constraint and
# figure measure the distance; the test objective F is reported beside it).
NON_DESCENT_FRACTION = 0.2
# C3: the constrained LISTA's final gap is "close to LISTA's" when at most
# this many times LISTA's (same random start, same training).
CLOSE_GAP_FACTOR = 1.25

LEARNED = {"lista": "LISTA", "lista_cp": "LISTA-CP", "alista": "ALISTA", "slista": "SLISTA"}
# The constrained LISTA as the authors train it (iterate noise during
# training), LISTA as their standard run (no noise), both from small random
# weights; the controls (constraints without noise, LISTA with noise) are
# reported beside them.
LISTA_RANDOM = ("lista", {"init": "random", "noise_level": 0.0})
LISTA_RANDOM_NOISE = ("lista", {"init": "random", "noise_level": "positive"})
CONSTRAINED = ("lista_constrained", {"init": "random", "noise_level": "positive"})
CONSTRAINED_NO_NOISE = ("lista_constrained", {"init": "random", "noise_level": 0.0})


def _matches(column, value):
    if value is None:  # the solver has no such parameter
        return column.isna()
    if value == "positive":
        return column.astype(float) > 0
    if isinstance(value, float):
        return column.astype(float) == value
    return column.astype(str) == str(value)


def final_scores(df, name, parameters=None):
    """The last evaluation of solver ``name`` whose ``p_solver_<key>``
    columns equal ``parameters`` (None: the column is absent or NaN;
    "positive": a number > 0), averaged over repetitions: a Series of the
    numeric columns. Raises ``Missing`` when no row matches."""
    rows = df[df["solver_name"].str.split("[").str[0] == name]
    for key, value in (parameters or {}).items():
        column = f"p_solver_{key}"
        if column not in rows:
            if value is not None:
                raise Missing(f"{name} with {key}={value}")
            continue
        rows = rows[_matches(rows[column], value)]
    if rows.empty:
        raise Missing(f"{name}[{', '.join(f'{k}={v}' for k, v in (parameters or {}).items())}]")
    last = final_evaluations(rows, ["idx_rep"])
    return last.select_dtypes("number").mean()


def best_evaluation(df, name):
    """The evaluation of solver ``name`` with the lowest test gap
    (``objective_value``; ``stop_val``: the epoch), first repetition."""
    rows = df[(df["solver_name"].str.split("[").str[0] == name) & (df["idx_rep"] == 0)]
    return rows.loc[rows["objective_value"].idxmin()]


def n_layers(df):
    return int(df["p_obj_n_layers"].iloc[0])


def per_layer(scores, metric, L):
    return [float(scores[f"objective_{metric}_layer_{layer}"]) for layer in range(L + 1)]


def fraction_increasing(values):
    """Fraction of the layers l = 1..L at which ``values[l] > values[l-1]``."""
    return sum(b > a for a, b in zip(values, values[1:])) / (len(values) - 1)


def extra_layer_gaps(scores):
    """``{k: gap_extra_layers_k}`` of a solver, NaN entries left out."""
    gaps = {}
    for column, value in scores.items():
        if column.startswith("objective_gap_extra_layers_") and math.isfinite(value):
            gaps[int(column.rsplit("_", 1)[1])] = float(value)
    return dict(sorted(gaps.items()))


def ista_iterations_to_reach(ista_gaps, L, gap):
    """Fewest ISTA iterations ``L + k`` (k among the config's extra layers)
    whose test gap is at most ``gap``; None when none is."""
    for k, ista_gap in ista_gaps.items():
        if ista_gap <= gap:
            return L + k
    return None


def _g(value):
    return f"{value:.3g}"


def ista_comparison(names):
    """C1's measure for the learned networks ``names``: how many ISTA
    iterations reach each one's L-layer test gap (ISTA continued past L by the
    objective's ``gap_extra_layers_<k>``); holds when every one needs ISTA at
    least ITERATION_FACTOR x L iterations."""
    @cannot_tell_when_missing
    def measure(df):
        L = n_layers(df)
        ista = final_scores(df, "ista")
        ista_gaps = extra_layer_gaps(ista)
        if not ista_gaps:
            return Finding("ISTA has no gap_extra_layers_<k> metric in the result file", None)
        def ista_count(gap):
            needed = ista_iterations_to_reach(ista_gaps, L, gap)
            if needed is None:
                return needed, f"more than {L + max(ista_gaps)}"
            return needed, str(needed) + (" (no more than L)" if needed == L else "")

        parts, holds = [], True
        for name in names:
            gap = float(final_scores(df, name)["objective_value"])
            needed, count = ista_count(gap)
            holds &= bool(needed is None or needed >= ITERATION_FACTOR * L)
            part = f"{LEARNED[name]} {_g(gap)}: ISTA needs {count} iterations"
            # Where training later went astray, its best evaluation says what
            # the network reached on the way (not the verdict: the end counts).
            best = best_evaluation(df, name)
            if best["objective_value"] < 0.9 * gap:
                part += (f" [best evaluation {_g(best['objective_value'])} at epoch "
                         f"{int(best['stop_val'])}: {ista_count(best['objective_value'])[1]}]")
            parts.append(part)
        return Finding(f"test gap at L = {L} layers (ISTA at L: "
                       f"{_g(ista['objective_value'])}); " + "; ".join(parts), holds)
    return measure


measure_lista_vs_ista = ista_comparison(["lista"])
measure_variants_vs_ista = ista_comparison(["lista_cp", "alista", "slista"])


def _descent(scores, L):
    """Fractions of the layers at which the mean squared distance to z* and
    the mean test objective F go up."""
    return (fraction_increasing(per_layer(scores, "nmse", L)),
            fraction_increasing(per_layer(scores, "gap", L)))


def _optional(df, solver, describe):
    """``describe(scores)`` for a control solver, "" when it is absent."""
    try:
        return describe(final_scores(df, *solver))
    except Missing:
        return ""


@cannot_tell_when_missing
def measure_lista_does_not_descend(df):
    """C2: fraction of LISTA's layers (random start, trained without
    constraints) at which the distance to z* goes up; holds when at least
    NON_DESCENT_FRACTION."""
    L = n_layers(df)
    scores = final_scores(df, *LISTA_RANDOM)
    distance, objective = _descent(scores, L)
    return Finding(
        f"LISTA (random start): the distance to z* increases at {distance:.0%} of its {L} "
        f"layers, F at {objective:.0%} (mean over test signals; F goes up at "
        f"{scores['objective_descent_violation_rate']:.0%} of the (layer, signal) steps)",
        bool(distance >= NON_DESCENT_FRACTION))


@cannot_tell_when_missing
def measure_constrained_descends(df):
    """C3: the constrained LISTA decreases the distance to z* at every layer,
    with a final test gap at most CLOSE_GAP_FACTOR x that of LISTA trained
    from the same random start."""
    L = n_layers(df)
    constrained = final_scores(df, *CONSTRAINED)
    lista = final_scores(df, *LISTA_RANDOM)
    distance, objective = _descent(constrained, L)
    ratio = constrained["objective_value"] / lista["objective_value"]
    numbers = (f"constrained LISTA: the distance to z* increases at {distance:.0%} of the "
               f"layers, F at {objective:.0%}; final gap {_g(constrained['objective_value'])} "
               f"= {ratio:.2f}x LISTA's {_g(lista['objective_value'])} (random start)")
    numbers += _optional(df, ("lista", {"init": "ista"}),
                         lambda s: f"; LISTA from ISTA {_g(s['objective_value'])}")
    numbers += _optional(df, CONSTRAINED_NO_NOISE, lambda s: (
        "; constraints without training noise: distance up at {:.0%}, F at {:.0%}, gap {}"
        .format(*_descent(s, L), _g(s["objective_value"]))))
    numbers += _optional(df, LISTA_RANDOM_NOISE, lambda s: (
        "; LISTA with training noise: distance up at {:.0%}, F at {:.0%}, gap {}"
        .format(*_descent(s, L), _g(s["objective_value"]))))
    return Finding(numbers, bool(distance == 0 and ratio <= CLOSE_GAP_FACTOR))


def _noise_columns(scores):
    """``(sigma, column)`` of the ``gap_iterate_noise_<sigma>`` metrics, by sigma."""
    prefix = "objective_gap_iterate_noise_"
    return sorted((float(column[len(prefix):]), column) for column in scores.index
                  if column.startswith(prefix) and math.isfinite(scores[column]))


@cannot_tell_when_missing
def measure_constrained_is_robust(df):
    """C4: with every intermediate iterate perturbed, the constrained LISTA's
    final test gap grows less than LISTA's (random start): holds when its
    increase (gap with noise - gap without) is smaller at every noise level
    of the config. LISTA trained with the same iterate noise, the control,
    is reported beside them."""
    constrained = final_scores(df, *CONSTRAINED)
    lista = final_scores(df, *LISTA_RANDOM)
    columns = _noise_columns(constrained)
    if not columns:
        return Finding("no finite gap_iterate_noise_<sigma> metric in the result file", None)
    try:
        control = final_scores(df, *LISTA_RANDOM_NOISE)
    except Missing:
        control = None
    parts, holds = [], True
    for sigma, column in columns:
        increase = {label: scores[column] - scores["objective_value"]
                    for label, scores in (("constrained", constrained), ("LISTA", lista))}
        holds &= bool(increase["constrained"] < increase["LISTA"])
        part = f"sigma {sigma:g}: {_g(constrained[column])} vs {_g(lista[column])}"
        if control is not None:
            part += f" (LISTA with training noise {_g(control[column])})"
        parts.append(part)
    return Finding("final test gap with every intermediate iterate perturbed, constrained "
                   "LISTA vs LISTA: " + "; ".join(parts)
                   + f"; without perturbation {_g(constrained['objective_value'])} vs "
                   f"{_g(lista['objective_value'])}", holds)


@cannot_tell_when_missing
def measure_constrained_past_depth(df):
    """C15: the constrained LISTA keeps improving past its trained depth: its
    test gap at L + k is below its gap at L for every k >= 1 of the config;
    LISTA's numbers beside it."""
    L = n_layers(df)
    constrained = extra_layer_gaps(final_scores(df, *CONSTRAINED))
    lista = extra_layer_gaps(final_scores(df, *LISTA_RANDOM))
    extra = [k for k in constrained if k > 0]
    if 0 not in constrained or not extra:
        return Finding("gap_extra_layers_0 and some gap_extra_layers_<k>, k >= 1, are needed",
                       None)
    holds = bool(all(constrained[k] < constrained[0] for k in extra))
    depths = [0, *extra]
    return Finding(
        "test gap at depth " + ", ".join(f"L+{k}" for k in depths) + f" (L = {L}): "
        f"constrained LISTA {' -> '.join(_g(constrained[k]) for k in depths)}; "
        f"LISTA {' -> '.join(_g(lista.get(k, math.nan)) for k in depths)}", holds)


CLAIMS = [
    Claim("unrolling-lista-vs-ista",
          "A trained L-layer LISTA (from ISTA's weights) reaches a test gap that ISTA needs "
          f"at least {ITERATION_FACTOR}L iterations for",
          "Gregor & LeCun 2010", LISTA_VS_ISTA, measure_lista_vs_ista),
    Claim("unrolling-variants-vs-ista",
          "So do LISTA-CP, ALISTA and SLISTA, each",
          "Chen et al. 2018; Liu et al. 2019; Ablin et al. 2019", LISTA_VS_ISTA,
          measure_variants_vs_ista),
    Claim("unrolling-lista-does-not-descend",
          "LISTA trained without constraints from a small random start does not descend: "
          f"its distance to the Lasso solution goes up at {NON_DESCENT_FRACTION:.0%} of its "
          "layers or more",
          "Hadou, NaderiAlizadeh & Ribeiro 2024", DESCENDING, measure_lista_does_not_descend),
    Claim("unrolling-constrained-descends",
          "LISTA trained with descending constraints (primal-dual, iterate noise as the "
          "authors) gets closer to the Lasso solution at every layer, at a final test gap "
          f"within {CLOSE_GAP_FACTOR}x LISTA's",
          "Hadou, NaderiAlizadeh & Ribeiro 2024, problem (6), Algorithm 1", DESCENDING,
          measure_constrained_descends),
    Claim("unrolling-constrained-robust",
          "With every intermediate iterate perturbed, the constrained LISTA's final gap "
          "grows less than LISTA's, at every noise level",
          "Hadou, NaderiAlizadeh & Ribeiro 2024", DESCENDING, measure_constrained_is_robust),
    Claim("unrolling-constrained-past-depth",
          "The constrained LISTA keeps improving past its trained depth "
          "(test gap at L + k below the gap at L)",
          "suite's claim C15, from Hadou et al. 2024 and Ramzi et al. 2023", DESCENDING,
          measure_constrained_past_depth),
]
