"""What the suite shows: run the evidence configs and tabulate each claim.

Each claim the suite implements has one CPU-sized config that shows it (or
honestly fails to) and a ``measure`` function that reads the numbers from the
config's result file and says whether the claim holds. The claims are
declared in ``ci/claims_<benchmark>.py`` (one module per benchmark, a list
``CLAIMS`` of ``Claim``); this script gathers them.

Usage:
    python ci/evidence.py table [--output FILE] [--update-readme]
        the newest result of each claim's config -> a markdown table (with
        --update-readme, also the README section between the evidence markers)
    python ci/evidence.py list       the claims: key, config, statement
    python ci/evidence.py configs    the evidence configs, one per line

``bash ci/build_site.sh --evidence`` runs the configs and publishes the table
with the figures of each run as the site's gallery page (``evidence.html``).

The numbers in the table always come from result files: a claim whose config
has not been run reads "not run".
"""
import argparse
import dataclasses
import functools
import html
import importlib
import sys
from pathlib import Path
from typing import Callable, Optional

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
CLAIM_MODULES = ("claims_unrolling", "claims_bilevel", "claims_sparse_training",
                 "claims_inverse_problems")
README_BEGIN = "<!-- evidence table: begin (written by ci/evidence.py) -->"
README_END = "<!-- evidence table: end -->"


@dataclasses.dataclass(frozen=True)
class Finding:
    """What a result file shows about a claim: the measured numbers, in one
    line, and whether the claim holds (None: the result file cannot say, for
    example a solver of the config is missing from it; ``numbers`` says why)."""
    numbers: str
    holds: Optional[bool]

    @classmethod
    def of_parts(cls, numbers, verdicts):
        """A claim of several parts (``verdicts``: part name -> holds): it
        holds when every part does; the numbers end with the parts that
        fail."""
        failed = [name for name, holds in verdicts.items() if not holds]
        summary = "all parts hold" if not failed else f"fails: {', '.join(failed)}"
        return cls(f"{numbers}; {summary}", not failed)


class Missing(Exception):
    """The result file lacks what a measure reads (a solver, a dataset, a
    metric: an older config, a run cut short, or a run that raised; a run
    that diverged keeps its rows, see solvers_common.stopping)."""


def cannot_tell_when_missing(measure):
    """Decorate a measure so that a ``Missing`` it raises becomes a Finding
    that cannot tell, and says what is missing."""
    @functools.wraps(measure)
    def wrapped(results):
        try:
            return measure(results)
        except Missing as missing:
            return Finding(f"cannot tell: {missing}", None)
    return wrapped


@dataclasses.dataclass(frozen=True)
class Claim:
    """A finding of a paper and the config that shows it.

    ``measure`` takes the result file of ``config`` as benchopt writes it (a
    DataFrame: ``solver_name``, ``dataset_name``, ``objective_name``,
    ``objective_<metric>`` columns, ``time``, ``stop_val``, ``idx_rep``) and
    returns a ``Finding``."""
    key: str
    statement: str
    source: str
    config: str
    measure: Callable[[pd.DataFrame], Finding]

    @property
    def config_path(self):
        return ROOT / self.config

    @property
    def benchmark(self):
        return self.config_path.parents[1]

    @property
    def output_stem(self):
        """Result files of the config are ``<benchmark>/outputs/<stem>_<date>.parquet``."""
        return self.config_path.stem


def all_claims():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    claims = []
    for name in CLAIM_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            continue
        claims.extend(module.CLAIMS)
    return claims


def results_of(claim, result_files):
    """The result files among ``result_files`` that the claim's config wrote,
    oldest first."""
    return sorted((path for path in map(Path, result_files)
                   if path.stem.startswith(f"{claim.output_stem}_")),
                  key=lambda path: path.stat().st_mtime)


def newest_result(claim):
    """The newest result file of the claim's config, or None."""
    candidates = results_of(claim, (claim.benchmark / "outputs").glob("*.parquet"))
    return candidates[-1] if candidates else None


def assess(claim, result_file):
    """The claim's Finding from ``result_file`` (None: its config was not run)."""
    if result_file is None:
        return Finding(f"not run (`bash ci/build_site.sh --evidence` runs {claim.config})", None)
    results = pd.read_parquet(result_file)
    try:
        return claim.measure(results)
    except (KeyError, IndexError, ValueError) as error:
        # A result file without a solver or metric the claim reads (an older
        # config, a run cut short): say so in the table rather than fail.
        return Finding(f"cannot be read from {Path(result_file).name}: "
                       f"{type(error).__name__}: {error}", None)


def verdict(finding):
    return {True: "holds", False: "does not hold", None: "cannot tell"}[finding.holds]


def evidence_configs(claims):
    """The configs to run, each once (a config may serve several claims)."""
    return list(dict.fromkeys(claim.config for claim in claims))


def markdown_table(rows):
    """``rows``: (claim, finding, result file or None) -> a markdown table."""
    lines = ["| claim | config | measured | verdict |", "|---|---|---|---|"]
    for claim, finding, result_file in rows:
        measured = finding.numbers.replace("|", "/")
        if result_file is not None:
            measured += f" (`{Path(result_file).name}`)"
        lines.append(f"| {claim.statement} ({claim.source}) | `{claim.config}` | {measured} "
                     f"| {verdict(finding)} |")
    return "\n".join(lines)


VERDICT_COLOURS = {True: "#d7f5d7", False: "#f8d7d7", None: "#eeeeee"}


def gallery_body(rows, run_link):
    """HTML of the gallery page: one row per claim. ``rows``: (claim,
    finding, result file or None); ``run_link(result_file)``: the URL of the
    run's section in its benchmark's report."""
    lines = ["<table><tr><th>claim</th><th>source</th><th>config</th><th>measured</th>"
             "<th>verdict</th><th>figures</th></tr>"]
    for claim, finding, result_file in rows:
        figures = ("&ndash;" if result_file is None else
                   f'<a href="{html.escape(run_link(result_file))}">figures and tables</a>')
        lines.append(
            f"<tr><td>{html.escape(claim.statement)}</td><td>{html.escape(claim.source)}</td>"
            f"<td><code>{html.escape(claim.config)}</code></td>"
            f"<td>{html.escape(finding.numbers)}</td>"
            f'<td style="background:{VERDICT_COLOURS[finding.holds]}">'
            f"{verdict(finding)}</td><td>{figures}</td></tr>")
    lines.append("</table>")
    return "\n".join(lines)


def update_readme(table, readme=ROOT / "README.md"):
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise SystemExit(f"error: {readme} has no evidence markers ({README_BEGIN!r})")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_BEGIN}\n{table}\n{README_END}{tail}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["table", "list", "configs"])
    parser.add_argument("--output", type=Path, help="write the table to this file")
    parser.add_argument("--update-readme", action="store_true",
                        help="replace the README's evidence section with the table")
    args = parser.parse_args(argv)
    claims = all_claims()
    if args.command == "list":
        for claim in claims:
            print(f"{claim.key}\t{claim.config}\t{claim.statement}")
        return
    if args.command == "configs":
        print("\n".join(evidence_configs(claims)))
        return
    rows = []
    for claim in claims:
        result_file = newest_result(claim)
        rows.append((claim, assess(claim, result_file), result_file))
    table = markdown_table(rows)
    print(table)
    if args.output:
        args.output.write_text(table + "\n")
    if args.update_readme:
        update_readme(table)


if __name__ == "__main__":
    main()
