"""Device and dtype choice."""
import pytest
import torch

from solvers_common.device import (
    DEVICE_ENV_VAR,
    get_device,
    get_dtype,
    synchronize,
    to_cpu_float64,
)
from solvers_common.unrolled import LISTA


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
