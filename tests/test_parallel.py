"""The shipped parallel configs (configs/parallel_dask.yml and
configs/parallel_slurm.yml): a tiny benchmark run on a local dask cluster
gives the metrics of a sequential run with the same seed, and the SLURM config
is one submitit accepts and asks for one GPU per job."""
import json
import os
import subprocess
import sys
import time

import pytest
import yaml
from benchopt import parallel_backends
from benchopt.results import read_results
from benchopt_runs import (
    ROOT,
    TIMEOUT,
    TINY,
    benchopt_command,
    check_finished,
    start_tiny_runs,
    tiny_runs,
)
from pandas.testing import assert_frame_equal

START_TIMEOUT = 90  # seconds for the scheduler and the workers to come up
IDENTITY = ["dataset_name", "objective_name", "solver_name", "idx_rep", "stop_val"]


def metrics(result_file):
    df = read_results(result_file)
    columns = [c for c in df.columns if c.startswith("objective_") and c != "objective_name"]
    return df[IDENTITY + columns].sort_values(IDENTITY).reset_index(drop=True)


def stop(processes):
    """Terminate the processes (workers before the scheduler), kill those
    that do not exit within 20 s."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def dask_cluster(tmp_path):
    """A dask scheduler and two single-thread workers on 127.0.0.1, in
    subprocesses started from a folder other than the repository; yields the
    scheduler's address and a connected client."""
    distributed = pytest.importorskip(
        "distributed", reason="dask is not installed: pip install -e '.[dask]'")
    import dask
    scheduler_file = tmp_path / "scheduler.json"
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = []
    start_tiny_runs("unrolling")  # the sequential run to compare with, meanwhile

    # dask's scratch files in the test's folder, not in /tmp/dask-scratch-space.
    scratch = str(tmp_path / "dask-scratch")
    env = {**os.environ, "DASK_TEMPORARY_DIRECTORY": scratch}

    def start(name, *args):
        with open(logs / f"{name}.log", "w") as log:
            processes.append(subprocess.Popen(
                [sys.executable, "-m", *args], cwd=tmp_path, stdout=log,
                stderr=subprocess.STDOUT, env=env))

    def log_tail():
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(logs.iterdir()))

    client = None
    try:
        # Both exit by themselves if the test dies without stopping them.
        start("scheduler", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
              "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file),
              "--idle-timeout", "600")
        deadline = time.monotonic() + START_TIMEOUT
        while not scheduler_file.is_file() or not scheduler_file.read_text().strip():
            assert processes[0].poll() is None, f"the dask scheduler exited:\n{log_tail()}"
            assert time.monotonic() < deadline, f"no dask scheduler after {START_TIMEOUT} s"
            time.sleep(0.2)
        time.sleep(0.2)  # the file may be half written
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:"), address
        for name in ("worker-1", "worker-2"):
            start(name, "distributed.cli.dask_worker", address, "--host", "127.0.0.1",
                  "--name", name, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                  "--death-timeout", "60")
        with dask.config.set({"temporary-directory": scratch}):
            client = distributed.Client(address, timeout=START_TIMEOUT)
        try:
            client.wait_for_workers(2, timeout=max(1.0, deadline - time.monotonic()))
        except TimeoutError:
            pytest.fail(f"the two dask workers did not start in {START_TIMEOUT} s:\n{log_tail()}")
        yield address, client, log_tail
    finally:
        if client is not None:
            try:
                client.shutdown()  # the scheduler and the workers, gracefully
            except Exception:
                pass  # stop() below ends them anyway
            client.close()
        stop(processes[1:])
        stop(processes[:1])


def test_dask_run_equals_sequential_run(dask_cluster, tmp_path):
    address, client, log_tail = dask_cluster
    # The shipped config, pointed at the test's scheduler.
    config = yaml.safe_load((ROOT / "configs" / "parallel_dask.yml").read_text())
    assert config["backend"] == "dask"
    config["dask_address"] = address
    config_file = tmp_path / "parallel_dask.yml"
    config_file.write_text(yaml.safe_dump(config))

    benchmark, args = TINY["unrolling"]
    output = tmp_path / "dask.parquet"
    command = benchopt_command(benchmark, args, output, "--parallel-config", str(config_file))
    try:
        completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                                   timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the run on dask did not finish in {TIMEOUT} s:\n{log_tail()}")
    check_finished(command, completed.returncode, completed.stdout + completed.stderr, output)
    assert "Distributed run with backend: dask" in completed.stdout

    # The workers, not the benchopt process, ran the solvers: one task per
    # (dataset, objective, solver) here.
    executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    n_runs = read_results(output)["solver_name"].nunique()
    assert n_runs == 2
    assert sum(executed.values()) >= n_runs, (
        f"the dask workers ran {executed} tasks for {n_runs} solver runs:\n{log_tail()}")

    (sequential,) = tiny_runs("unrolling")
    on_dask, alone = metrics(output), metrics(sequential)
    assert len(alone) > 0 and alone["objective_value"].notna().all()
    assert_frame_equal(on_dask, alone, check_exact=True)


def test_slurm_config_asks_one_gpu_per_job(tmp_path, monkeypatch):
    submitit = pytest.importorskip(
        "submitit", reason="submitit is not installed: pip install -e '.[slurm]'")
    from benchopt.parallel_backends.slurm_executor import merge_slurm_configs

    # benchopt's reading of the file (it also marks the process as a cluster
    # front node, which the monkeypatch undoes after the test).
    monkeypatch.setattr(parallel_backends, "_DISTRIBUTED_FRONTAL", False)
    config = parallel_backends.check_parallel_config(
        str(ROOT / "configs" / "parallel_slurm.yml"), None)
    assert config.pop("backend") == "submitit"
    # submitit's SLURM executor checks that srun exists; it is never called.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    executor = submitit.AutoExecutor(tmp_path / "jobs", cluster="slurm")
    # As benchopt does: raises NameError on a key SLURM's executor does not know.
    executor.update_parameters(**merge_slurm_configs(config))
    sbatch = executor._executor._make_submission_file_text("python -c pass", "test")
    assert "#SBATCH --gres=gpu:1" in sbatch
    assert f"#SBATCH --time={config['slurm_time']}" in sbatch
    assert f"#SBATCH --cpus-per-task={config['slurm_cpus_per_task']}" in sbatch
    with pytest.raises(NameError):
        executor.update_parameters(slurm_gpus=1)  # a misspelt key is refused
