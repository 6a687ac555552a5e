"""Tune every solver of a benchopt config with the same budget, on the
validation split, and write the tuned config with its provenance.

Usage: python ci/tune.py CONFIG [--budget N] [--seed S] [--repetitions R]
                         [--output PATH] [--results PATH] [--from-results PATH]
                         [--dry-run]

The protocol (README, "Tuning"):

- A solver declares the hyperparameters worth tuning and their candidate
  values in a literal class attribute, ``tuning_space = {"lr": [1e-4, 1e-3,
  ...], ...}``. Solvers that declare none (fixed algorithms) are kept as the
  config writes them.
- Every entry of the config's ``solver`` list that names a tunable solver
  (each variant of a grid entry, e.g. ``lista[init=[ista,random]]``, on its
  own) gets exactly ``N`` candidates: a subset of ``N`` points of the
  Cartesian product of its space, drawn without replacement with the seed
  ``S`` (all of them when the product has ``N``). A space with fewer than
  ``N`` points is an error: no solver gets fewer candidates than another.
  A value the config writes for a tuned parameter is a starting guess and is
  replaced; a parameter the config sets to a list (a comparison it makes on
  purpose, ``lmbd=[0.01,0.1]``) or names in a ``# pinned: noise_level``
  comment on the entry stays as written; its other parameters are kept.
- All candidates run in one ``benchopt run`` of the config's datasets,
  objectives and limits (``max-runs``, ``timeout``), with benchopt's seed
  ``S`` and ``R`` repetitions (default 1): every candidate of every solver
  sees the same data and the same training seeds.
- Each run is scored on the objective's ``validation_metric`` (a literal
  class attribute of the Objective; see
  :func:`solvers_common.results.training_summary`): its value at the final
  evaluation, or the work to a target for a metric with a work counter. The
  test metrics are never read; wall-clock time never decides. A run that
  diverged or did not train (its validation metric ended worse than it
  started) ranks last. The score of a candidate is the median over
  repetitions; with several datasets or objectives, its mean rank among its
  solver's candidates over them. Ties go to the first candidate in the
  space's order.
- The tuned config is the input config with the tuned entries rewritten and
  a tuning record (the command, date, budget, seed, the metric, and every
  candidate's score) in its comments, between marker lines that a later
  tuning replaces. ``--output`` defaults to the config itself.
"""
import argparse
import datetime
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from benchopt.benchmark import Benchmark
from benchopt.results import read_results
from benchopt.utils.parametrized_name_mixin import _extract_options, product_param

from solvers_common.results import (
    RUN_KEYS,
    class_attribute,
    metric_alternatives,
    training_summary,
)

DEFAULT_BUDGET = 4
RECORD_START = "# --- tuning record (written by ci/tune.py; a new tuning replaces it) ---"
RECORD_END = "# --- end of tuning record ---"
SIMPLE_STRING = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")


def format_value(value):
    """``value`` as benchopt reads it back in a solver string."""
    if isinstance(value, str):
        if value in ("True", "False", "None") or not SIMPLE_STRING.match(value):
            return repr(value)
        return value
    return repr(value)


def solver_string(name, parameters):
    if not parameters:
        return name
    inside = ",".join(f"{key}={format_value(value)}" for key, value in parameters.items())
    return f"{name}[{inside}]"


def describe(parameters):
    return ", ".join(f"{key}={format_value(value)}" for key, value in parameters.items())


def benchmark_of(config_path, benchmark=None):
    if benchmark is not None:
        return Path(benchmark).resolve()
    for folder in Path(config_path).resolve().parents:
        if (folder / "objective.py").is_file():
            return folder
    raise SystemExit(f"error: {config_path} is not inside a benchmark folder (one with an "
                     "objective.py); pass --benchmark.")


def validation_metric(benchmark_dir):
    declared = class_attribute(benchmark_dir / "objective.py", "Objective", "validation_metric")
    if declared is None:
        raise SystemExit(f"error: the Objective of {benchmark_dir.name} declares no "
                         "validation_metric: nothing to select on without the test data.")
    return metric_alternatives(declared)


def solver_classes(benchmark_dir):
    """``{name: Solver class}`` of the benchmark's solvers (imported by
    benchopt, so that tuning spaces inherited from a base class count)."""
    return {solver.name: solver for solver in Benchmark(benchmark_dir).get_solvers()}


def candidates(space, budget, seed):
    """``budget`` points of the product of ``space``, in the product's order:
    a subset drawn without replacement with ``seed``."""
    points = list(product_param(space))
    if len(points) < budget:
        raise ValueError(f"its tuning space has {len(points)} candidates, fewer than the "
                         f"budget {budget}")
    chosen = np.random.default_rng(seed).choice(len(points), size=budget, replace=False)
    return [points[i] for i in sorted(chosen)]


def pinned_by_comment(text):
    """``{entry: parameters}`` of the config's solver entries that a comment
    pins (``- "lista[init=random,noise_level=0.1]"  # pinned: noise_level``)."""
    pinned, in_solvers = {}, False
    for line in text.splitlines():
        key = re.match(r"^([A-Za-z_][\w-]*)\s*:", line)
        if key:
            in_solvers = key.group(1) == "solver"
        item = re.match(r"^\s*-\s*(.+?)\s*#.*\bpinned:\s*([\w\s,]*)", line)
        if in_solvers and item:
            names = {name.strip() for name in item.group(2).split(",") if name.strip()}
            pinned[yaml.safe_load(item.group(1))] = names
    return pinned


def plan(config, classes, budget, seed, pinned_comments=None):
    """The config's solver entries as a list of ``(entry, variants)``; a
    variant is ``{"name", "fixed", "space", "candidates"}``, with no space nor
    candidates for a solver that declares no ``tuning_space``.

    A parameter of the solver's space that the config entry sets to one
    value is tuned (that value is a starting guess, replaced); one it sets to
    a list (``lmbd=[0.01,0.1]``: the config compares those values on purpose)
    or that a ``# pinned:`` comment names (:func:`pinned_by_comment`) is
    pinned, and the variant's space is the rest."""
    pinned_comments = pinned_comments or {}
    entries = []
    for entry in config.get("solver", []):
        name, args, fixed = _extract_options(entry)
        if args or name not in classes:
            raise SystemExit(f"error: cannot tune the config entry {entry!r}: "
                             + (f"no solver named {name!r} in the benchmark."
                                if name not in classes else "positional options."))
        declared = getattr(classes[name], "tuning_space", None) or {}
        unknown = sorted(set(declared) - set(classes[name].parameters))
        if unknown:
            raise SystemExit(f"error: {name}.tuning_space names {unknown}, which are not among "
                             f"its parameters {sorted(classes[name].parameters)}.")
        pinned = ({k for k, v in fixed.items() if isinstance(v, list)}
                  | pinned_comments.get(entry, set()))
        space = {k: v for k, v in declared.items() if k not in pinned}
        # A grid in the solver's own defaults (lista_tied's training=[unrolled,
        # implicit]) makes variants as a grid in the entry does.
        grid = {k: v for k, v in classes[name].parameters.items()
                if "," not in k and k not in fixed and k not in space
                and isinstance(v, (list, tuple)) and len(v) > 1}
        variants = []
        for variant in product_param({**grid, **fixed}) if fixed or grid else [{}]:
            kept = {k: v for k, v in variant.items() if k not in space}
            try:
                chosen = candidates(space, budget, seed) if space else []
            except ValueError as error:
                raise SystemExit(f"error: {solver_string(name, kept)}: {error} (the config "
                                 f"sets {sorted(pinned & set(declared))} of its tuning_space); "
                                 "lower --budget or widen the space.") from None
            variants.append(dict(name=name, fixed=kept, space=space, written=variant,
                                 candidates=[{**kept, **c} for c in chosen]))
        entries.append((entry, variants))
    return entries


def matches(rows, name, parameters):
    """The rows of solver ``name`` run with ``parameters``."""
    keep = rows["solver_name"].str.split("[", regex=False).str[0] == name
    for key, value in parameters.items():
        column = rows[f"p_solver_{key}"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            keep &= column.astype(str) == str(value)
        else:
            keep &= np.isclose(pd.to_numeric(column, errors="coerce"), value)
    return keep


def candidate_scores(summary, variant):
    """Per candidate and (dataset, objective): the median over its runs of
    the score as a loss (lower is better; +inf for a run that diverged or
    did not train) and of the final value as a loss (+inf for a run that
    diverged), which breaks ties: runs that never reached a work target, or
    that did not train, are ranked by how well they ended. Returns
    ``(losses, finals, notes)``: two DataFrames with one row per candidate
    and one column per (dataset, objective), and one note per candidate for
    the record."""
    losses, finals, notes = {}, {}, []
    for number, parameters in enumerate(variant["candidates"]):
        runs = summary[matches(summary, variant["name"], parameters)]
        if runs.empty:
            # benchopt saves no row of a run that raised or that it stopped as
            # diverged: the candidate failed.
            losses[number] = finals[number] = pd.Series(dtype=float)
            notes.append(([], 1, 1))
            continue
        sign = np.where(runs["better"] == "lower", 1.0, -1.0)
        failed = (runs["diverged"] | runs["did_not_train"]).to_numpy()
        # A run that did not train still has a final value, which orders such
        # runs among themselves (below every run that trained).
        runs = runs.assign(
            loss=np.where(failed, np.inf, sign * runs["score"].to_numpy(dtype=float)),
            final_loss=np.where(runs["diverged"], np.inf,
                                sign * runs["final"].to_numpy(dtype=float)))
        groups = runs.groupby(["dataset_name", "objective_name"])
        losses[number], finals[number] = groups["loss"].median(), groups["final_loss"].median()
        per_group = [(dataset.split("[")[0], rows["metric"].iloc[0], rows["score"].median(),
                      rows["final"].median())
                     for (dataset, _), rows in groups]
        notes.append((per_group, int(failed.sum()), len(runs)))
    return pd.DataFrame(losses).T, pd.DataFrame(finals).T, notes


def select(losses, finals):
    """The index of the best candidate: the lowest loss, ties broken by the
    final value; with several (dataset, objective) columns, the lowest mean
    rank. None when every candidate diverged (or left no result)
    everywhere."""
    finals = finals.fillna(np.inf)
    if not np.isfinite(finals.to_numpy(dtype=float)).any():
        return None
    losses = losses.fillna(np.inf)
    # Lexicographic ranks: the second term is below 1, so it only orders
    # candidates whose losses tie (inf included).
    ranks = (losses.rank(axis=0, method="min")
             + finals.rank(axis=0, method="average") / (len(finals) + 1)).mean(axis=1)
    return int(ranks.to_numpy().argmin())


def score_text(alternatives, metric_name, score, final):
    declared = next((m for m in alternatives if m["name"] == metric_name), {})
    if "work" in declared:
        return (f"{declared['work']} to the target {score:.6g} "
                f"(final {metric_name} {final:.4g})")
    return f"{metric_name} {score:.6g}"


def record_lines(command, budget, seed, repetitions, alternatives, tuned, scored_on):
    metric = " / ".join(f"{m['name']} ({m['better']} is better"
                        + (f"; work {m['work']} to {m['reduction']:g} x its start"
                           if "work" in m else "; final evaluation") + ")"
                        for m in alternatives)
    lines = [
        RECORD_START,
        f"# Command: {command}",
        f"# Date {datetime.date.today().isoformat()}: {budget} candidates per tuned solver "
        f"(the same for all), seed {seed}, {repetitions} repetition(s), selected on the "
        f"validation split by {metric}; the test metrics were not read. A candidate that "
        "diverged or did not train ranks last.",
        "# Scored on: " + "; ".join(f"{dataset} / {objective}" for dataset, objective in scored_on)
        + " (datasets the run skipped, e.g. for missing files, are not).",
    ]
    for variant, notes, chosen in tuned:
        label = solver_string(variant["name"], variant["fixed"])
        space = "; ".join(f"{k} in {list(v)}" for k, v in variant["space"].items())
        lines.append(f"# {label}: space {space}")
        several = len({group[0] for per_group, _, _ in notes for group in per_group}) > 1
        for number, (parameters, (per_group, failed, n_runs)) in enumerate(
                zip(variant["candidates"], notes)):
            tuned_part = {k: parameters[k] for k in variant["space"]}
            flag = f" ({failed}/{n_runs} runs diverged or did not train)" if failed else ""
            mark = "  <- selected" if number == chosen else ""
            shown = "; ".join(
                (f"{dataset}: " if several else "") + score_text(alternatives, *scores)
                for dataset, *scores in per_group) or "no result (raised or diverged)"
            lines.append(f"#   {describe(tuned_part)}: {shown}{flag}{mark}")
        if chosen is None:
            lines.append("#   every candidate diverged: the config's entry is kept as it was")
        elif notes[chosen][1]:
            _, failed, n_runs = notes[chosen]
            lines.append(f"#   the selected candidate did not train in {failed} of its {n_runs} "
                         "runs (its validation metric ended worse than it started)")
    lines.append(RECORD_END)
    return lines


def rewrite(text, replacements, record):
    """The config ``text`` with each solver entry replaced by its tuned
    lines (``replacements[entry]``: ``(solver string, tuned parameters)``
    pairs, the latter written as a ``# tuned:`` comment) and the tuning
    record before the first key (after the header comments), replacing an
    earlier record."""
    lines = text.splitlines()
    if RECORD_START in lines:
        start = lines.index(RECORD_START)
        lines[start:lines.index(RECORD_END, start) + 1] = []
    out, in_solvers = [], False
    for line in lines:
        key = re.match(r"^([A-Za-z_][\w-]*)\s*:", line)
        if key:
            in_solvers = key.group(1) == "solver"
        item = re.match(r"^(\s*)-\s*(.+?)\s*(#.*)?$", line)
        if in_solvers and item:
            value = yaml.safe_load(item.group(2))
            if value in replacements:
                # A "# pinned:" comment stays; "# tuned:" says what this tuning chose.
                pinned = re.search(r"pinned:[\w\s,]*\w", item.group(3) or "")
                for tuned, names in replacements[value]:
                    notes = ([f"tuned: {', '.join(names)}"] if names else []) + (
                        [pinned.group(0)] if pinned else [])
                    out.append(f'{item.group(1)}- "{tuned}"'
                               + (f"  # {'; '.join(notes)}" if notes else ""))
                continue
        out.append(line)
    first_key = next(i for i, line in enumerate(out) if re.match(r"^[A-Za-z_][\w-]*\s*:", line))
    return "\n".join(out[:first_key] + record + out[first_key:]) + "\n"


def run_candidates(benchmark_dir, config, entries, seed, repetitions, results):
    solvers = [solver_string(v["name"], c) for _, variants in entries
               for v in variants for c in v["candidates"]]
    tuning_config = {k: v for k, v in config.items() if k != "plot_configs"}
    tuning_config.update({"solver": solvers, "n-repetitions": repetitions})
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
        yaml.safe_dump(tuning_config, handle, sort_keys=False)
    command = [sys.executable, "-m", "benchopt", "run", str(benchmark_dir),
               "--config", handle.name, "--seed", str(seed), "--no-display", "--no-html",
               "--no-plot", "--output", str(results)]
    print("=== " + shlex.join(command), flush=True)
    try:
        subprocess.run(command, check=True)
    finally:
        Path(handle.name).unlink(missing_ok=True)
    return read_results(results)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("--budget", type=int, default=DEFAULT_BUDGET,
                        help=f"candidates per tuned solver (default {DEFAULT_BUDGET})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repetitions", type=int, default=1)
    parser.add_argument("--output", help="the tuned config (default: CONFIG itself)")
    parser.add_argument("--results", help="result file of the tuning runs (default: a "
                        "tuning_<config>_<date>.parquet in the benchmark's outputs/)")
    parser.add_argument("--benchmark", help="the benchmark folder (default: the config's)")
    parser.add_argument("--from-results", help="score this result file of an earlier tuning "
                        "run of the same config, budget and seed instead of running again")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the candidates and stop")
    args = parser.parse_args(argv)
    if args.budget < 1:
        raise SystemExit(f"error: --budget must be >= 1, got {args.budget}.")
    if args.repetitions < 1:
        raise SystemExit(f"error: --repetitions must be >= 1, got {args.repetitions}.")
    config_path = Path(args.config)
    text = config_path.read_text()
    config = yaml.safe_load(text)
    benchmark_dir = benchmark_of(config_path, args.benchmark)
    alternatives = validation_metric(benchmark_dir)
    entries = plan(config, solver_classes(benchmark_dir), args.budget, args.seed,
                   pinned_by_comment(text))
    n_candidates = sum(len(v["candidates"]) for _, variants in entries for v in variants)
    for _, variants in entries:
        for variant in variants:
            print(f"{solver_string(variant['name'], variant['fixed'])}: "
                  + (f"{len(variant['candidates'])} candidates" if variant["space"]
                     else "nothing to tune (no tuning_space, or all pinned), kept as written"))
    if args.dry_run or n_candidates == 0:
        return
    if args.from_results:
        results = Path(args.from_results).resolve()
        df = read_results(results)
    else:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d_%Hh%Mm%S")
        results = Path(args.results or benchmark_dir / "outputs"
                       / f"tuning_{config_path.stem}_{stamp}.parquet").resolve()
        results.parent.mkdir(parents=True, exist_ok=True)
        df = run_candidates(benchmark_dir, config, entries, args.seed, args.repetitions, results)
    parameters = [c for c in df if c.startswith("p_solver_")]
    summary = training_summary(df, alternatives).merge(
        df.groupby(RUN_KEYS, as_index=False)[parameters].first(), on=RUN_KEYS, how="left")
    replacements, tuned = {}, []
    for entry, variants in entries:
        lines = []
        for variant in variants:
            if not variant["space"]:
                lines.append((solver_string(variant["name"], variant["fixed"]), []))
                continue
            losses, finals, notes = candidate_scores(summary, variant)
            chosen = select(losses, finals)
            best = variant["written"] if chosen is None else variant["candidates"][chosen]
            lines.append((solver_string(variant["name"], best),
                          [] if chosen is None else list(variant["space"])))
            tuned.append((variant, notes, chosen))
        replacements[entry] = lines
    # The command that runs the candidates: --from-results only re-scores
    # the result file of that command.
    argv = list(argv if argv is not None else sys.argv[1:])
    if args.from_results:
        at = next(i for i, a in enumerate(argv) if a.startswith("--from-results"))
        del argv[at:at + (1 if "=" in argv[at] else 2)]
    command = shlex.join(["python", "ci/tune.py", *argv])
    if args.from_results:
        command += f" (scored from its result file {results.name})"
    scored_on = summary[["dataset_name", "objective_name"]].drop_duplicates().itertuples(
        index=False)
    record = record_lines(command, args.budget, args.seed, args.repetitions, alternatives,
                          tuned, list(scored_on))
    output = Path(args.output or config_path)
    output.write_text(rewrite(text, replacements, record))
    print(f"tuned config: {output}\ntuning results: {results}")
    for variant, notes, chosen in tuned:
        best = "every candidate diverged" if chosen is None else describe(
            {k: variant["candidates"][chosen][k] for k in variant["space"]})
        print(f"  {solver_string(variant['name'], variant['fixed'])}: {best}")


if __name__ == "__main__":
    main()
