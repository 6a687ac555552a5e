"""Render a benchmark's custom plots (its ``plots/`` folder) of one result
file as PNG files and as plotly figures, both from the data the plots return
(benchopt's ``BasePlot.plot``). The PNG files are for papers; the site
(``ci/build_site.py``) draws the plotly figures with the plotly.js of the
installed plotly package, so they zoom, hover and toggle with no network.

Readable by construction: short solver labels (the solver's name and only the
parameters that differ between the runs of that solver in the result file;
the full name on hover), one colour per solver in every figure of a page,
runs of one solver with different parameters in shades of one hue, legends
outside the axes, log axes where the values span decades.

Usage: python ci/render_plots.py BENCHMARK_DIR RESULT.parquet OUTPUT_DIR
"""
import colorsys
import contextlib
import html
import math
import re
import statistics
import sys
from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import plotly.io as pio  # noqa: E402
from benchopt.benchmark import Benchmark  # noqa: E402
from benchopt.plotting.base import BasePlot  # noqa: E402
from benchopt.plotting.generate_matplotlib import (  # noqa: E402
    get_plot_barchart,
    get_plot_boxplot,
    get_plot_image,
    get_plot_scatter,
)
from benchopt.plotting.helpers import MARKERS_STR, update_plot_data_style  # noqa: E402
from benchopt.results import read_results  # noqa: E402

RENDERERS = {"scatter": get_plot_scatter, "bar_chart": get_plot_barchart,
             "boxplot": get_plot_boxplot, "image": get_plot_image}
# Plot types drawn interactively (an image plot is shown as its PNG file).
INTERACTIVE = {"scatter", "bar_chart", "boxplot"}
# An axis whose values are all positive and span more than this many
# decades is drawn on a log scale.
LOG_DECADES = 2

# Filled markers that stay visible on one point, and plotly's names of them.
VISIBLE_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "p", "h")
PLOTLY_SYMBOLS = {
    "o": "circle", ".": "circle", ",": "circle", "8": "octagon", "s": "square",
    "^": "triangle-up", "v": "triangle-down", "<": "triangle-left", ">": "triangle-right",
    "D": "diamond", "d": "diamond-tall", "P": "cross", "X": "x", "*": "star", "p": "pentagon",
    "h": "hexagon", "H": "hexagon2", "+": "cross-thin-open", "x": "x-thin-open",
    "1": "y-down-open", "2": "y-up-open", "3": "y-left-open", "4": "y-right-open",
    "|": "line-ns-open", "_": "line-ew-open",
}
NO_MARKER = {"", " ", "None", "none", None}
# Colours of solver names: matplotlib's tab10, then Kelly's colours of
# maximum contrast, then golden-angle hues; see family_colors.
TAB10 = [f"C{i}" for i in range(10)]
KELLY = ["#875692", "#F3C300", "#A1CAF1", "#BE0032", "#C2B280", "#008856", "#E68FAC",
         "#0067A5", "#F99379", "#604E97", "#F6A600", "#B3446C", "#DCD300", "#882D17",
         "#8DB600", "#654522", "#E25822", "#2B3D26"]


def family_colors(n):
    """``n`` colours, one per solver name, each as far as can be from those
    before it: tab10 first, then the others greedily (a candidate closer
    than the threshold to a chosen colour waits for a lower threshold)."""
    candidates = [matplotlib.colors.to_rgb(c) for c in TAB10 + KELLY]
    candidates += [colorsys.hls_to_rgb((k * 0.618034) % 1.0, 0.3 + 0.25 * (k % 3) / 2, 0.75)
                   for k in range(max(0, n))]
    chosen = candidates[:min(n, 10)]
    for threshold in (0.35, 0.25, 0.15, 0.0):
        for candidate in candidates[10:]:
            if len(chosen) >= n:
                return chosen
            if candidate not in chosen and all(
                    math.dist(candidate, other) > threshold for other in chosen):
                chosen.append(candidate)
    return chosen[:n]


class Figure(NamedTuple):
    """One rendered plot: the PNG file, benchopt's key of the plot and its
    options, the plot's title, and the plotly figure (a JSON string; None for
    plot types drawn as PNG only)."""
    path: Path
    key: str
    title: str
    plotly: str | None


# ------------------------------------------------------------ solver names

def split_solver_name(name):
    """``"lista[init=ista,lr=0.001]"`` -> ``("lista", {"init": "ista", "lr":
    "0.001"})``; commas inside brackets or parentheses of a value stay."""
    match = re.fullmatch(r"([^\[]+)\[(.*)\]", name)
    if match is None:
        return name, {}
    items = re.split(r",(?![^()\[\]]*[)\]])", match.group(2))
    return match.group(1), dict(item.split("=", 1) for item in items if "=" in item)


def short_labels(names):
    """A short label per solver name: the solver's name plus only the
    parameters whose values differ between the runs of that solver in
    ``names`` (``lista[init=ista,lr=0.001]`` and ``lista[init=random,lr=0.001]``
    give ``lista[init=ista]`` and ``lista[init=random]``; a solver run with
    one setting gives its bare name). Names whose labels would coincide keep
    their full names."""
    names = list(dict.fromkeys(names))
    parsed = {name: split_solver_name(name) for name in names}
    labels = {}
    for name, (base, parameters) in parsed.items():
        siblings = [other for other_base, other in parsed.values() if other_base == base]
        varying = [key for key, value in parameters.items()
                   if any(other.get(key) != value for other in siblings)]
        shown = ",".join(f"{key}={parameters[key]}" for key in varying)
        labels[name] = f"{base}[{shown}]" if shown else base
    counts = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    return {name: label if counts[label] == 1 else name for name, label in labels.items()}


def solver_styles(names):
    """``{name: (rgb colour, marker)}``: one hue per solver (``lista``), the
    runs of one solver with different parameters in lighter and darker
    shades of it, each with its own marker."""
    names = list(dict.fromkeys(names))
    families = {}
    for name in names:
        families.setdefault(split_solver_name(name)[0], []).append(name)
    styles = {}
    colors = family_colors(len(families))
    for index, members in enumerate(families.values()):
        base = colors[index]
        hue, lightness, saturation = colorsys.rgb_to_hls(*base)
        for rank, name in enumerate(members):
            if len(members) > 1:
                low, high = max(0.2, lightness - 0.2), min(0.75, lightness + 0.22)
                shade = low + (high - low) * rank / (len(members) - 1)
                color = colorsys.hls_to_rgb((hue + 0.015 * rank) % 1.0, shade, saturation)
            else:
                color = base
            styles[name] = (tuple(round(c, 4) for c in color),
                            VISIBLE_MARKERS[(index + rank) % len(VISIBLE_MARKERS)])
    return styles


class Styles:
    """The styles ``BasePlot.get_style`` hands out while it is patched: the
    solvers' from :func:`solver_styles`, and a new hue for any other label a
    plot styles (a layer, a model); every label gets its own colour, so a
    trace's colour tells which label (solver) it was drawn for."""

    def __init__(self, solver_names):
        self.solvers = solver_styles(solver_names)
        self.by_label = dict(self.solvers)
        self.by_color = {color: label for label, (color, _) in self.by_label.items()}

    def get(self, label):
        if label not in self.by_label:
            index = len(self.by_label)
            while True:
                color = tuple(round(c, 4) for c in colorsys.hls_to_rgb(
                    (0.11 + index * 0.618034) % 1.0, 0.45, 0.65))
                if color not in self.by_color:
                    break
                index += 1
            self.by_label[label] = (color, VISIBLE_MARKERS[index % len(VISIBLE_MARKERS)])
            self.by_color[color] = label
        color, marker = self.by_label[label]
        return {"color": (*color, 1.0), "marker": MARKERS_STR[marker]}

    def solver_of(self, trace):
        """The solver a trace was styled for, from its colour; None if
        none."""
        color = trace.get("color")
        if color is None:
            return None
        label = self.by_color.get(tuple(round(c, 4) for c in matplotlib.colors.to_rgb(color)))
        return label if label in self.solvers else None


@contextlib.contextmanager
def patched_styles(styles):
    """``BasePlot.get_style`` returns ``styles``' colours while inside."""
    original = BasePlot.get_style
    BasePlot.get_style = lambda plot, label: styles.get(label)
    try:
        yield
    finally:
        BasePlot.get_style = original


# ------------------------------------------------------------------ scales

def finite(values):
    out = []
    for value in values:
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            out.append(value)
    return out


def spans_decades(values, decades=LOG_DECADES):
    """All values positive and the largest more than 10**decades times the
    smallest."""
    values = finite(values)
    return bool(values) and min(values) > 0 and max(values) > 10 ** decades * min(values)


def axis_scales(data):
    """``(x is log, y is log)`` of a scatter plot: the axes the plot asks to
    be log (its ``scale``) and have positive values, and any axis whose
    values span more than LOG_DECADES decades. A plot that names no scale
    asks for none (benchopt's default would be log-log)."""
    scale = data.get("scale") or "linear"
    curves = data["data"]
    xs = [x for curve in curves for x in curve.get("x", [])]
    ys = [y for curve in curves for y in curve.get("y", [])]

    def log(values, asked):
        positive = [v for v in finite(values) if v > 0]
        return bool(positive) and (asked or spans_decades(values))

    return (log(xs, scale in ("semilog-x", "loglog")),
            log(ys, scale in ("semilog-y", "loglog")))


def scale_name(x_log, y_log):
    return {(False, False): "linear", (True, False): "semilog-x",
            (False, True): "semilog-y", (True, True): "loglog"}[(x_log, y_log)]


# ------------------------------------------------------------------ plotly

def rgba(color, alpha=None):
    r, g, b, a = matplotlib.colors.to_rgba(color)
    a = a if alpha is None else alpha
    return f"rgba({round(255 * r)},{round(255 * g)},{round(255 * b)},{a})"


def clean(values):
    """Numbers for JSON: NaN and infinities become null (a gap)."""
    out = []
    for value in values:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(float(value) if math.isfinite(value) else None)
        else:
            out.append(value)
    return out


def symbol(marker):
    if isinstance(marker, int):
        marker = VISIBLE_MARKERS[marker % len(VISIBLE_MARKERS)]
    return PLOTLY_SYMBOLS.get(marker, "circle")


def hover_name(label, solver):
    """The full solver name of a trace drawn for a solver, else its label."""
    if solver is None:
        return html.escape(label)
    return html.escape(solver) if label in (solver, "") else (
        f"{html.escape(label)}<br>{html.escape(solver)}")


def plotly_layout(data, x_log, y_log, **extra):
    title = html.escape(data.get("title") or "").replace("\n", "<br>")
    return dict(
        template="plotly_white", height=460, hovermode="closest",
        title=dict(text=title, x=0, xanchor="left", font=dict(size=15)),
        xaxis=dict(title=dict(text=html.escape(data.get("xlabel") or "")),
                   type="log" if x_log else "linear", showline=True, mirror=True,
                   linecolor="#888", exponentformat="power"),
        yaxis=dict(title=dict(text=html.escape(data.get("ylabel") or "")),
                   type="log" if y_log else "linear", showline=True, mirror=True,
                   linecolor="#888", exponentformat="power"),
        legend=dict(x=1.02, xanchor="left", y=1, yanchor="top", font=dict(size=12),
                    groupclick="togglegroup"),
        margin=dict(l=70, r=20, t=70, b=60), **extra)


def scatter_traces(data, styles, labels):
    traces = []
    x_label, y_label = html.escape(data.get("xlabel") or "x"), html.escape(
        data.get("ylabel") or "y")
    for curve in data["data"]:
        solver = styles.solver_of(curve)
        label = relabel(curve.get("label", ""), solver, labels)
        color = rgba(curve.get("color", (0, 0, 0, 1)))
        group = solver or label
        marker = curve.get("marker")
        lines = "lines" if len(curve["x"]) > 1 else ""
        mode = "+".join(filter(None, [lines, "" if marker in NO_MARKER else "markers"]))
        traces.append(dict(
            type="scatter", x=clean(curve["x"]), y=clean(curve["y"]), name=label,
            legendgroup=group, mode=mode or "lines", line=dict(color=color, width=2.5),
            marker=dict(symbol=symbol(marker), size=8, color=color),
            hovertemplate=(f"<b>{hover_name(label, solver)}</b><br>{x_label}: %{{x:.4g}}"
                           f"<br>{y_label}: %{{y:.4g}}<extra></extra>")))
        for low, high, axis in (("y_low", "y_high", "y"), ("x_low", "x_high", "x")):
            if low in curve and high in curve:
                band = (dict(x=clean(list(curve["x"]) + list(curve["x"])[::-1]),
                             y=clean(list(curve[high]) + list(curve[low])[::-1]))
                        if axis == "y" else
                        dict(x=clean(list(curve[high]) + list(curve[low])[::-1]),
                             y=clean(list(curve["y"]) + list(curve["y"])[::-1])))
                traces.append(dict(type="scatter", **band, fill="toself",
                                   fillcolor=rgba(curve.get("color", (0, 0, 0, 1)), 0.25),
                                   line=dict(width=0), hoverinfo="skip", showlegend=False,
                                   legendgroup=group, mode="lines"))
                break
    return traces


def relabel(label, solver, labels):
    """The trace's label, with a solver's name (full, or shortened by the
    plot) replaced by its short label."""
    if solver is None or not label:
        return label
    base, parameters = split_solver_name(solver)
    shown_base, shown = split_solver_name(label)
    if shown_base == base and all(parameters.get(k) == v for k, v in shown.items()):
        return labels.get(solver, label)
    return label


def plotly_figure(data, styles, labels):
    """The plotly figure (JSON) of one plot's data, or None for a type
    drawn as PNG only."""
    kind = data["type"]
    if kind not in INTERACTIVE or not data["data"]:
        return None
    if kind == "scatter":
        x_log, y_log = axis_scales(data)
        figure = dict(data=scatter_traces(data, styles, labels),
                      layout=plotly_layout(data, x_log, y_log))
    elif kind == "bar_chart":
        traces = []
        for bar in data["data"]:
            solver = styles.solver_of(bar)
            label = relabel(bar.get("label", ""), solver, labels)
            values = finite(bar["y"])
            median = statistics.median(values) if values else None
            color = rgba(bar.get("color", (0.5, 0.5, 0.5, 1)))
            name = hover_name(label, solver)
            traces.append(dict(
                type="bar", x=[label], y=[median], name=label, legendgroup=solver or label,
                marker=dict(color=color), hovertemplate=(
                    f"<b>{name}</b><br>median: %{{y:.4g}}"
                    + ("" if len(values) == len(bar["y"]) else "<br>did not converge")
                    + "<extra></extra>")))
            traces.append(dict(
                type="scatter", x=[label] * len(bar["y"]), y=clean(list(bar["y"])),
                mode="markers", legendgroup=solver or label, showlegend=False,
                marker=dict(symbol="line-ew-open", size=18, color="black"),
                hovertemplate=f"<b>{name}</b><br>repetition: %{{y:.4g}}<extra></extra>"))
        y_log = any(v > 0 for bar in data["data"] for v in finite(bar["y"]))
        figure = dict(data=traces, layout=plotly_layout(data, False, y_log, barmode="overlay"))
        figure["layout"]["xaxis"]["type"] = "category"
    else:  # boxplot
        traces = []
        for box in data["data"]:
            solver = styles.solver_of(box)
            label = relabel(box.get("label", ""), solver, labels)
            xs = [x for x, ys in zip(box["x"], box["y"]) for _ in ys]
            ys = [y for values in box["y"] for y in values]
            traces.append(dict(type="box", x=xs, y=clean(ys), name=label,
                               legendgroup=solver or label,
                               marker=dict(color=rgba(box.get("color", (0.5, 0.5, 0.5, 1))))))
        figure = dict(data=traces, layout=plotly_layout(data, False, False, boxmode="group"))
        figure["layout"]["xaxis"]["type"] = "category"
    # Validated against plotly's schema (a wrong property raises here).
    return pio.to_json(go.Figure(figure), validate=True, engine="json")


# -------------------------------------------------------------- matplotlib

def finish_png(figure):
    """The matplotlib figure of benchopt's renderers, made readable: short
    labels, the legend outside the axes."""
    for axes in figure.axes:
        legend = axes.get_legend()
        if legend is None:
            continue
        handles, texts = axes.get_legend_handles_labels()
        by_label = {}
        for handle, text in zip(handles, texts):
            by_label.setdefault(text, handle)
        n = len(by_label)
        axes.legend(by_label.values(), by_label.keys(), loc="upper left",
                    bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False,
                    fontsize=11 if n <= 12 else 9, ncol=1 if n <= 24 else 2)


def short_plot_data(data, styles, labels):
    """Plot data whose solver traces carry their short labels (for the PNG
    export; plotly relabels on its own)."""
    if data["type"] not in ("scatter", "bar_chart", "boxplot"):
        return data
    traces = [{**trace, "label": relabel(trace.get("label", ""), styles.solver_of(trace),
                                         labels)} for trace in data["data"]]
    out = {**data, "data": traces}
    if data["type"] == "scatter":
        out["scale"] = scale_name(*axis_scales(data))
    return out


# ------------------------------------------------------------------ render

def render(benchmark_dir, result_file, output_dir, solver_names=None):
    """Write one PNG per custom plot and per plot option (dataset,
    objective, ...) to ``output_dir``; return a :class:`Figure` for each.
    ``solver_names``: the solvers the colours are chosen for (all those of
    a page, so that a solver keeps its colour across the page's result
    files); by default those of the result file. Labels are shortened within
    the result file."""
    benchmark = Benchmark(benchmark_dir)
    # The benchmark's own plots: every plot benchopt lists beyond its defaults.
    defaults = {"objective_curve", "bar_chart", "boxplot", "table"}
    custom = [name for name in benchmark.get_plot_names() if name not in defaults]
    df = read_results(result_file)
    run_solvers = list(df["solver_name"].unique())
    styles = Styles(list(solver_names or []) + run_solvers)
    labels = short_labels(run_solvers)
    with patched_styles(styles):
        plot_data, _ = benchmark.get_plot_data(df, custom)
    plot_data = update_plot_data_style(plot_data, plotly=False)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in custom:
        for index, (key, data) in enumerate(plot_data.get(name, {}).items()):
            if data["type"] not in RENDERERS or not data["data"]:
                continue
            interactive = plotly_figure(data, styles, labels)
            short = short_plot_data(data, styles, labels)
            figure = RENDERERS[data["type"]](short)
            finish_png(figure)
            figure.set_size_inches(10, 6)
            # Plot keys hold full dataset names: too long for file names.
            path = output_dir / f"{name}_{index:02d}.png"
            figure.savefig(path, dpi=100, bbox_inches="tight")
            plt.close(figure)
            written.append(Figure(path, key, data.get("title") or name, interactive))
    return written


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    written = render(*sys.argv[1:])
    with open(Path(sys.argv[3]) / "plots.txt", "w") as listing:
        listing.writelines(f"{figure.path.name}\t{figure.key}\n" for figure in written)
    print(f"{len(written)} PNG plots written to {sys.argv[3]} (listed in plots.txt)")
