"""Print, for each run of a result file, whether its solver trained: its
validation metric at the first and the final evaluation, the evaluation of
its best value, and a flag when it ended worse than it started.

Usage: python ci/training_report.py BENCHMARK RESULT.parquet

The main job prints this after each benchmark's quick run, so that a
newcomer sees at once which methods worked (see
:func:`solvers_common.results.training_summary`). Exits 0 whatever the
flags say: the report states them, the tests check the quick conditions.
"""
import sys
from pathlib import Path

from benchopt.results import read_results

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "ci"))
from render_plots import short_labels  # noqa: E402

from solvers_common.results import (  # noqa: E402
    class_attribute,
    metric_alternatives,
    training_summary,
)


def report(benchmark_dir, result_file):
    """The report's lines."""
    declared = class_attribute(Path(benchmark_dir) / "objective.py", "Objective",
                               "validation_metric")
    if declared is None:
        return [f"{Path(benchmark_dir).name}: its objective declares no validation_metric."]
    summary = training_summary(read_results(result_file), metric_alternatives(declared))
    labels = short_labels(summary["solver_name"])
    lines = [f"{Path(benchmark_dir).name}: validation metric at the first -> final evaluation "
             "(best at evaluation k)"]
    for dataset, rows in summary.groupby("dataset_name", sort=False):
        lines.append(f"  {dataset}")
        for _, run in rows.iterrows():
            flag = ("  DIVERGED" if run["diverged"] else
                    "  DID NOT TRAIN (ended worse than it started)" if run["did_not_train"]
                    else "")
            repetition = f" rep {run['idx_rep']}" if rows["idx_rep"].nunique() > 1 else ""
            lines.append(f"    {labels[run['solver_name']]}{repetition}: {run['metric']} "
                         f"{run['start']:.4g} -> {run['final']:.4g} "
                         f"(best {run['best']:.4g} at {run['best_stop_val']}){flag}")
    flagged = int((summary["did_not_train"]).sum())
    lines.append(f"  {flagged} of {len(summary)} runs flagged." if flagged
                 else f"  all {len(summary)} runs ended better than or equal to their start.")
    return lines


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        raise SystemExit(__doc__.split("\n\n")[1])
    print("\n".join(report(*argv)))


if __name__ == "__main__":
    main()
