"""Device and dtype choice: get_device's precedence (solver parameter, then
$LEARNOPT_DEVICE, then CUDA when available), the solvers of the three
benchmarks honoring it, and the objectives scoring on the CPU a result whose
tensors are on another device (simulated: this machine has no GPU)."""
import copy
import math
import resource
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from benchopt.benchmark import Benchmark
from benchopt.utils.run_context import RunContext
from torch.utils._pytree import tree_flatten

from solvers_common.device import (
    DEVICE_ENV_VAR,
    get_device,
    get_dtype,
    keep_freed_memory,
    mixed_precision,
    synchronize,
    to_cpu_float64,
)
from solvers_common.models import build_model
from solvers_common.unrolled import LISTA

ROOT = Path(__file__).parents[1]


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def fake_cuda(monkeypatch):
    """CUDA reported available (torch.device('cuda') does not touch a GPU)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


@pytest.mark.parametrize("choice", [None, "auto"])
def test_default_is_cpu_without_cuda(monkeypatch, no_cuda, choice):
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)
    assert get_device(choice) == torch.device("cpu")


@pytest.mark.parametrize("choice", [None, "auto"])
def test_default_is_cuda_when_available(monkeypatch, fake_cuda, choice):
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)
    assert get_device(choice) == torch.device("cuda")


@pytest.mark.parametrize("env", ["", "auto"])
def test_empty_or_auto_env_var_falls_back_to_default(monkeypatch, fake_cuda, env):
    monkeypatch.setenv(DEVICE_ENV_VAR, env)
    assert get_device() == torch.device("cuda")


def test_env_var_overrides_default(monkeypatch, fake_cuda):
    # CUDA "available", yet the environment variable asks for the CPU
    monkeypatch.setenv(DEVICE_ENV_VAR, "cpu")
    assert get_device() == torch.device("cpu")
    assert get_device("auto") == torch.device("cpu")
    # "cpu:0" is distinguishable from the default torch.device("cpu")
    monkeypatch.setenv(DEVICE_ENV_VAR, "cpu:0")
    assert get_device() == torch.device("cpu", 0)


def test_env_var_is_read_without_cuda(monkeypatch, no_cuda):
    monkeypatch.setenv(DEVICE_ENV_VAR, "cpu:0")
    assert get_device(None) == torch.device("cpu", 0)
    monkeypatch.setenv(DEVICE_ENV_VAR, "cuda")
    with pytest.raises(ValueError, match=DEVICE_ENV_VAR):
        get_device()
    monkeypatch.setenv(DEVICE_ENV_VAR, "not-a-device")
    with pytest.raises(ValueError):
        get_device()


def test_parameter_overrides_env_var(monkeypatch, no_cuda):
    # the env var alone would raise (CUDA unavailable): the parameter wins
    monkeypatch.setenv(DEVICE_ENV_VAR, "cuda")
    assert get_device("cpu") == torch.device("cpu")
    assert get_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setenv(DEVICE_ENV_VAR, "cpu:0")
    result = get_device("cpu")
    assert result == torch.device("cpu") and result.index is None


def test_cpu_works(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)
    device = get_device("cpu")
    assert isinstance(device, torch.device) and device.type == "cpu"
    assert torch.ones(2, device=device).sum().item() == 2
    synchronize(device)  # no-op on the CPU
    synchronize("cpu")


@pytest.mark.parametrize("bad", ["not-a-device", "gpu", "cpu:x"])
def test_invalid_string_raises(monkeypatch, bad):
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)
    with pytest.raises(ValueError):
        get_device(bad)


@pytest.mark.parametrize("choice", ["cuda", "cuda:0", "cuda:1",
                                    torch.device("cuda")])
def test_cuda_without_cuda_raises(monkeypatch, no_cuda, choice):
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        get_device(choice)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_raises_on_this_machine(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)
    with pytest.raises(ValueError):
        get_device("cuda")


def test_get_dtype():
    assert get_dtype() is torch.float32
    assert get_dtype("float32") is torch.float32
    assert get_dtype("float64") is torch.float64
    assert get_dtype(torch.float64) is torch.float64
    for bad in ("float16", "double", "int64", ""):
        with pytest.raises(ValueError):
            get_dtype(bad)
    assert get_dtype("bfloat16") is torch.bfloat16


def test_mixed_precision():
    assert mixed_precision("float32") == (torch.float32, None)
    assert mixed_precision("float64") == (torch.float64, None)
    # bfloat16: float32 storage (master weights), bfloat16 products
    assert mixed_precision("bfloat16") == (torch.float32, torch.bfloat16)
    with pytest.raises(ValueError, match="dtype"):
        mixed_precision("float16")


def test_to_cpu_float64_copies_and_leaves_original_untouched():
    generator = torch.Generator().manual_seed(0)
    D = torch.randn(5, 8, generator=generator)
    D /= torch.linalg.vector_norm(D, dim=0)
    network = LISTA(D, 0.1, 3, init="random", generator=generator)
    before = {name: value.clone() for name, value in network.state_dict().items()}
    copy = to_cpu_float64(network)
    assert copy is not network and isinstance(copy, LISTA)
    # the original is unchanged (dtype and values)
    for name, value in network.state_dict().items():
        assert value.dtype == torch.float32
        assert torch.equal(value, before[name])
    # the copy is float64 on the CPU with the same values
    copied = copy.state_dict()
    assert copied.keys() == before.keys()
    for name, value in copied.items():
        assert value.dtype == torch.float64 and value.device.type == "cpu"
        assert torch.equal(value, before[name].double())
    # independent storage: changing the copy leaves the original alone
    with torch.no_grad():
        for parameter in copy.parameters():
            parameter.add_(1.0)
    for name, value in network.state_dict().items():
        assert torch.equal(value, before[name])
    # and it computes in float64
    X = torch.randn(4, 5, generator=generator)
    with torch.no_grad():
        out64 = copy(X.double())
        out32 = network(X)
    assert out64.dtype == torch.float64 and out32.dtype == torch.float32


# ---------------------------------------------------------------------------
# The solvers of the three benchmarks honor the parameter and the variable
# ---------------------------------------------------------------------------

# benchmark: (dataset and its tiny parameters, objective parameters, solver
# and its parameters, (the device it chose, where it put its data) after
# set_objective; a CPU tensor's device has no index, the choice may).
SOLVER_SETUPS = {
    "benchmark_unrolling": (
        ("simulated", dict(n_features=8, n_atoms=16, n_train=32, n_test=16)),
        dict(n_layers=2), ("lista", dict(batch_size=16)),
        lambda solver: (solver.device, solver.X.device)),
    "benchmark_bilevel": (
        ("quadratic", dict(dim_inner=5, dim_outer=3, n_inner_samples=32,
                           n_outer_samples=32)),
        {}, ("aid_cg", {}), lambda solver: (solver.device, solver.theta.device)),
    "benchmark_sparse_training": (
        ("simulated", dict(n_train=32, n_test=16)), dict(model="mlp"),
        ("sgd", dict(batch_size=16, epochs=1)),
        lambda solver: (solver.device_, next(solver.network.parameters()).device)),
}


@pytest.fixture(scope="module")
def benchmarks():
    return {}


def get_benchmark(benchmarks, name):
    if name not in benchmarks:
        benchmarks[name] = Benchmark(ROOT / name)
    return benchmarks[name]


@pytest.fixture(autouse=True, scope="module")
def restore_thread_count():
    """The bilevel objective sets torch to one thread: give the other test
    modules their thread count back."""
    n_threads = torch.get_num_threads()
    yield
    torch.set_num_threads(n_threads)


def make_objective(benchmark, dataset_name, dataset_parameters, objective_parameters):
    dataset = next(d for d in benchmark.get_datasets() if d.name == dataset_name).get_instance(
        **dataset_parameters)
    objective = benchmark.get_benchmark_objective().get_instance(**objective_parameters)
    RunContext().set_run_context(objective, dataset, "dummy", repetition=0, base_seed=0)
    objective.set_data(**dataset.get_data())
    return objective


def set_up_solver(benchmarks, name, device):
    (dataset, dataset_parameters), objective_parameters, (solver_name, parameters), where = (
        SOLVER_SETUPS[name])
    benchmark = get_benchmark(benchmarks, name)
    objective = make_objective(benchmark, dataset, dataset_parameters, objective_parameters)
    solver_class = next(s for s in benchmark.get_solvers() if s.name == solver_name)
    solver = solver_class.get_instance(**parameters, device=device)
    RunContext().set_run_context(objective, "dummy", solver, repetition=0, base_seed=0)
    solver.set_objective(**objective.get_objective())
    chosen, data = where(solver)
    assert data.type == chosen.type, (chosen, data)
    return chosen


@pytest.mark.parametrize("name", sorted(SOLVER_SETUPS))
def test_solvers_honor_env_var_and_parameter(monkeypatch, no_cuda, benchmarks, name):
    # No choice anywhere: the CPU (no CUDA here).
    monkeypatch.delenv(DEVICE_ENV_VAR, raising=False)
    assert set_up_solver(benchmarks, name, "auto") == torch.device("cpu")
    # The variable is read when the parameter is "auto": "cpu:0" is
    # distinguishable from the default.
    monkeypatch.setenv(DEVICE_ENV_VAR, "cpu:0")
    assert set_up_solver(benchmarks, name, "auto") == torch.device("cpu", 0)
    # It asks for CUDA, which this machine lacks: the error names it...
    monkeypatch.setenv(DEVICE_ENV_VAR, "cuda")
    with pytest.raises(ValueError, match=DEVICE_ENV_VAR):
        set_up_solver(benchmarks, name, "auto")
    # ... unless the solver's parameter chooses, which wins.
    device = set_up_solver(benchmarks, name, "cpu")
    assert device == torch.device("cpu") and device.index is None
    # An invalid parameter raises ValueError.
    with pytest.raises(ValueError, match="device"):
        set_up_solver(benchmarks, name, "gpu")


# ---------------------------------------------------------------------------
# The objectives score on the CPU a result handed over on another device
# ---------------------------------------------------------------------------

ACCELERATOR = torch.device("cuda", 0)


def _plain(function, *args, **kwargs):
    with torch._C.DisableTorchFunctionSubclass():
        return function(*args, **kwargs)


def _target_device(args, kwargs):
    """The device a ``Tensor.to`` call asks for (None: the tensor's own)."""
    device = kwargs.get("device")
    for argument in args[1:]:
        if isinstance(argument, torch.Tensor):  # to(other): other's device
            return argument.device
        if isinstance(argument, (str, torch.device)):
            device = argument
    return None if device is None else torch.device(device)


class OnAccelerator(torch.Tensor):
    """A tensor that stands for one on the GPU ``cuda:0``: its ``device``
    says so, and it lets through, without computing, only what a CPU-side
    scorer may do to a GPU tensor before moving it: read its metadata,
    detach, copy it (clone, deepcopy, ``to`` a dtype) on its device, and move
    it with ``to``/``cpu``, which returns a plain CPU tensor of its own
    storage when the target is the CPU (``torch.as_tensor`` does not go
    through ``__torch_function__``: the fixture ``accelerator_log``
    gives it the same behavior). Any other operation that involves it (one
    that would compute on the GPU, or fail mixing devices) is recorded in
    ``OnAccelerator.computed`` and raises. A module's parameter keeps its
    Python object through ``module.to`` (``param.data = moved``): the
    tensor is then on the CPU (``_moved``)."""

    computed = []

    def on_accelerator(self):
        return not self.__dict__.get("_moved", False)

    @property
    def device(self):
        return ACCELERATOR if self.on_accelerator() else _plain(
            torch.Tensor.device.__get__, self)

    @property
    def is_cuda(self):
        return self.device.type == "cuda"

    @property
    def is_cpu(self):
        return self.device.type == "cpu"

    def __deepcopy__(self, memo):
        # A copy on the same device, as a GPU tensor's deepcopy.
        if id(self) not in memo:
            with torch.no_grad():
                new = _plain(torch.Tensor.clone, self).as_subclass(type(self))
            new.requires_grad_(self.requires_grad)
            new.__dict__.update(copy.deepcopy(self.__dict__, memo))
            memo[id(self)] = new
        return memo[id(self)]

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not any(isinstance(a, cls) and a.on_accelerator()
                   for a in tree_flatten((args, kwargs))[0]):
            # All on the CPU: a plain computation with plain results.
            return _plain(func, *args, **kwargs)
        name = getattr(func, "__name__", "")
        descriptor = getattr(getattr(func, "__self__", None), "__name__", None)
        if name == "__get__" or (name == "__set__" and descriptor != "data") or func in (
                torch.Tensor.detach, torch.Tensor.requires_grad_, torch.Tensor.clone,
                torch.Tensor.is_floating_point, torch.Tensor.is_complex, torch.Tensor.size,
                torch.Tensor.dim, torch.Tensor.numel, torch.Tensor.data_ptr,
                torch._has_compatible_shallow_copy_type):
            # Metadata, and copies that stay on the accelerator.
            return super().__torch_function__(func, types, args, kwargs)
        if name == "__set__":  # param.data = value (nn.Module.to, _apply)
            _plain(func, *args, **kwargs)
            args[0].__dict__["_moved"] = not (
                isinstance(args[1], cls) and args[1].on_accelerator())
            return None
        if func in (torch.Tensor.to, torch.Tensor.cpu):
            target = (torch.device("cpu") if func is torch.Tensor.cpu
                      else _target_device(args, kwargs))
            if target is None or target.type != "cpu":
                return super().__torch_function__(func, types, args, kwargs)
            moved = _plain(func, *args, **kwargs)
            if moved.data_ptr() == args[0].data_ptr():  # a move copies
                moved = _plain(torch.Tensor.clone, moved)
            return moved.as_subclass(torch.Tensor)
        cls.computed.append(getattr(func, "__qualname__", None) or repr(func))
        raise RuntimeError(f"{cls.computed[-1]} on a tensor still on {ACCELERATOR}: "
                           "move it to the CPU first")


def on_accelerator(result):
    """A copy of a solver's result (tensors, modules) with its tensors on the
    simulated accelerator: a module's parameters, buffers and tensor
    attributes, as ``module.to("cuda")`` or building it on the GPU would."""
    if isinstance(result, torch.Tensor):
        return result.detach().clone().as_subclass(OnAccelerator)
    if isinstance(result, torch.nn.Module):
        module = copy.deepcopy(result)
        for submodule in module.modules():
            for name, parameter in submodule._parameters.items():
                if parameter is not None:
                    submodule._parameters[name] = torch.nn.Parameter(
                        on_accelerator(parameter), requires_grad=parameter.requires_grad)
            for name, buffer in submodule._buffers.items():
                if buffer is not None:
                    submodule._buffers[name] = on_accelerator(buffer)
            for name, value in vars(submodule).items():
                if isinstance(value, torch.Tensor):
                    setattr(submodule, name, on_accelerator(value))
        tensors = [*module.parameters(), *module.buffers()]
        assert tensors and all(t.device == ACCELERATOR for t in tensors)
        return module
    return result


_as_tensor = torch.as_tensor


def _as_tensor_on_accelerator(data, dtype=None, device=None):
    """``torch.as_tensor``, which takes a tensor without dispatching to its
    ``__torch_function__``, as it treats a GPU tensor: no copy unless asked
    for, a move only to an explicit device."""
    if isinstance(data, OnAccelerator) and data.on_accelerator():
        if device is None or torch.device(device) == ACCELERATOR:
            return data if dtype is None else data.to(dtype)
        return data.to(device=device, dtype=dtype)
    return _as_tensor(data, dtype=dtype, device=device)


@pytest.fixture
def accelerator_log(monkeypatch):
    """The operations that computed on the simulated accelerator."""
    monkeypatch.setattr(torch, "as_tensor", _as_tensor_on_accelerator)
    OnAccelerator.computed.clear()
    yield OnAccelerator.computed
    OnAccelerator.computed.clear()


def test_the_simulated_accelerator_catches_computations(accelerator_log):
    """The check is not vacuous: computing on such a tensor, or with a
    module holding them, is caught; moving them to the CPU is not."""
    tensor = on_accelerator(torch.arange(3.0))
    assert tensor.device == ACCELERATOR and tensor.is_cuda
    with pytest.raises(RuntimeError, match="still on cuda:0"):
        torch.linalg.vector_norm(tensor)
    with pytest.raises(RuntimeError, match="still on cuda:0"):
        tensor + 1
    with pytest.raises(RuntimeError):
        np.asarray(tensor)
    plain_layer = torch.nn.Linear(3, 2)
    layer = on_accelerator(plain_layer)
    with pytest.raises(RuntimeError, match="still on cuda:0"):
        layer(torch.ones(1, 3))
    assert len(accelerator_log) == 4
    accelerator_log.clear()
    # Moves give plain CPU tensors with their own storage, the original
    # left on the accelerator.
    for moved in (tensor.to("cpu", torch.float64), tensor.cpu(), tensor.detach().to("cpu"),
                  torch.as_tensor(tensor, device="cpu")):
        assert type(moved) is torch.Tensor and moved.device.type == "cpu"
        assert moved.data_ptr() != tensor.data_ptr()
        assert torch.equal(moved.float(), torch.arange(3.0))
    assert tensor.device == ACCELERATOR
    # No device asked for: it stays.
    assert tensor.to(torch.float64).device == ACCELERATOR
    assert torch.as_tensor(tensor) is tensor
    assert torch.as_tensor(tensor, dtype=torch.float64).device == ACCELERATOR
    copy64 = to_cpu_float64(layer)
    assert all(p.device.type == "cpu" and p.dtype == torch.float64
               for p in copy64.parameters())
    inputs = torch.ones(1, 3, dtype=torch.float64)
    assert torch.equal(copy64(inputs), to_cpu_float64(plain_layer)(inputs))
    assert all(p.device == ACCELERATOR for p in layer.parameters())  # original untouched
    assert accelerator_log == []


def assert_same_metrics(metrics, expected):
    assert metrics.keys() == expected.keys()
    for key, value in expected.items():
        assert (math.isnan(value) and math.isnan(metrics[key])) or metrics[key] == value, key


def unrolling_result(objective):
    generator = torch.Generator().manual_seed(0)
    network = LISTA(objective.D.float(), objective.lmbd, objective.n_layers, init="random",
                    generator=generator)
    return dict(network=network, multipliers=torch.tensor([0.5, 0.25], dtype=torch.float32))


def bilevel_result(objective):
    theta, lmbd = objective.problem.initial_point()
    generator = torch.Generator().manual_seed(0)
    return dict(theta=(theta + torch.randn(theta.shape, generator=generator)).float(),
                lmbd=(lmbd + torch.randn(lmbd.shape, generator=generator)).float())


def sparse_training_result(objective):
    torch.manual_seed(0)  # build_model draws from torch's global generator
    return dict(model=build_model(objective.model, objective.input_shape, objective.n_classes,
                                  **objective.model_options))


# benchmark: (dataset and its tiny parameters, objective parameters, a
# result as a solver would hand it over, float32).
OBJECTIVE_SETUPS = {
    "unrolling": ("benchmark_unrolling", "simulated",
                  dict(n_features=8, n_atoms=16, n_train=32, n_test=16), dict(n_layers=2),
                  unrolling_result),
    "bilevel": ("benchmark_bilevel", "quadratic",
                dict(dim_inner=5, dim_outer=3, n_inner_samples=32, n_outer_samples=32), {},
                bilevel_result),
    "sparse_training_mlp": ("benchmark_sparse_training", "simulated",
                            dict(n_train=32, n_test=16), dict(model="mlp"),
                            sparse_training_result),
    "sparse_training_crate": ("benchmark_sparse_training", "simulated",
                              dict(n_train=32, n_test=16),
                              dict(model="crate", width=8, depth=1, heads=2, patch_size=2),
                              sparse_training_result),
}


@pytest.mark.parametrize("case", sorted(OBJECTIVE_SETUPS))
def test_objectives_score_an_accelerator_result_on_the_cpu(benchmarks, accelerator_log,
                                                           monkeypatch, case):
    name, dataset, dataset_parameters, objective_parameters, make_result = OBJECTIVE_SETUPS[case]
    benchmark = get_benchmark(benchmarks, name)
    # One objective per scoring: the bilevel one warm-starts its references
    # from the previous evaluation.
    objectives = [make_objective(benchmark, dataset, dataset_parameters, objective_parameters)
                  for _ in range(2)]
    result = make_result(objectives[0])
    evaluate = type(objectives[0]).evaluate_result
    if "images_per_second" in evaluate.__globals__:
        # The transformers' forward speed is timed on the solver's device, on
        # purpose, before the CPU copy: left out (a constant) here.
        monkeypatch.setitem(evaluate.__globals__, "images_per_second", lambda model, X: 1.0)
    expected = objectives[0].evaluate_result(**result)
    moved = {key: on_accelerator(value) for key, value in result.items()}
    metrics = objectives[1].evaluate_result(**moved)
    assert accelerator_log == []
    assert_same_metrics(metrics, expected)
    # The result handed over is left on its device.
    for value in moved.values():
        for tensor in ([value] if isinstance(value, torch.Tensor)
                       else [*value.parameters(), *value.buffers()]
                       if isinstance(value, torch.nn.Module) else []):
            assert tensor.device == ACCELERATOR
    if hasattr(objectives[1], "save_final_results"):
        final = objectives[1].save_final_results(**moved)
        assert accelerator_log == []
        reference = objectives[0].save_final_results(**result)
        if reference is None:
            assert final is None
        else:
            for key, value in reference.items():
                np.testing.assert_array_equal(final[key], value)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_keep_freed_memory_reuses_a_freed_block_without_page_faults():
    """After keep_freed_memory, the memory of a freed 64 MB tensor serves a
    48 MB one: no page faults (by default each is a fresh mmap whose 12,288
    pages fault in on first touch)."""
    if not keep_freed_memory():
        pytest.skip("malloc is not glibc's")

    def faults_of_a_new_filled_block(n_floats):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = torch.empty(n_floats)
        block.fill_(1.0)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        del block
        return faults
    faults_of_a_new_filled_block(16 * 2 ** 20)  # 64 MB, then freed
    assert faults_of_a_new_filled_block(12 * 2 ** 20) < 1000  # 48 MB
