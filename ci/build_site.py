"""Build the static results site from existing result files.

Usage: python ci/build_site.py [--site DIR] RESULT.parquet [RESULT.parquet ...]

Writes to DIR (default ``site/`` at the repository root):

    index.html                      one line per benchmark, linking its report
    <benchmark>/index.html          the report: the benchmark's custom plots as
                                    PNG files, a table of final values, links
                                    to benchopt's interactive report and to the
                                    result files
    <benchmark>/plots/<run>/*.png   the custom plots of each result file
    <benchmark>/outputs/*.parquet   the result files, for download
    <benchmark>/learnopt-bench_*<run>.html
                                    benchopt's interactive report (loads its
                                    JavaScript from the web)

The pages are plain HTML and CSS with no script and no external resource: the
reports and figures display with no network. The benchmark a result file
belongs to is the benchmark folder it lies in (``<benchmark>/outputs/...``)
or else the benchmark whose objective produced it. ``ci/build_site.sh`` runs
the quick configs first or finds the newest result files.
"""
import argparse
import ast
import datetime
import html
import json
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import matplotlib

matplotlib.use("Agg")

from benchopt.benchmark import Benchmark  # noqa: E402
from benchopt.plotting.generate_html import get_results, render_all_results  # noqa: E402
from benchopt.plotting.helpers import reset_solver_styles  # noqa: E402
from benchopt.results import read_results  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render_plots import render  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# A site folder holds this file; the builder only ever deletes such folders.
MARKER = ".learnopt-site"
SUMMARY = "summary.json"

CSS = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1180px; padding: 0 1em;
       color: #222; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
a { color: #1a5fb4; }
.links a { margin-right: 1.5em; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; width: 560px; }
figure img { width: 560px; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #444; white-space: pre-line; word-break: break-all; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left;
         overflow-wrap: anywhere; }
* { box-sizing: border-box; }
td.num { text-align: right; font-family: monospace; white-space: nowrap;
         overflow-wrap: normal; }
.note { color: #555; font-size: 0.9em; }
"""


def page(title, body):
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def link(href, text):
    return f'<a href="{quote(href)}">{html.escape(text)}</a>'


def benchmark_dirs():
    return sorted(path.parent for path in ROOT.glob("benchmark_*/objective.py"))


def objective_attribute(benchmark_dir, attribute):
    """A literal class attribute of the benchmark's Objective (``name``,
    ``primary_metric``), read from its source (importing it would import
    that benchmark's ``benchmark_utils``); None when it has none."""
    tree = ast.parse((benchmark_dir / "objective.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Objective":
            for statement in node.body:
                if (isinstance(statement, ast.Assign)
                        and any(getattr(t, "id", None) == attribute
                                for t in statement.targets)):
                    return ast.literal_eval(statement.value)
    return None


def objective_name(benchmark_dir):
    name = objective_attribute(benchmark_dir, "name")
    if name is None:
        raise SystemExit(f"error: no Objective.name in {benchmark_dir / 'objective.py'}")
    return name


# For an objective that names no primary metric: benchopt's objective_value.
DEFAULT_PRIMARY_METRIC = {"name": "value", "better": "lower", "beside": []}


def primary_metric(benchmark_dir):
    """What the benchmark is judged on: the Objective's ``primary_metric``
    (``{"name": metric, "better": "lower" | "higher", "beside": [metrics
    shown next to it]}``)."""
    metric = objective_attribute(benchmark_dir, "primary_metric") or DEFAULT_PRIMARY_METRIC
    if metric.get("better") not in ("lower", "higher") or not metric.get("name"):
        raise SystemExit(f"error: Objective.primary_metric of {benchmark_dir.name} must be "
                         f"{{'name': ..., 'better': 'lower' or 'higher', 'beside': [...]}}, "
                         f"got {metric!r}")
    return {"beside": [], **metric}


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


def final_values(df, metric):
    """Per (dataset, objective, solver): the median over repetitions of each
    run's last value of the primary metric and of the metrics shown beside
    it, the number of repetitions and the median time; best first within a
    dataset."""
    keys = ["dataset_name", "objective_name", "solver_name"]
    if f"objective_{metric['name']}" not in df:
        raise SystemExit(f"error: the result file has no column objective_{metric['name']}, "
                         "the metric its objective names as primary_metric")
    names = [metric["name"], *table_columns(df, metric)[1:]]
    last = df.sort_values("stop_val").groupby(keys + ["idx_rep"], sort=False).last()
    table = last.groupby(keys).agg(
        **{name: (f"objective_{name}", "median") for name in names},
        time=("time", "median"), repetitions=("time", "size"),
    ).reset_index()
    return table.sort_values(
        ["dataset_name", metric["name"]], ascending=[True, metric["better"] == "lower"],
        na_position="last").reset_index(drop=True)


def run_section(benchmark_dir, site_bench, result_file, report_page, parquet_copy):
    """Render one result file's PNG figures and return its HTML section and
    the number of figures. ``report_page`` is benchopt's report, URL-quoted."""
    run = result_file.stem
    plots_dir = site_bench / "plots" / run
    written = render(benchmark_dir, result_file, plots_dir)
    df = read_results(result_file)
    date = str(df["run_date"].iloc[0]) if "run_date" in df else "unknown"
    parts = [f"<h2>Run {html.escape(run)}</h2>"]
    parts.append(
        '<p class="links">'
        + link(parquet_copy.relative_to(site_bench).as_posix(),
               f"Download results ({parquet_copy.name})")
        + f'<a href="{report_page}">Interactive benchopt report</a>'
        + '</p>\n<p class="note">The interactive report loads its JavaScript from the web; '
        "the figures below need no network. Read the results with "
        "<code>benchopt.results.read_results(\"" + html.escape(parquet_copy.name) + "\")</code> "
        "or render them with <code>benchopt plot -f " + html.escape(parquet_copy.name)
        + "</code>.</p>"
    )
    if written:
        parts.append('<div class="figures">')
        for path, _, title in written:
            src = path.relative_to(site_bench).as_posix()
            parts.append(
                f'<figure><a href="{quote(src)}"><img src="{quote(src)}" '
                f'alt="{html.escape(title)}"></a>'
                f"<figcaption>{html.escape(title)}</figcaption></figure>"
            )
        parts.append("</div>")
    else:
        parts.append('<p class="note">No custom plot could be drawn from this result file.</p>')
    metric = primary_metric(benchmark_dir)
    names = table_columns(df, metric)
    rows = "".join(
        f"<tr><td>{html.escape(r['dataset_name'])}</td><td>{html.escape(r['solver_name'])}</td>"
        + "".join(f'<td class="num">{r[name]:.6g}</td>' for name in names)
        + f'<td class="num">{r["time"]:.3g}</td><td class="num">{r["repetitions"]}</td></tr>\n'
        for _, r in final_values(df, metric).iterrows()
    )
    headers = "".join(f"<th>{html.escape(name)}</th>" for name in names)
    parts.append(
        f"<h3>Final values</h3>\n<p class=\"note\">Run date {html.escape(date)}; "
        f"{len(df)} rows. The benchmark is judged on <code>{html.escape(metric['name'])}</code> "
        f"({metric['better']} is better); solvers are ranked on it within each dataset. "
        "Values at each run's last evaluation, median over repetitions; time is the "
        "solver's time in seconds.</p>\n"
        f"<table><tr><th>dataset</th><th>solver</th>{headers}<th>time [s]</th>"
        f"<th>repetitions</th></tr>\n{rows}</table>"
    )
    return "\n".join(parts), len(written)


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
    sections, n_figures = [], 0
    for result_file, report in zip(result_files, reports):
        parquet_copy = site_bench / report["fname"]
        if not parquet_copy.is_file():
            raise SystemExit(f"error: benchopt did not copy {result_file} to {parquet_copy}")
        reset_solver_styles()
        section, count = run_section(benchmark_dir, site_bench, result_file, report["page"],
                                     parquet_copy)
        sections.append(section)
        n_figures += count
    title = benchmark.pretty_name
    body = (
        f'<p>{link("../index.html", "All benchmarks")}</p>\n'
        f"<h1>{html.escape(title)}</h1>\n"
        f'<p class="note">Benchmark folder <code>{html.escape(benchmark_dir.name)}</code>; '
        f"{len(result_files)} result file(s).</p>\n" + "\n".join(sections)
    )
    home.write_text(page(f"{title}: results", body), encoding="utf-8")
    summary = dict(title=title, n_figures=n_figures, n_files=len(result_files))
    (site_bench / SUMMARY).write_text(json.dumps(summary))


def build(result_files, site):
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
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    body = (
        "<h1>learnopt-bench results</h1>\n"
        f'<p class="note">Built {now} from {len(result_files)} result file(s). '
        "Each report shows the benchmark's figures as PNG files and links to benchopt's "
        "interactive report and to the result files.</p>\n"
        "<table><tr><th>Benchmark</th><th>Folder</th><th>Result files</th><th>Figures</th></tr>\n"
        + "\n".join(rows) + "\n</table>"
    )
    (site / "index.html").write_text(page("learnopt-bench results", body), encoding="utf-8")
    print(f"Site written to {site}/index.html")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="result files (.parquet)")
    parser.add_argument("--site", type=Path, default=ROOT / "site", help="output folder")
    parser.add_argument("--benchmark", type=Path, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args(argv)
    if args.benchmark is None:
        build(args.results, args.site)
    else:
        build_benchmark(args.benchmark.resolve(), [f.resolve() for f in args.results],
                        args.site.resolve())


if __name__ == "__main__":
    main()
