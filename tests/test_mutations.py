"""The mutation check (ci/mutations.py): its list follows the code, and the
harness works on a copy, where it catches a mutation the tests see and
reports as MISSED one they cannot see, while the checkout stays untouched."""
import hashlib
import importlib.util
import io
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("ci_mutations", ROOT / "ci" / "mutations.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_target_is_found_exactly_once_in_the_current_code(harness):
    """A mutation whose original text moved or appears twice is reported, not
    silently skipped: edit the list with the code."""
    mutations = harness.MUTATIONS
    assert len(mutations) >= 30
    assert len({item.id for item in mutations}) == len(mutations)
    assert harness.target_problems(ROOT, mutations) == {}
    for item in mutations:
        assert item.description and item.tests
        assert " | " not in item.description  # the report's column separator
        for test in item.tests:
            assert (ROOT / test.split("::")[0]).is_file(), (item.id, test)
    # The areas the list must cover, each by at least one mutation.
    files = {path for item in mutations for path in item.files}
    for required in ("solvers_common/prox.py", "solvers_common/lasso.py",
                     "solvers_common/unrolled/networks.py", "solvers_common/unrolled/training.py",
                     "solvers_common/bilevel/variance_reduction.py",
                     "solvers_common/bilevel/fused.py", "solvers_common/optim/bregman.py",
                     "solvers_common/metrics/coding_rate.py",
                     "solvers_common/models/transformers.py",
                     "solvers_common/inverse_problems/dictionary.py",
                     "solvers_common/inverse_problems/restorers.py",
                     "solvers_common/inverse_problems/training.py",
                     "solvers_common/bilevel/sparse_cd.py",
                     "solvers_common/bilevel/sparse_hypergradients.py"):
        assert required in files, required
    for name in ("soba", "saba", "srba", "amigo", "ttsa", "vrbo", "fsla", "f2sa"):
        assert f"benchmark_bilevel/solvers/{name}.py" in files, name


def test_stale_targets_are_reported(harness, tmp_path):
    (tmp_path / "module.py").write_text("x = 1\ny = 1\n")
    mutation = harness.mutation
    problems = harness.target_problems(tmp_path, [
        mutation("absent", ("module.py", "z = 1", "z = 2"), "tests/x.py", "-"),
        mutation("twice", ("module.py", " = 1", " = 2"), "tests/x.py", "-"),
        mutation("no-file", ("other.py", "x", "y"), "tests/x.py", "-"),
        mutation("syntax", ("module.py", "x = 1", "x = (1"), "tests/x.py", "-"),
        mutation("fine", ("module.py", "x = 1", "x = 2"), "tests/x.py", "-"),
    ])
    assert sorted(problems) == ["absent", "no-file", "syntax", "twice"]
    assert "found 0 times" in problems["absent"][0]
    assert "found 2 times" in problems["twice"][0]


def test_a_copy_restores_every_byte_and_moves_the_modification_time(harness, tmp_path):
    (tmp_path / "module.py").write_text("value = 1  # one\n")
    copy = harness.Copy(tmp_path)
    item = harness.mutation("m", ("module.py", "value = 1", "value = 2"), "tests/x.py", "-")
    before = os.stat(tmp_path / "module.py").st_mtime
    originals = copy.apply(item)
    mutated = os.stat(tmp_path / "module.py").st_mtime
    assert (tmp_path / "module.py").read_text() == "value = 2  # one\n"
    copy.restore(originals)
    assert (tmp_path / "module.py").read_text() == "value = 1  # one\n"
    # Whole seconds apart: a .pyc (which records whole seconds) or a numba
    # cache of the other version is never taken for this one.
    assert int(mutated) > int(before)
    assert int(os.stat(tmp_path / "module.py").st_mtime) > int(mutated)
    with pytest.raises(ValueError, match="outside the copy"):
        copy.apply(harness.mutation("out", ("../escape.py", "a", "b"), "tests/x.py", "-"))


def test_the_harness_catches_in_its_copy_and_reports_what_passes_as_missed(harness):
    """Two mutations of soft-thresholding, run in a copy: the sign dropped
    (caught by the hand values: the copy's code is what the tests import,
    since the checkout's passes them) and a comment reworded (the tests
    still pass: MISSED). The checkout's file is the same before and after."""
    prox = ROOT / "solvers_common" / "prox.py"
    before = digest(prox)
    mutation = harness.mutation
    mutations = [
        mutation("sign", ("solvers_common/prox.py",
                          "return torch.sign(z).detach() * torch.relu(z.abs() - threshold)",
                          "return torch.relu(z.abs() - threshold)"),
                 "tests/test_prox.py", "soft-thresholding without sign(z)",
                 keyword="soft_threshold_hand_values"),
        mutation("comment", ("solvers_common/prox.py", "# sign has zero derivative",
                             "# the sign has a zero derivative"),
                 "tests/test_prox.py", "a comment reworded",
                 keyword="soft_threshold_hand_values"),
    ]
    out = io.StringIO()
    outcomes = harness.run(mutations, source=ROOT, baseline=False, out=out)
    report = out.getvalue()
    assert [outcome.status for outcome in outcomes] == ["caught", "MISSED"], report
    assert any("test_soft_threshold_hand_values" in name for name in outcomes[0].failed)
    assert outcomes[1].failed == ()
    assert "caught 1 / 2" in report and "MISSED: comment" in report
    lines = [line for line in report.splitlines() if line.startswith(("sign |", "comment |"))]
    assert len(lines) == 2 and "| caught |" in lines[0] and "| MISSED |" in lines[1]
    assert digest(prox) == before
