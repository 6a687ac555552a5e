"""ci/gpu_check.sh: on this machine (no CUDA) its CPU fallback runs its
checks and prints one line per check; a check that fails is reported and
makes the script fail. (The whole fallback, four tiny benchopt runs and the
clock test, takes about 2.5 minutes here: `bash ci/gpu_check.sh`.)"""
import os
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "ci" / "gpu_check.sh"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the full GPU check runs on a GPU machine")
def test_cpu_fallback_runs_its_checks(tmp_path):
    # One of the checks, a benchmark's tiny run (each benchopt run costs about
    # 15 s of imports here; the clock test runs in the suite itself).
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=900,
                            env={**os.environ, "GPU_CHECK_LOGS": str(tmp_path),
                                 "GPU_CHECK_ONLY": "benchmark_bilevel"}, cwd=ROOT)
    checks = [line for line in result.stdout.splitlines() if line.startswith("check ")]
    names = [line.split(":")[0].removeprefix("check ") for line in checks]
    assert names == ["device", "benchmark_bilevel", "speed scripts"], (
        result.stdout + result.stderr)
    assert "CPU fallback" in checks[0] and "skipped" in checks[2]
    assert ": ok (" in checks[1] and "Saving result in" in checks[1]
    assert result.returncode == 0
    assert (tmp_path / "benchmark_bilevel.parquet").is_file()


def test_a_failing_check_fails_the_script(tmp_path):
    # The clock test of a copy whose tests folder is missing: pytest fails.
    copy = tmp_path / "repo"
    (copy / "ci").mkdir(parents=True)
    (copy / "ci" / "gpu_check.sh").write_text(SCRIPT.read_text())
    (copy / ".venv").symlink_to(ROOT / ".venv")
    result = subprocess.run(["bash", str(copy / "ci" / "gpu_check.sh")], capture_output=True,
                            text=True, timeout=600, env={**os.environ, "GPU_CHECK_ONLY": "clock",
                                                         "GPU_CHECK_LOGS": str(tmp_path / "l")})
    assert result.returncode == 1
    assert "check clock: FAILED" in result.stdout
