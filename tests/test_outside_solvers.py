"""The solver contract seen from outside the repository: a solver file that
lives anywhere, copied from a benchmark's template with its network, optimizer
or algorithm written in plain torch, runs end to end through ``benchopt run
<benchmark> -s /path/to/file.py``, and the objective scores its result.

benchmark_unrolling's result is any module mapping signals (N, n) to iterates
(n_layers + 1, N, m): a plain ``torch.nn.Module`` gets every metric but the
iterate-noise ones, which need the ``iterate_noise`` hook of
``UnrolledNetwork`` and are NaN, with one warning per network class.
benchmark_inverse_problems' result is a module ``restorer(y, physics)``: one
without the ``iterate_hook`` argument gets the final PSNR, MSE and time, and
NaN per-iterate and perturbation metrics, with one warning per class.
"""
import math
import shutil
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from benchopt.benchmark import Benchmark
from benchopt.utils.run_context import RunContext
from benchopt_runs import ROOT, benchopt_command, check_finished
from torch import nn

from solvers_common.unrolled import ISTA, UnrolledNetwork, UnrolledTrainer

TIMEOUT = 300  # seconds, for one benchopt run on loaded shared cores
MISSING_HOOK = "forward takes no iterate_noise argument"
CANNOT_CONTINUE = "forward takes no extra_layers argument"

# -- benchmark_unrolling ------------------------------------------------------
# A plain torch module, ISTA with a learned step and threshold per layer,
# trained by its own loop: no import from the suite.
PLAIN_ISTA_OWN_TRAINING = '''
import torch
from benchopt import BaseSolver
from torch import nn


class PlainISTA(nn.Module):
    def __init__(self, D, lmbd, n_layers):
        super().__init__()
        self.register_buffer("D", D)
        step = 1 / torch.linalg.matrix_norm(D, ord=2) ** 2
        self.step = nn.Parameter(step.repeat(n_layers))
        self.threshold = nn.Parameter((step * lmbd).repeat(n_layers))

    def forward(self, x):
        z = x.new_zeros(x.shape[0], self.D.shape[1])
        iterates = [z]
        for step, threshold in zip(self.step, self.threshold):
            u = z - step * (z @ self.D.T - x) @ self.D
            z = torch.sign(u) * torch.clamp(u.abs() - threshold, min=0)
            iterates.append(z)
        return torch.stack(iterates)


class Solver(BaseSolver):
    name = "plain_ista_own_training"
    sampling_strategy = "callback"
    parameters = {"lr": [1e-2]}

    def set_objective(self, X, D, lmbd, n_layers, z_star):
        torch.manual_seed(self.get_seed())
        self.X, self.z_star = X.float(), z_star.float()
        self.network = PlainISTA(D.float(), lmbd, n_layers)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=self.lr)

    def run(self, callback):
        while callback():
            loss = 0.5 * ((self.network(self.X)[-1] - self.z_star) ** 2).sum(-1).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()

    def get_result(self):
        return dict(network=self.network)
'''

# The template with its network replaced by a plain torch module (ISTA with
# one learned step per layer), trained by the template's shared Adam loop.
PLAIN_ISTA_TEMPLATE_LOOP = '''
import torch
from benchmark_utils.trained_solver import TrainedSolver
from torch import nn


class PlainStepISTA(nn.Module):
    def __init__(self, D, lmbd, n_layers):
        super().__init__()
        self.register_buffer("D", D)
        self.lmbd = lmbd
        step = 1 / torch.linalg.matrix_norm(D, ord=2) ** 2
        self.step = nn.Parameter(step.repeat(n_layers))

    def forward(self, x):
        z = x.new_zeros(x.shape[0], self.D.shape[1])
        iterates = [z]
        for step in self.step:
            u = z - step * (z @ self.D.T - x) @ self.D
            z = torch.sign(u) * torch.clamp(u.abs() - step * self.lmbd, min=0)
            iterates.append(z)
        return torch.stack(iterates)


class Solver(TrainedSolver):
    name = "plain_ista_template_loop"
    requirements = ["pip::torch"]
    parameters = {**TrainedSolver.common_parameters}

    def build_network(self, D, lmbd, n_layers, generator):
        return PlainStepISTA(D, lmbd, n_layers)
'''

# -- benchmark_bilevel --------------------------------------------------------
# The template's alternating loop, with a one-step unrolled hypergradient
# taken by torch.autograd on the problem's losses instead of the oracles.
PLAIN_BILEVEL = '''
import torch
from benchmark_utils.bilevel_solver import BilevelSolver


class Solver(BilevelSolver):
    name = "plain_unrolled_step"
    parameters = {"step_size": [0.1], **BilevelSolver.common_parameters}
    step_size_parameters = ("step_size",)

    def step(self):
        inner_batch, _ = self.inner_sampler.sample()
        outer_batch, _ = self.outer_sampler.sample()
        theta = self.theta.detach().requires_grad_(True)
        lmbd = self.lmbd.detach().requires_grad_(True)
        (grad_theta,) = torch.autograd.grad(
            self.problem.inner_loss(theta, lmbd, inner_batch), theta, create_graph=True)
        theta_next = theta - self.step_size * grad_theta
        (grad_lmbd,) = torch.autograd.grad(
            self.problem.outer_loss(theta_next, lmbd, outer_batch), lmbd)
        self.theta = theta_next.detach()
        self.lmbd = (lmbd - self.step_size * grad_lmbd).detach()
'''

# -- benchmark_sparse_training ------------------------------------------------
# The template with a plain torch.optim optimizer.
PLAIN_SPARSE_TRAINING = '''
import torch
from benchmark_utils.training_solver import TrainingSolver


class Solver(TrainingSolver):
    name = "plain_rmsprop"
    requirements = ["pip::torch"]
    parameters = {"lr": [1e-3], "init_density": [1.0], **TrainingSolver.common_parameters}

    def make_optimizer(self, network):
        return torch.optim.RMSprop(network.parameters(), lr=self.lr)
'''

# -- benchmark_inverse_problems -----------------------------------------------
# A plain torch restorer without the iterate hook (unrolled gradient steps
# with a learned step and 3 x 3 smoothing per layer), trained by its own loop:
# no import from the suite.
PLAIN_RESTORATION = '''
import torch
from benchopt import BaseSolver
from torch import nn


class PlainUnrolledSmoothing(nn.Module):
    def __init__(self, n_layers, step):
        super().__init__()
        self.steps = nn.Parameter(torch.full((n_layers,), step))
        self.filters = nn.Parameter(torch.zeros(n_layers, 1, 1, 3, 3))
        with torch.no_grad():
            self.filters[:, 0, 0, 1, 1] = 1.0

    def forward(self, y, physics):
        x = physics.A_adjoint(y)
        for step, kernel in zip(self.steps, self.filters):
            x = x - step * physics.A_adjoint(physics.A(x) - y)
            channels = x.shape[1]
            x = nn.functional.conv2d(x, kernel.expand(channels, 1, 3, 3).to(x.dtype),
                                     padding=1, groups=channels)
        return x


class Solver(BaseSolver):
    name = "plain_restoration_own_training"
    sampling_strategy = "callback"
    parameters = {"lr": [1e-2]}

    def set_objective(self, train_images, physics, noise_level, lipschitz, n_iterations):
        torch.manual_seed(self.get_seed())
        self.clean, self.physics = train_images, physics
        self.y = physics.A(train_images) + noise_level * torch.randn_like(train_images)
        self.restorer = PlainUnrolledSmoothing(3, 1.0 / lipschitz)
        self.optimizer = torch.optim.Adam(self.restorer.parameters(), lr=self.lr)

    def run(self, callback):
        while callback():
            loss = ((self.restorer(self.y, self.physics) - self.clean) ** 2).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()

    def get_result(self):
        return dict(restorer=self.restorer)
'''

# benchmark: (dataset, objective, {file name: (source, solver name, parameters)},
#             max runs). "template" is the benchmark's template, copied as is.
RUNS = {
    "benchmark_unrolling": (
        "simulated[n_features=8,n_atoms=16,n_train=64,n_test=32]",
        "Unrolled sparse coding[n_layers=3]",
        {"copied_template.py": ("template", "my_unrolled_network", "[batch_size=16]"),
         "plain_template_loop.py": (PLAIN_ISTA_TEMPLATE_LOOP, "plain_ista_template_loop",
                                    "[batch_size=16]"),
         "plain_own_training.py": (PLAIN_ISTA_OWN_TRAINING, "plain_ista_own_training", "")},
        2,
    ),
    "benchmark_bilevel": (
        "quadratic[dim_inner=5,dim_outer=3,n_inner_samples=64,n_outer_samples=64]",
        "Bilevel optimization",
        {"copied_template.py": ("template", "my_bilevel_solver", "[batch_size=16,eval_freq=8]"),
         "plain_unrolled_step.py": (PLAIN_BILEVEL, "plain_unrolled_step",
                                    "[batch_size=16,eval_freq=8]")},
        3,
    ),
    "benchmark_sparse_training": (
        "simulated[n_train=64,n_test=32]",
        "Sparse training",
        {"copied_template.py": ("template", "my_sparse_training_method",
                                "[epochs=2,batch_size=32]"),
         "plain_rmsprop.py": (PLAIN_SPARSE_TRAINING, "plain_rmsprop", "[epochs=2,batch_size=32]")},
        3,
    ),
    "benchmark_inverse_problems": (
        "images[source=digits,crop_size=8,n_train=16,n_test=2,degradation=inpainting]",
        "Image restoration[n_iterations=4,noise_levels='0.05']",
        {"copied_template.py": ("template", "my_restoration_method", ""),
         "plain_own_training.py": (PLAIN_RESTORATION, "plain_restoration_own_training", "")},
        3,
    ),
}
METRICS = {
    "benchmark_unrolling": ["value", "nmse", "gap_layer_0", "gap_layer_3",
                            "descent_violation_rate", "distance_descent_rate",
                            "distance_descent_layer_3", "support_size",
                            "gap_input_noise_0.05", "gap_input_noise_0.2"],
    "benchmark_bilevel": ["value", "grad_norm", "inner_gap", "inner_distance", "subopt"],
    "benchmark_sparse_training": ["value", "train_acc", "test_loss", "test_acc", "density",
                                  "neuron_density", "flops_ratio"],
    "benchmark_inverse_problems": ["value", "psnr", "mse", "seconds_per_image"],
}
# The inverse-problem metrics read through the restorer's iterate hook.
RESTORATION_HOOK_METRICS = ["psnr_iter_0", "psnr_iter_4", "gradient_norm_iter_4",
                            "gradient_descent_rate", "psnr_iterate_noise_0.05"]
MISSING_RESTORATION_HOOK = "forward takes no iterate_hook argument"
# Solvers evaluated once (sampling_strategy "run_once"): the inverse-problems
# template, a method that learns nothing.
RUN_ONCE = {"my_restoration_method"}
ITERATE_NOISE = ["gap_iterate_noise_0.05", "gap_iterate_noise_0.1", "gap_iterate_noise_0.2"]


@pytest.fixture(scope="module")
def outside_runs(tmp_path_factory):
    """Start the benchopt runs side by side, each from a folder outside
    the repository holding its solver files; {benchmark: (process, output,
    command)}."""
    started = {}
    for benchmark, (dataset, objective, files, max_runs) in RUNS.items():
        folder = tmp_path_factory.mktemp(benchmark)
        assert ROOT not in folder.parents
        args = ["-d", dataset, "-o", objective, "-n", str(max_runs)]
        for file_name, (source, _, parameters) in files.items():
            path = folder / file_name
            if source == "template":
                shutil.copy(ROOT / benchmark / "solvers" / "template_solver.py", path)
            else:
                path.write_text(source)
            args += ["-s", f"{path}{parameters}"]
        output = folder / "result.parquet"
        command = benchopt_command(benchmark, args, output)
        process = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        started[benchmark] = (process, output, command)
    yield started
    for process, _, _ in started.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


def finished_run(outside_runs, benchmark):
    """The result table and the terminal output of one run."""
    process, output, command = outside_runs[benchmark]
    try:
        text, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        text, _ = process.communicate()
        raise AssertionError(f"benchopt did not finish in {TIMEOUT} s:\n{text[-4000:]}")
    check_finished(command, process.returncode, text, output)
    return pd.read_parquet(output), text


def solver_rows(df, benchmark, name, text):
    rows = df[df["solver_name"].str.split("[", regex=False).str[0] == name]
    max_runs = RUNS[benchmark][3]
    assert len(rows) >= (1 if name in RUN_ONCE else 2), (
        f"{name}: {len(rows)} evaluations, expected up to {max_runs + 1}\n{text[-4000:]}")
    return rows


def assert_finite(rows, metrics, name):
    for metric in metrics:
        column = f"objective_{metric}"
        assert column in rows, f"{name}: no {column}"
        assert np.isfinite(rows[column].to_numpy(float)).all(), (
            f"{name}: {column} = {rows[column].tolist()}")


@pytest.mark.parametrize("benchmark", sorted(RUNS))
def test_solver_files_outside_the_repository_run_end_to_end(outside_runs, benchmark):
    df, text = finished_run(outside_runs, benchmark)
    for _, name, _ in RUNS[benchmark][2].values():
        rows = solver_rows(df, benchmark, name, text)
        assert_finite(rows, METRICS[benchmark], name)
        if benchmark == "benchmark_inverse_problems":
            hooked = rows[[f"objective_{metric}" for metric in RESTORATION_HOOK_METRICS]]
            if name == "my_restoration_method":  # the template passes its iterates
                assert np.isfinite(hooked.to_numpy(float)).all(), (name, hooked)
            else:
                assert np.isnan(hooked.to_numpy(float)).all(), (name, hooked)
        if benchmark != "benchmark_unrolling":
            continue
        iterate_noise = rows[[f"objective_{metric}" for metric in ITERATE_NOISE]].to_numpy(float)
        if name == "my_unrolled_network":
            # The template's network is an UnrolledNetwork: it has the hook.
            assert np.isfinite(iterate_noise).all(), (name, iterate_noise)
        else:
            assert np.isnan(iterate_noise).all(), (name, iterate_noise)
    if benchmark == "benchmark_unrolling":
        # One warning per plain network class, naming the hook, whatever the
        # number of evaluations; none for the template's network.
        for network in ("PlainISTA", "PlainStepISTA"):
            assert text.count(f"{network}.{MISSING_HOOK}") == 1, text[-4000:]
        assert text.count(MISSING_HOOK) == 2, text[-4000:]
    if benchmark == "benchmark_inverse_problems":
        # One warning for the plain restorer's class, however many evaluations.
        assert text.count(f"PlainUnrolledSmoothing.{MISSING_RESTORATION_HOOK}") == 1, (
            text[-4000:])
        # None for the template's restorer, which takes the hook.
        assert f"GradientDescentTikhonov.{MISSING_RESTORATION_HOOK}" not in text, text[-4000:]


# -- The objective of benchmark_unrolling on plain modules, in process --------
class PlainISTA(nn.Module):
    """ISTA in plain torch: the same iterates as solvers_common's ISTA."""

    def __init__(self, D, lmbd, n_layers, with_hook=False):
        super().__init__()
        self.register_buffer("D", D)
        self.step = 1 / torch.linalg.matrix_norm(D, ord=2).item() ** 2
        self.lmbd, self.n_layers, self.with_hook = lmbd, n_layers, with_hook

    def iterates(self, x, iterate_noise=None):
        z = x.new_zeros(x.shape[0], self.D.shape[1])
        iterates = [z]
        for layer in range(1, self.n_layers + 1):
            u = z - self.step * (z @ self.D.T - x) @ self.D
            z = torch.sign(u) * torch.clamp(u.abs() - self.step * self.lmbd, min=0)
            if iterate_noise is not None:
                z = iterate_noise(layer, z)
            iterates.append(z)
        return torch.stack(iterates)

    def forward(self, x):
        return self.iterates(x)


class PlainISTAWithHook(PlainISTA):
    """The same, with the objective's hook in its forward."""

    def forward(self, x, iterate_noise=None):
        return self.iterates(x, iterate_noise)


class CatchAllForward(PlainISTA):
    """A ``**kwargs`` forward may ignore the hook: it does not count."""

    def forward(self, x, **kwargs):
        return self.iterates(x)


@pytest.fixture(scope="module")
def unrolling_objective():
    benchmark = Benchmark(ROOT / "benchmark_unrolling")
    dataset_class = next(d for d in benchmark.get_datasets() if d.name == "simulated")
    dataset = dataset_class.get_instance(n_features=8, n_atoms=16, n_train=48, n_test=16)
    objective = benchmark.get_benchmark_objective().get_instance(n_layers=4)
    RunContext().set_run_context(objective, dataset, "dummy", repetition=0, base_seed=0)
    objective.set_data(**dataset.get_data())
    return objective


def evaluate(objective, network):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = objective.evaluate_result(network=network)
    return metrics, [str(warning.message) for warning in caught]


def test_a_plain_module_gets_every_metric_but_iterate_noise(unrolling_objective):
    objective = unrolling_objective
    objective.warned_without_hook.clear()
    D, lmbd = objective.D, objective.lmbd
    reference, messages = evaluate(objective, ISTA(D, lmbd, 4))
    assert not messages
    plain, messages = evaluate(objective, PlainISTA(D, lmbd, 4))
    # One warning per hook naming the class and the hook, then none at the
    # next evaluations of the same objective.
    assert len(messages) == 2 and f"PlainISTA.{MISSING_HOOK}" in messages[0]
    assert f"PlainISTA.{CANNOT_CONTINUE}" in messages[1]
    assert all("UnrolledNetwork" in message for message in messages)
    assert evaluate(objective, PlainISTA(D, lmbd, 4))[1] == []
    assert set(plain) == set(reference)
    for key, value in reference.items():
        if key.startswith("gap_iterate_noise_") or (
                "extra_layers" in key and key != "gap_extra_layers_0"):
            assert math.isnan(plain[key]), key
        else:
            # The same iterates as solvers_common's ISTA, so the same scores.
            assert plain[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_a_plain_module_with_the_hook_gets_the_iterate_noise_metrics(unrolling_objective):
    objective = unrolling_objective
    D, lmbd = objective.D, objective.lmbd
    reference, _ = evaluate(objective, ISTA(D, lmbd, 4))
    objective.warned_without_hook.clear()
    with_hook, messages = evaluate(objective, PlainISTAWithHook(D, lmbd, 4))
    assert len(messages) == 1 and CANNOT_CONTINUE in messages[0]
    for key, value in reference.items():
        if "extra_layers" not in key or key == "gap_extra_layers_0":
            assert with_hook[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    objective.warned_without_hook.clear()
    catch_all, messages = evaluate(objective, CatchAllForward(D, lmbd, 4))
    assert len(messages) == 2 and f"CatchAllForward.{MISSING_HOOK}" in messages[0]
    assert math.isnan(catch_all["gap_iterate_noise_0.1"])
    assert math.isnan(catch_all["gap_extra_layers_10"])


class Float32Iterates(PlainISTA):
    def forward(self, x):
        return self.iterates(x).float()


class LastIterateOnly(PlainISTA):
    def forward(self, x):
        return self.iterates(x)[-1]


def test_the_contract_is_checked_with_value_errors(unrolling_objective):
    objective = unrolling_objective
    D, lmbd = objective.D, objective.lmbd
    # Iterates in another precision are scored in float64.
    metrics, _ = evaluate(objective, Float32Iterates(D, lmbd, 4))
    assert math.isfinite(metrics["value"])
    with pytest.raises(ValueError, match=r"\(n_layers \+ 1, N, m\)"):
        evaluate(objective, LastIterateOnly(D, lmbd, 4))
    with pytest.raises(ValueError, match="n_layers"):
        evaluate(objective, PlainISTA(D, lmbd, 3))
    with pytest.raises(ValueError, match="network must be a torch.nn.Module"):
        objective.evaluate_result(network=lambda x: x)


class LayersOnly(UnrolledNetwork):
    """ISTA as an UnrolledNetwork that defines only its layers (no
    ``prepare``, no ``input_size``), as the README describes."""

    def __init__(self, D, lmbd, n_layers):
        super().__init__(n_layers, D.shape[1])
        self.register_buffer("D", D)
        self.step = 1 / torch.linalg.matrix_norm(D, ord=2).item() ** 2
        self.lmbd = lmbd

    def preactivation(self, index, z, z_previous, x):
        return z - self.step * (z @ self.D.T - x) @ self.D

    def thresholds(self, x):
        return (self.step * self.lmbd,) * self.n_layers


def test_an_unrolled_network_needs_only_its_layers(make_problem):
    D, X = make_problem(6, 10, 20)
    with torch.no_grad():
        np.testing.assert_allclose(LayersOnly(D, 0.3, 5)(X), ISTA(D, 0.3, 5)(X), rtol=1e-12,
                                   atol=1e-12)


def test_training_noise_needs_the_hook(make_problem):
    D, X = make_problem(6, 10, 20)

    class Learned(PlainISTA):
        def __init__(self, *args):
            super().__init__(*args)
            self.weight = nn.Parameter(torch.ones((), dtype=D.dtype))

        def forward(self, x):
            return self.weight * self.iterates(x)

    z_star = torch.zeros(20, 10, dtype=D.dtype)
    with pytest.raises(ValueError, match="noise_level.*iterate_noise"):
        UnrolledTrainer(Learned(D, 0.3, 4), X, z_star, D, 0.3, batch_size=10, noise_level=0.1)
    # Without noise, a plain module trains.
    network = Learned(D, 0.3, 4)
    UnrolledTrainer(network, X, z_star, D, 0.3, batch_size=10, lr=0.1).train(2)
    assert network.weight.item() != 1.0
