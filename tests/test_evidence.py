"""The evidence table (ci/evidence.py): claims measured from result files,
the README section it writes, and the site's gallery page
(``ci/build_site.sh --evidence``). Each benchmark's claim measures are
tested in that benchmark's tests; here, the machinery and the registry."""
import importlib.util
import os
import shutil
import sys

import pandas as pd
import pytest
import yaml
from benchopt_runs import ROOT, tiny_runs

sys.path.insert(0, str(ROOT / "ci"))
import evidence  # noqa: E402
from evidence import Claim, Finding  # noqa: E402


def load_build_site():
    spec = importlib.util.spec_from_file_location("build_site", ROOT / "ci" / "build_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ista_reaches(threshold):
    """A measure: ISTA's last objective value, holds when below threshold."""
    def measure(results):
        rows = results[results["solver_name"] == "ista"].sort_values("stop_val")
        final = rows["objective_value"].iloc[-1]
        return Finding(f"ISTA ends at {final:.4g}", bool(final < threshold))
    return measure


def tiny_claim(threshold=float("inf"), config="benchmark_unrolling/configs/evidence_tiny.yml"):
    return Claim(key="T1", statement="ISTA lowers the objective", source="Daubechies 2004",
                 config=config, measure=ista_reaches(threshold))


def result_file(folder, stem, values, mtime=None):
    path = folder / f"{stem}.parquet"
    pd.DataFrame({"solver_name": "ista", "stop_val": range(len(values)),
                  "objective_value": values}).to_parquet(path)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_a_claim_is_read_from_the_newest_result_of_its_config(tmp_path):
    claim = tiny_claim(threshold=1.0)
    old = result_file(tmp_path, "evidence_tiny_2026-01-01_10h00m00", [3.0, 2.0], mtime=1e9)
    new = result_file(tmp_path, "evidence_tiny_2026-01-02_10h00m00", [3.0, 0.5], mtime=2e9)
    result_file(tmp_path, "evidence_tinyer_2026-01-03_10h00m00", [3.0], mtime=3e9)
    result_file(tmp_path, "quick_2026-01-03_10h00m00", [3.0], mtime=3e9)
    assert evidence.results_of(claim, tmp_path.glob("*.parquet")) == [old, new]
    assert evidence.assess(claim, new) == Finding("ISTA ends at 0.5", True)
    assert evidence.assess(claim, old) == Finding("ISTA ends at 2", False)
    assert evidence.assess(claim, None).holds is None
    assert "not run" in evidence.assess(claim, None).numbers


def test_a_result_file_without_what_the_claim_reads_cannot_tell(tmp_path):
    path = tmp_path / "evidence_tiny_2026-01-01_10h00m00.parquet"
    pd.DataFrame({"solver_name": ["fista"], "stop_val": [1],
                  "objective_value": [1.0]}).to_parquet(path)
    finding = evidence.assess(tiny_claim(), path)
    assert finding.holds is None
    assert "cannot be read" in finding.numbers and path.name in finding.numbers


def test_markdown_table_and_readme_section(tmp_path):
    claim = tiny_claim()
    result = tmp_path / "evidence_tiny_x.parquet"
    rows = [(claim, Finding("ISTA ends at 0.5 | 1 run", True), result),
            (claim, Finding("ISTA ends at 2", False), None),
            (claim, Finding("not run", None), None)]
    table = evidence.markdown_table(rows)
    lines = table.splitlines()
    assert len(lines) == 5
    # A "|" in the numbers would split the markdown row.
    assert all(line.count("|") == 5 for line in lines)
    assert lines[2].endswith("| holds |") and "`evidence_tiny_x.parquet`" in lines[2]
    assert lines[3].endswith("| does not hold |")
    assert lines[4].endswith("| cannot tell |")

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{evidence.README_BEGIN}\nold table\n{evidence.README_END}\nrest\n")
    evidence.update_readme(table, readme)
    text = readme.read_text()
    assert "old table" not in text and table in text
    assert text.startswith("intro\n") and text.endswith(f"{evidence.README_END}\nrest\n")
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="no evidence markers"):
        evidence.update_readme(table, readme)


def test_the_readme_has_the_evidence_section():
    text = (ROOT / "README.md").read_text()
    assert text.count(evidence.README_BEGIN) == 1 and text.count(evidence.README_END) == 1


def test_every_claim_has_an_evidence_config_of_its_benchmark():
    claims = evidence.all_claims()
    assert claims, "no claim is registered in ci/claims_*.py"
    keys = [claim.key for claim in claims]
    assert len(set(keys)) == len(keys), f"duplicate claim keys {keys}"
    for claim in claims:
        path = claim.config_path
        assert path.is_file(), f"{claim.key}: no config {claim.config}"
        assert path.parent.name == "configs" and (claim.benchmark / "objective.py").is_file()
        assert path.stem.startswith("evidence_"), f"{claim.key}: {path.name}"
        assert isinstance(yaml.safe_load(path.read_text()), dict)
        # The header says what the config shows: a comment before the options.
        assert path.read_text().lstrip().startswith("#"), f"{path.name} has no header"
        assert claim.statement and claim.source and callable(claim.measure)
    configs = evidence.evidence_configs(claims)
    assert len(configs) == len(set(configs)) == len({c.config for c in claims})


def test_gallery_page_links_each_claim_to_its_run(tmp_path, monkeypatch):
    build_site = load_build_site()
    (tiny,) = tiny_runs("unrolling")
    folder = tmp_path / "results"
    folder.mkdir()
    result = folder / "evidence_tiny_2026-01-01_10h00m00.parquet"
    shutil.copy(tiny, result)
    claims = [tiny_claim(), tiny_claim(threshold=-1.0,
                                       config="benchmark_unrolling/configs/evidence_other.yml")]
    monkeypatch.setattr(build_site, "all_claims", lambda: claims)
    site = tmp_path / "site"
    build_site.build([result], site, evidence=True)

    gallery = (site / "evidence.html").read_text()
    final = pd.read_parquet(result).query("solver_name == 'ista'").sort_values("stop_val")
    numbers = f"ISTA ends at {final['objective_value'].iloc[-1]:.4g}"
    assert numbers in gallery and ">holds</td>" in gallery
    # The second claim's config was not run: no numbers, no link.
    assert gallery.count("not run") == 1 and ">cannot tell</td>" in gallery
    anchor = build_site.run_anchor(result)
    assert f'href="benchmark_unrolling/index.html#{anchor}"' in gallery
    report = (site / "benchmark_unrolling" / "index.html").read_text()
    assert f'id="{anchor}"' in report
    index = (site / "index.html").read_text()
    assert 'href="evidence.html"' in index and "1 of 2 claims measured" in index
