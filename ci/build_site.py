"""Build the static results site from existing result files.

Usage: python ci/build_site.py [--site DIR] RESULT.parquet [RESULT.parquet ...]

Writes to DIR (default ``site/`` at the repository root):

    index.html                      one line per benchmark, linking its report
    plotly.min.js                   plotly.js, from the installed plotly package
    <benchmark>/index.html          the report: the benchmark's custom plots as
                                    interactive plotly figures (PNG exports
                                    beside them), a table per dataset ranking
                                    the solvers, links to benchopt's report
                                    and to the result files
    <benchmark>/plots/<run>/*.png   the custom plots of each result file
    <benchmark>/outputs/*.parquet   the result files, for download
    <benchmark>/learnopt-bench_*<run>.html
                                    benchopt's interactive report (loads its
                                    JavaScript from the web)

The pages load nothing from the web: their one script is the site's own
plotly.min.js, so the reports and their figures display with no network (and
without JavaScript each figure shows as its PNG file). The benchmark a result file
belongs to is the benchmark folder it lies in (``<benchmark>/outputs/...``)
or else the benchmark whose objective produced it. ``ci/build_site.sh`` runs
the quick configs first or finds the newest result files.
"""
import argparse
import datetime
import html
import json
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")

from benchopt.benchmark import Benchmark  # noqa: E402
from benchopt.plotting.generate_html import get_results, render_all_results  # noqa: E402
from benchopt.plotting.helpers import reset_solver_styles  # noqa: E402
from benchopt.results import read_results  # noqa: E402
from plotly.offline import get_plotlyjs  # noqa: E402

from solvers_common.results import (  # noqa: E402
    RUN_KEYS,
    class_attribute,
    final_evaluations,
    metric_alternatives,
    training_summary,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evidence import all_claims, assess, gallery_body, results_of  # noqa: E402
from render_plots import render, short_labels  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# A site folder holds this file; the builder only ever deletes such folders.
MARKER = ".learnopt-site"
SUMMARY = "summary.json"

CSS = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1180px; padding: 0 1em;
       color: #222; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
h4 { margin: 1em 0 0.2em; overflow-wrap: anywhere; }
a { color: #1a5fb4; }
.links a { margin-right: 1.5em; }
.figures { display: flex; flex-direction: column; gap: 20px; }
figure { margin: 0; width: 100%; }
.plotly-figure { width: 100%; min-height: 460px; }
.plotly-figure img, figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #444; white-space: pre-line; word-break: break-all; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left;
         overflow-wrap: anywhere; }
* { box-sizing: border-box; }
td.num { text-align: right; font-family: monospace; white-space: nowrap;
         overflow-wrap: normal; }
td.best { font-weight: bold; }
.flag { color: #a00; font-weight: bold; }
.note { color: #555; font-size: 0.9em; }
"""

# The site's copy of plotly.js, at its root; report pages load it as
# ``../PLOTLY_JS``.
PLOTLY_JS = "plotly.min.js"

# Draws every ``.plotly-figure`` from the JSON of its ``data-spec`` script
# element (replacing its PNG fallback); then sets ``data-figures-rendered``
# on <body> (or ``data-figure-error`` when plotly.js is missing or fails).
LOADER = """
(function () {
  var body = document.body;
  if (typeof Plotly === "undefined") {
    body.dataset.figureError = "plotly.js did not load";
    return;
  }
  var config = {responsive: true, displaylogo: false,
                toImageButtonOptions: {format: "svg"}};
  var pending = Array.prototype.map.call(
    document.querySelectorAll(".plotly-figure"), function (div) {
      var spec = JSON.parse(document.getElementById(div.dataset.spec).textContent);
      div.textContent = "";
      return Plotly.newPlot(div, spec.data, spec.layout, config);
    });
  Promise.all(pending).then(
    function () { body.dataset.figuresRendered = String(pending.length); },
    function (error) { body.dataset.figureError = String(error); });
})();
"""

# Target of the time-to-target column: within this fraction of the best
# final value across solvers.
TARGET_TOLERANCE = 0.01


def page(title, body, scripts=""):
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n{body}\n{scripts}</body>\n</html>\n"
    )


def link(href, text):
    return f'<a href="{quote(href)}">{html.escape(text)}</a>'


def benchmark_dirs():
    return sorted(path.parent for path in ROOT.glob("benchmark_*/objective.py"))


def objective_attribute(benchmark_dir, attribute):
    """A literal class attribute of the benchmark's Objective (``name``,
    ``primary_metric``, ``validation_metric``), read from its source
    (importing it would import that benchmark's ``benchmark_utils``); None
    when it has none."""
    return class_attribute(benchmark_dir / "objective.py", "Objective", attribute)


def objective_name(benchmark_dir):
    name = objective_attribute(benchmark_dir, "name")
    if name is None:
        raise SystemExit(f"error: no Objective.name in {benchmark_dir / 'objective.py'}")
    return name


# For an objective that names no primary metric: benchopt's objective_value.
DEFAULT_PRIMARY_METRIC = {"name": "value", "better": "lower", "beside": []}


def primary_metrics(benchmark_dir):
    """What the benchmark is judged on: the Objective's ``primary_metric``,
    ``{"name": metric, "better": "lower" | "higher", "beside": [metrics shown
    next to it]}``, or a list of such dicts when it depends on the
    objective's parameters (sparse training: accuracy for classification,
    test error for denoising): the first one an objective reports applies."""
    declared = objective_attribute(benchmark_dir, "primary_metric") or DEFAULT_PRIMARY_METRIC
    alternatives = declared if isinstance(declared, list) else [declared]
    for metric in alternatives:
        if (not isinstance(metric, dict) or metric.get("better") not in ("lower", "higher")
                or not metric.get("name")):
            raise SystemExit(
                f"error: Objective.primary_metric of {benchmark_dir.name} must be "
                "{'name': ..., 'better': 'lower' or 'higher', 'beside': [...]} or a list of "
                f"them, got {declared!r}")
    return [{"beside": [], **metric} for metric in alternatives]


def primary_metric(benchmark_dir):
    """The first of :func:`primary_metrics`."""
    return primary_metrics(benchmark_dir)[0]


def split_by_metric(df, alternatives):
    """``[(metric, rows)]``: the rows of each objective grouped under the
    first alternative that the objective reports (a non-NaN column)."""
    groups = {}
    for _, rows in df.groupby("objective_name", sort=False):
        metric = next((m for m in alternatives if f"objective_{m['name']}" in rows
                       and rows[f"objective_{m['name']}"].notna().any()), alternatives[0])
        groups.setdefault(metric["name"], (metric, []))[1].append(rows)
    return [(metric, pd.concat(parts)) for metric, parts in groups.values()]


def owning_benchmark(result_file, objective_names):
    """The benchmark folder a result file belongs to: the one it lies in, or
    else the one whose objective wrote it."""
    result_file = Path(result_file).resolve()
    for benchmark_dir in objective_names:
        if benchmark_dir.resolve() in result_file.parents:
            return benchmark_dir
    names = {name.split("[")[0] for name in read_results(result_file)["objective_name"].unique()}
    matches = [b for b, objective in objective_names.items() if objective in names]
    if len(matches) != 1:
        known = ", ".join(f"{b.name} ({o!r})" for b, o in objective_names.items())
        raise SystemExit(
            f"error: cannot tell which benchmark wrote {result_file}: its objectives are "
            f"{sorted(names)}, the benchmarks' are {known}."
        )
    return matches[0]


def table_columns(df, metric):
    """The primary metric and those of the metrics beside it that the result
    file has (a mode of an objective may report fewer)."""
    return [metric["name"], *(name for name in metric["beside"] if f"objective_{name}" in df)]


def final_values(df, metric, tolerance=TARGET_TOLERANCE, validation=None):
    """Per (dataset, objective, solver), best first within a dataset and
    objective on the primary metric: the median over repetitions of each
    run's value at its final evaluation (its row of largest ``stop_val``,
    NaN when the run ended in NaN) of the primary metric (``<name>``; ``<name>_min`` and
    ``<name>_max`` over repetitions) and of the metrics shown beside it, the
    median final time, the number of repetitions, and the time to target.

    The target of a dataset and objective is the best of the solvers'
    medians, loosened by ``tolerance`` of its magnitude: ``best + tolerance
    * |best|`` when lower is better (1.01 x the best for a positive best),
    ``best - tolerance * |best|`` when higher is. A repetition's time to
    target is its time at its first evaluation that reaches the target
    (infinite when none does); ``time_to_target`` is the median over
    repetitions (infinite unless more than half of them reach it),
    ``reached`` the number of repetitions that reach it. ``diverged`` counts
    the repetitions whose primary metric ended NaN (the medians are those of
    the others); such solvers come last, never ranked.

    With ``validation`` (the objective's ``validation_metric``),
    ``did_not_train`` counts the repetitions whose validation metric ended
    worse than it started (:func:`solvers_common.results.training_summary`);
    solvers with one or more come after the others, never ranked among them;
    ``best_epoch`` is the median over repetitions of the evaluation
    (``stop_val``: the epoch, for solvers evaluated once per epoch) at which
    the validation metric was best."""
    keys = ["dataset_name", "objective_name", "solver_name"]
    column = f"objective_{metric['name']}"
    if column not in df:
        raise SystemExit(f"error: the result file has no column {column}, "
                         "the metric its objective names as primary_metric")
    lower = metric["better"] == "lower"
    names = [metric["name"], *table_columns(df, metric)[1:]]
    ordered = df.sort_values("stop_val", kind="stable")
    last = final_evaluations(ordered).set_index(RUN_KEYS)
    table = last.groupby(keys).agg(
        **{name: (f"objective_{name}", "median") for name in names},
        **{f"{metric['name']}_min": (column, "min"), f"{metric['name']}_max": (column, "max")},
        time=("time", "median"), repetitions=("time", "size"),
        diverged=(column, lambda values: int(values.isna().sum())),
    ).reset_index()
    best = table.groupby(keys[:2])[metric["name"]].transform("min" if lower else "max")
    table["target"] = best + (1 if lower else -1) * tolerance * best.abs()
    runs = ordered.merge(table[keys + ["target"]], on=keys, how="left")
    hit = runs[column] <= runs["target"] if lower else runs[column] >= runs["target"]
    first_hit = runs[hit].groupby(keys + ["idx_rep"], sort=False)["time"].first()
    per_repetition = first_hit.reindex(last.index).fillna(np.inf)
    by_solver = per_repetition.groupby(level=keys)
    reached = by_solver.agg(lambda times: int(np.isfinite(times).sum()))
    table = table.merge(
        pd.DataFrame({"time_to_target": by_solver.median(), "reached": reached}).reset_index(),
        on=keys, how="left")
    table["did_not_train"], table["best_epoch"] = 0, np.nan
    if validation is not None:
        by_solver = training_summary(df, validation).groupby(keys)
        index = table.set_index(keys).index
        table["did_not_train"] = index.map(by_solver["did_not_train"].sum()).fillna(0).astype(int)
        table["best_epoch"] = index.map(by_solver["best_stop_val"].median())
    table["trained"] = (table["did_not_train"] == 0) & (table["diverged"] == 0)
    return table.sort_values(
        ["dataset_name", "objective_name", "trained", "diverged", metric["name"]],
        ascending=[True, True, False, True, lower], na_position="last").reset_index(drop=True)


def ranking_tables(df, metric, labels, validation=None):
    """HTML: one table per dataset (and objective, when a result file has
    several) ranking the solvers on the primary metric; those that did not
    train (see :func:`final_values`) are listed after the ranked ones, flagged,
    without a rank."""
    name = metric["name"]
    beside = table_columns(df, metric)[1:]
    table = final_values(df, metric, validation=validation)
    several = table["objective_name"].nunique() > 1
    parts = []
    for (dataset, objective), rows in table.groupby(["dataset_name", "objective_name"],
                                                    sort=False):
        heading = html.escape(dataset) + (f" &middot; {html.escape(objective)}" if several else "")
        target = rows["target"].iloc[0]
        body = []
        for rank, (_, row) in enumerate(rows.iterrows(), start=1):
            full = row["solver_name"]
            label = html.escape(labels.get(full, full))
            shown_rank = str(rank)
            if not row["trained"]:
                shown_rank = "&ndash;"
                flag, count = (("diverged", row["diverged"]) if row["diverged"]
                               else ("did not train", row["did_not_train"]))
                label += (f' <span class="flag">{flag} '
                          f'({count}/{row["repetitions"]})</span>')
            spread = ("&ndash;" if row["repetitions"] == 1 else
                      f"{row[f'{name}_min']:.4g} &ndash; {row[f'{name}_max']:.4g}")
            to_target = (f"{row['time_to_target']:.3g}" if np.isfinite(row["time_to_target"])
                         else "not reached")
            body.append(
                f'<tr><td class="num">{shown_rank}</td>'
                f'<td title="{html.escape(full)}">{label}</td>'
                f'<td class="num{" best" if rank == 1 else ""}">{row[name]:.6g}</td>'
                f'<td class="num">{spread}</td>'
                + "".join(f'<td class="num">{row[b]:.4g}</td>' for b in beside)
                + f'<td class="num">{to_target}</td>'
                f'<td class="num">{row["reached"]}/{row["repetitions"]}</td>'
                f'<td class="num">{row["time"]:.3g}</td>'
                f'<td class="num">{row["repetitions"]}</td>'
                + (f'<td class="num">{row["best_epoch"]:.3g}</td>' if validation else "")
                + "</tr>")
        parts.append(
            f"<h4>{heading}</h4>\n<p class=\"note\">Target: {target:.6g}.</p>\n"
            f"<table><tr><th>rank</th><th>solver</th>"
            f"<th>{html.escape(name)} (median)</th><th>min &ndash; max</th>"
            + "".join(f"<th>{html.escape(b)} (median)</th>" for b in beside)
            + "<th>time to target [s]</th><th>reached</th><th>time [s]</th>"
            "<th>repetitions</th>"
            + ("<th>best validation epoch (median)</th>" if validation else "")
            + "</tr>\n" + "\n".join(body) + "</table>")
    return "\n".join(parts)


def run_anchor(result_file):
    """The id of a result file's section on its benchmark's page."""
    return f"run-{quote(Path(result_file).stem)}"


def run_section(benchmark_dir, site_bench, result_file, report_page, parquet_copy,
                solver_names, first_figure=0):
    """Render one result file's figures and return its HTML section and the
    number of figures. ``report_page`` is benchopt's report, URL-quoted;
    ``solver_names`` the solvers of the whole page (their colours);
    ``first_figure`` numbers the page's figure elements."""
    run = result_file.stem
    plots_dir = site_bench / "plots" / run
    written = render(benchmark_dir, result_file, plots_dir, solver_names)
    df = read_results(result_file)
    labels = short_labels(df["solver_name"].unique())
    date = str(df["run_date"].iloc[0]) if "run_date" in df else "unknown"
    parts = [f'<h2 id="{run_anchor(result_file)}">Run {html.escape(run)}</h2>']
    parts.append(
        '<p class="links">'
        + link(parquet_copy.relative_to(site_bench).as_posix(),
               f"Download results ({parquet_copy.name})")
        + f'<a href="{report_page}">Interactive benchopt report</a>'
        + '</p>\n<p class="note">The figures below are interactive and need no network: '
        "drag to zoom (double-click to reset), hover for values and full solver names, "
        "click a legend entry to hide or show a solver, double-click it to show it alone; "
        "each has a PNG export beside it. Solvers are labelled by their name and the "
        "parameters that differ between their runs; a solver keeps its colour in every "
        "figure of this page, and the runs of one solver share a hue. benchopt's report "
        "loads its JavaScript from the web. Read the results with "
        "<code>benchopt.results.read_results(\"" + html.escape(parquet_copy.name) + "\")</code> "
        "or render them with <code>benchopt plot -f " + html.escape(parquet_copy.name)
        + "</code>.</p>"
    )
    if written:
        parts.append('<div class="figures">')
        for number, figure in enumerate(written, start=first_figure):
            src = quote(figure.path.relative_to(site_bench).as_posix())
            png = f'<img src="{src}" alt="{html.escape(figure.title)}" loading="lazy">'
            if figure.plotly is None:
                caption = (f"<figcaption>{html.escape(figure.title)} &middot; "
                           f'<a href="{src}">PNG export</a></figcaption>')
                parts.append(f'<figure><a href="{src}">{png}</a>{caption}</figure>')
                continue
            caption = f'<figcaption><a href="{src}">PNG export</a></figcaption>'
            spec = f"figure-{number:03d}"
            # "</" cannot end the script element early ("<\/" is the same JSON).
            data = figure.plotly.replace("</", "<\\/")
            parts.append(
                f'<figure><div class="plotly-figure" data-spec="{spec}">{png}</div>'
                f'<script type="application/json" id="{spec}">{data}</script>{caption}'
                "</figure>")
        parts.append("</div>")
    else:
        parts.append('<p class="note">No custom plot could be drawn from this result file.</p>')
    validation = objective_attribute(benchmark_dir, "validation_metric")
    validation = metric_alternatives(validation) if validation is not None else None
    flag_rule = "" if validation is None else (
        " A solver whose validation metric (<code>"
        + html.escape(", ".join(m["name"] for m in validation))
        + "</code>) ended worse than at its first evaluation in a repetition is flagged "
        "<b>did not train</b> (in how many repetitions) and listed after the ranked ones.")
    for metric, rows in split_by_metric(df, primary_metrics(benchmark_dir)):
        lower = metric["better"] == "lower"
        rule = (f"at most the best + {TARGET_TOLERANCE:.0%} of its magnitude "
                f"({1 + TARGET_TOLERANCE:g} &times; the best when it is positive)" if lower else
                f"at least the best &minus; {TARGET_TOLERANCE:.0%} of its magnitude "
                f"({1 - TARGET_TOLERANCE:g} &times; the best when it is positive)")
        name = html.escape(metric["name"])
        parts.append(
            f"<h3>Solvers ranked on {name}</h3>\n<p class=\"note\">Run date "
            f"{html.escape(date)}; {len(rows)} rows. The benchmark is judged on "
            f"<code>{name}</code> ({metric['better']} is better); solvers are ranked on it "
            "within each dataset, by the median over repetitions of the value at each run's "
            "last evaluation, with its minimum and maximum over repetitions. "
            f"<b>Time to target</b>: the target is {rule}, the best being the best of the "
            "solvers' medians; a repetition's time to target is the solver's time at its "
            "first evaluation that reaches the target; the table gives the median over "
            "repetitions (not reached unless more than half of them reach it) and how many "
            "repetitions reach it. <b>time</b> is the median of the solver's time at its last "
            "evaluation. Times are in seconds; hover a solver for its full name."
            + flag_rule + "</p>\n"
            + ranking_tables(rows, metric, labels, validation))
    n_interactive = sum(figure.plotly is not None for figure in written)
    return "\n".join(parts), len(written), n_interactive


def build_benchmark(benchmark_dir, result_files, site):
    """Write ``site/<benchmark>/`` and its summary for the index."""
    benchmark = Benchmark(benchmark_dir)
    site_bench = site / benchmark_dir.name
    (site_bench / "outputs").mkdir(parents=True)
    home = site_bench / "index.html"
    # benchopt's interactive report of each file, as `benchopt plot` writes
    # it, with "Home" pointing at our report page; get_results copies each
    # file to site_bench/outputs/ for download.
    reset_solver_styles()
    reports = get_results(result_files, site_bench, benchmark, config=None, copy=True)
    for report, rendered in zip(reports, render_all_results(reports, benchmark, home="index.html")):
        (site_bench / report["page"]).write_text(rendered, encoding="utf-8")
    # Every solver of the page, for one colour per solver across its figures.
    solver_names = list(dict.fromkeys(
        name for result_file in result_files
        for name in read_results(result_file)["solver_name"].unique()))
    sections, n_figures, n_interactive = [], 0, 0
    for result_file, report in zip(result_files, reports):
        parquet_copy = site_bench / report["fname"]
        if not parquet_copy.is_file():
            raise SystemExit(f"error: benchopt did not copy {result_file} to {parquet_copy}")
        reset_solver_styles()
        section, count, interactive = run_section(
            benchmark_dir, site_bench, result_file, report["page"], parquet_copy,
            solver_names, first_figure=n_figures)
        sections.append(section)
        n_figures += count
        n_interactive += interactive
    title = benchmark.pretty_name
    body = (
        f'<p>{link("../index.html", "All benchmarks")}</p>\n'
        f"<h1>{html.escape(title)}</h1>\n"
        f'<p class="note">Benchmark folder <code>{html.escape(benchmark_dir.name)}</code>; '
        f"{len(result_files)} result file(s).</p>\n" + "\n".join(sections)
    )
    scripts = (f'<script src="../{PLOTLY_JS}"></script>\n<script>{LOADER}</script>\n'
               if n_interactive else "")
    home.write_text(page(f"{title}: results", body, scripts), encoding="utf-8")
    summary = dict(title=title, n_figures=n_figures, n_interactive=n_interactive,
                   n_files=len(result_files))
    (site_bench / SUMMARY).write_text(json.dumps(summary))


def evidence_page(site, by_benchmark):
    """``site/evidence.html``: the claims, the numbers their result files
    show (among the site's result files) and links to their runs."""
    site_files = [f for files in by_benchmark.values() for f in files]
    rows = []
    for claim in all_claims():
        found = results_of(claim, site_files)
        result_file = found[-1] if found else None
        rows.append((claim, assess(claim, result_file), result_file))

    def run_link(result_file):
        benchmark_dir = next(b for b, files in by_benchmark.items() if result_file in files)
        return f"{benchmark_dir.name}/index.html#{run_anchor(result_file)}"

    body = (
        f'<p>{link("index.html", "All benchmarks")}</p>\n'
        "<h1>What the suite shows</h1>\n"
        '<p class="note">Each claim of the papers the suite implements, the CPU-sized config '
        "that tests it, the numbers read from that config's result file by "
        "<code>ci/claims_&lt;benchmark&gt;.py</code>, and whether the claim holds in that run. "
        "Run them all with <code>bash ci/build_site.sh --evidence</code>.</p>\n"
        + gallery_body(rows, run_link))
    (site / "evidence.html").write_text(page("What the suite shows", body), encoding="utf-8")
    return sum(finding.holds is not None for _, finding, _ in rows), len(rows)


def build(result_files, site, evidence=False):
    site = Path(site).resolve()
    if site.exists() and not (site / MARKER).is_file() and any(site.iterdir()):
        raise SystemExit(
            f"error: {site} exists, is not empty and was not written by this script: "
            "refusing to delete it."
        )
    objective_names = {b: objective_name(b) for b in benchmark_dirs()}
    by_benchmark = {}
    for result_file in result_files:
        result_file = Path(result_file).resolve()
        if not result_file.is_file():
            raise SystemExit(f"error: no result file {result_file}")
        by_benchmark.setdefault(owning_benchmark(result_file, objective_names), []).append(
            result_file)
    for benchmark_dir, files in by_benchmark.items():
        names = [f.name for f in files]
        if len(set(names)) != len(names):
            raise SystemExit(f"error: two result files of {benchmark_dir.name} share a name: "
                             f"{names}")
    if site.exists():
        shutil.rmtree(site)
    site.mkdir(parents=True)
    (site / MARKER).write_text("built by ci/build_site.py; deleted on the next build\n")
    (site / ".nojekyll").touch()  # GitHub Pages: serve the files as they are
    # plotly.js of the installed plotly package, once for every report.
    (site / PLOTLY_JS).write_text(get_plotlyjs(), encoding="utf-8")

    # One process per benchmark, run side by side: benchopt imports each
    # benchmark's `benchmark_utils` package under that same name, so a second
    # benchmark in one process would get the first one's.
    jobs = {}
    for benchmark_dir, files in sorted(by_benchmark.items()):
        command = [sys.executable, __file__, "--site", str(site),
                   "--benchmark", str(benchmark_dir), *map(str, files)]
        jobs[benchmark_dir] = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    failed = []
    for benchmark_dir, job in jobs.items():
        output, _ = job.communicate()
        print(f"=== {benchmark_dir.name}: {', '.join(f.name for f in by_benchmark[benchmark_dir])}")
        print(output, end="", flush=True)
        if job.returncode != 0:
            failed.append(benchmark_dir.name)
    if failed:
        raise SystemExit(f"error: building the report of {', '.join(failed)} failed (see above)")
    rows = []
    for benchmark_dir in jobs:
        summary = json.loads((site / benchmark_dir.name / SUMMARY).read_text())
        if summary["n_figures"] == 0:
            print(f"warning: no custom plot of {benchmark_dir.name} could be drawn from "
                  "its result files", file=sys.stderr)
        rows.append(
            f"<tr><td>{link(f'{benchmark_dir.name}/index.html', summary['title'])}</td>"
            f"<td><code>{html.escape(benchmark_dir.name)}</code></td>"
            f'<td class="num">{summary["n_files"]}</td>'
            f'<td class="num">{summary["n_figures"]}</td></tr>'
        )
    gallery = ""
    if evidence:
        measured, total = evidence_page(site, by_benchmark)
        gallery = (f'<p>{link("evidence.html", "What the suite shows")}: {measured} of '
                   f"{total} claims measured in these result files.</p>\n")
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    body = (
        "<h1>learnopt-bench results</h1>\n"
        f'<p class="note">Built {now} from {len(result_files)} result file(s). '
        "Each report shows the benchmark's figures as interactive plotly figures that need no "
        "network (with PNG exports for papers), tables ranking the solvers on the "
        "benchmark's primary metric, and links to benchopt's report and to the result "
        "files.</p>\n"
        + gallery
        + "<table><tr><th>Benchmark</th><th>Folder</th><th>Result files</th><th>Figures</th></tr>\n"
        + "\n".join(rows) + "\n</table>"
    )
    (site / "index.html").write_text(page("learnopt-bench results", body), encoding="utf-8")
    print(f"Site written to {site}/index.html")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="result files (.parquet)")
    parser.add_argument("--site", type=Path, default=ROOT / "site", help="output folder")
    parser.add_argument("--evidence", action="store_true",
                        help="also write evidence.html: the claims of ci/claims_*.py measured "
                             "on these result files")
    parser.add_argument("--benchmark", type=Path, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args(argv)
    if args.benchmark is None:
        build(args.results, args.site, evidence=args.evidence)
    else:
        build_benchmark(args.benchmark.resolve(), [f.resolve() for f in args.results],
                        args.site.resolve())


if __name__ == "__main__":
    main()
