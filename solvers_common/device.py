"""Device and dtype choice, shared by every benchmark.

Precedence, highest first: the solver's ``device`` parameter, the environment
variable ``LEARNOPT_DEVICE`` (for example ``cpu``, ``cuda``, ``cuda:1``), then
CUDA when it is available and the CPU otherwise.
"""
import ctypes
import os
import statistics
import sys
import time

import torch

DEVICE_ENV_VAR = "LEARNOPT_DEVICE"
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}
# Dtypes that a solver runs as mixed precision: its products in that dtype
# under torch.autocast, its weights ("master weights"), their gradients and
# the optimizer's state in float32.
AUTOCAST_DTYPES = (torch.bfloat16,)


def get_device(device=None):
    """Return the ``torch.device`` to compute on.

    Parameters
    ----------
    device : str | torch.device | None
        Explicit choice (``"auto"`` and ``None`` mean no choice). When absent,
        ``$LEARNOPT_DEVICE`` is used, then CUDA if available, then the CPU.
    """
    if device is None or device == "auto":
        device = os.environ.get(DEVICE_ENV_VAR) or None
        if device is None or device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(device)
    except RuntimeError as error:
        raise ValueError(
            f"device={device!r} is not a torch device; accepted values: 'auto', "
            "'cpu', 'cuda', 'cuda:<index>'."
        ) from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={str(device)!r} was requested (parameter or ${DEVICE_ENV_VAR}) "
            "but CUDA is not available on this machine; use 'cpu' or 'auto'."
        )
    return device


def get_dtype(dtype="float32"):
    """Return the torch dtype named ``dtype`` (``float32``, ``float64`` or
    ``bfloat16``; see :func:`mixed_precision` for what the last means to a
    trained solver)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is not supported; accepted: {list(DTYPES)}.")
    return DTYPES[dtype]


def mixed_precision(dtype="float32"):
    """``(storage_dtype, autocast_dtype)`` of a solver's ``dtype`` parameter:
    ``float32`` and ``float64`` are ``(dtype, None)``, plain precision;
    ``bfloat16`` is ``(float32, bfloat16)``: data and weights in float32,
    the forward pass under ``torch.autocast(dtype=torch.bfloat16)``."""
    dtype = get_dtype(dtype)
    if dtype in AUTOCAST_DTYPES:
        return torch.float32, dtype
    return dtype, None


def synchronize(device):
    """Wait for queued work on ``device``, so that a clock read afterwards
    counts all of it (CUDA kernels run asynchronously)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_freed_memory():
    """Make glibc's malloc keep the memory that torch frees on the CPU for
    the next allocations: no ``mmap`` for large blocks (``M_MMAP_MAX = 0``)
    and no trimming of the heap (``M_TRIM_THRESHOLD`` at its maximum).

    By default every block above a threshold (at most 32 MB) is a fresh
    ``mmap`` whose pages fault in, zero-filled by the kernel, on first touch,
    and is unmapped when freed. A training step of the unrolled networks at
    Hadou et al.'s size frees and re-allocates such blocks every step (the
    stacked weight gradients, 50 and 60 MB): with this policy the
    constrained LISTA trains at 1,355 to 1,402 signals/s (7 runs of
    benchmarks/unrolling_speed.py) instead of 1,190 to 1,302 (the same
    training loop without it; 2 cores, 2026-11-30).

    Process-wide and permanent: the process keeps the peak of its CPU
    memory instead of returning freed memory to the system. Returns True
    when applied, False where malloc is not glibc's (then nothing
    changes)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))


def median_time(function, device, repeats, warmup=2):
    """Median wall-clock seconds of ``function()`` over ``repeats`` runs
    (None when ``repeats`` is 0), after ``warmup`` untimed runs; the device
    is synchronized around each timed run. For the speed scripts of
    ``benchmarks/``."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        function()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times) if times else None


def callback_loop(callback, run_round, synchronize, n_rounds=None):
    """benchopt's ``callback`` sampling with a clock that counts all of a
    solver's work, none of the scoring, and a score after the last round.

    ``callback()`` is called before the first round (the initial state) and
    after every round of ``run_round()``. benchopt reads its clock when the
    callback is entered, then scores the solver's result untimed; on CUDA the
    work of a round is still queued then, so ``synchronize()`` (a no-argument
    callable, usually :func:`synchronize` of the solver's device) waits for it
    before every call: all of it is counted and none of it runs during the
    evaluation.

    The loop stops when the callback says so (``--max-runs``, ``--timeout``,
    divergence: the state it was called on has just been scored) or after
    ``n_rounds`` rounds (None: no limit). In the latter case the callback has
    been called on the final state too, and benchopt scores it when ``run``
    returns if its schedule skipped that call: the last step is always scored.
    """
    rounds = 0
    while True:
        synchronize()
        if not callback():
            return
        if n_rounds is not None and rounds >= n_rounds:
            return
        run_round()
        rounds += 1


def to_cpu_float64(module):
    """A copy of ``module`` on the CPU in float64, for exact scoring that does
    not depend on the device or precision the solver trained with."""
    import copy

    return copy.deepcopy(module).to(device="cpu", dtype=torch.float64)
