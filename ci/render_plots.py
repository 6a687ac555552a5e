"""Render a benchmark's custom plots (its ``plots/`` folder) of one result
file as PNG files, which display without a network (benchopt's HTML report
loads its JavaScript from the web).

Usage: python ci/render_plots.py BENCHMARK_DIR RESULT.parquet OUTPUT_DIR
"""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from benchopt.benchmark import Benchmark  # noqa: E402
from benchopt.plotting.generate_matplotlib import (  # noqa: E402
    get_plot_barchart,
    get_plot_boxplot,
    get_plot_image,
    get_plot_scatter,
)
from benchopt.plotting.helpers import update_plot_data_style  # noqa: E402
from benchopt.results import read_results  # noqa: E402

RENDERERS = {"scatter": get_plot_scatter, "bar_chart": get_plot_barchart,
             "boxplot": get_plot_boxplot, "image": get_plot_image}


def render(benchmark_dir, result_file, output_dir):
    """Write one PNG per custom plot and per plot option (dataset,
    objective, ...) to ``output_dir``; return ``(path, key, title)`` for each,
    where ``key`` is benchopt's name of the plot and its options and
    ``title`` the plot's own title."""
    benchmark = Benchmark(benchmark_dir)
    # The benchmark's own plots: every plot benchopt lists beyond its defaults.
    defaults = {"objective_curve", "bar_chart", "boxplot", "table"}
    custom = [name for name in benchmark.get_plot_names() if name not in defaults]
    df = read_results(result_file)
    plot_data, _ = benchmark.get_plot_data(df, custom)
    plot_data = update_plot_data_style(plot_data, plotly=False)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in custom:
        for index, (key, data) in enumerate(plot_data.get(name, {}).items()):
            if data["type"] not in RENDERERS or not data["data"]:
                continue
            figure = RENDERERS[data["type"]](data)
            figure.set_size_inches(10, 6)
            # Plot keys hold full dataset names: too long for file names.
            path = output_dir / f"{name}_{index:02d}.png"
            figure.savefig(path, dpi=100, bbox_inches="tight")
            plt.close(figure)
            written.append((path, key, data.get("title") or name))
    return written


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    written = render(*sys.argv[1:])
    with open(Path(sys.argv[3]) / "plots.txt", "w") as listing:
        listing.writelines(f"{path.name}\t{key}\n" for path, key, _ in written)
    print(f"{len(written)} PNG plots written to {sys.argv[3]} (listed in plots.txt)")
