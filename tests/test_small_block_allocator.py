"""The small-block CPU allocator (solvers_common/small_block_allocator):
installed as torch's CPU allocator, blocks that never overlap while alive,
values kept, freed blocks reused, large blocks left to torch's allocator,
threads and a forked child."""
import logging
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from solvers_common import small_block_allocator
from solvers_common.small_block_allocator import install_small_block_allocator, serves

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or shutil.which("g++") is None,
    reason="the allocator is built with g++ on Linux")

LARGEST_CACHED = 256 * 1024


@pytest.fixture(scope="module", autouse=True)
def installed():
    assert install_small_block_allocator()
    assert install_small_block_allocator()  # a second call: still installed


def byte_tensor(nbytes, fill):
    return torch.full((nbytes,), fill, dtype=torch.uint8)


def test_small_blocks_are_served_large_ones_are_not():
    assert serves(torch.empty(1, dtype=torch.uint8))
    assert serves(torch.empty(LARGEST_CACHED, dtype=torch.uint8))
    assert not serves(torch.empty(LARGEST_CACHED + 1, dtype=torch.uint8))
    assert not serves(torch.empty(0))
    # Results of torch operations too, not only torch.empty.
    assert serves(torch.randn(64, 22) @ torch.randn(22))


def test_a_freed_block_is_reused_for_the_same_size_class():
    block = torch.empty(1000, dtype=torch.uint8)
    address = block.data_ptr()
    del block
    # 1,000 and 1,024 bytes: the same class (powers of two).
    assert torch.empty(1024, dtype=torch.uint8).data_ptr() == address


def check_live_blocks(live):
    """Every live tensor keeps its fill value; no two served blocks overlap
    (each spans at least its own size)."""
    spans = []
    for fill, tensor in live.items():
        assert bool((tensor == fill % 251).all()), f"tensor {fill} was overwritten"
        if serves(tensor):
            spans.append((tensor.data_ptr(), tensor.data_ptr() + tensor.numel()))
    spans.sort()
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end <= start


def test_random_allocations_keep_their_values_and_never_overlap():
    rng = np.random.default_rng(0)
    live = {}
    for fill in range(3000):
        # Sizes across every class, the class bounds and the fallback.
        nbytes = int(rng.choice([rng.integers(1, 2 * LARGEST_CACHED),
                                 rng.integers(1, 4096),
                                 2 ** int(rng.integers(0, 19)) + int(rng.integers(-1, 2))]))
        live[fill] = byte_tensor(max(nbytes, 1), fill % 251)
        if rng.random() < 0.45:
            del live[int(rng.choice(list(live)))]
        if fill % 500 == 0:
            check_live_blocks(live)
    check_live_blocks(live)


def test_threads_allocating_at_once():
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        live = {}
        try:
            for step in range(2000):
                fill = seed * 10_000 + step
                live[fill] = byte_tensor(int(rng.integers(1, 20_000)), fill % 251)
                if len(live) > 50:
                    live.pop(next(iter(live)))
            check_live_blocks(live)
        except AssertionError as error:
            errors.append(error)
    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


def allocate_in_child(queue):
    tensor = torch.arange(100, dtype=torch.float64)
    queue.put((serves(tensor), float(tensor.sum())))


def test_a_forked_child_allocates():
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=allocate_in_child, args=(queue,))
    child.start()
    result = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0
    assert result == (True, 4950.0)


def test_a_failed_build_is_one_log_line_and_torch_keeps_its_allocator(
        tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("LEARNOPT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", "false")  # a compiler that fails
    with pytest.raises(RuntimeError, match="false failed on small_block_allocator.cpp"):
        small_block_allocator._build()
    assert not list(tmp_path.iterdir())  # no half-written library left
    monkeypatch.setattr(small_block_allocator, "_library", None)
    with caplog.at_level(logging.WARNING, logger="learnopt.allocator"):
        assert not install_small_block_allocator()
    assert [record.getMessage() for record in caplog.records] == [
        "small-block CPU allocator not installed: false failed on "
        "small_block_allocator.cpp: no output"]
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    with pytest.raises(OSError):
        small_block_allocator._build()
    assert not list(tmp_path.iterdir())


def test_the_opt_out_variable_keeps_torch_allocator():
    code = ("import torch\n"
            "from solvers_common.small_block_allocator import "
            "install_small_block_allocator, serves\n"
            "print(install_small_block_allocator(), serves(torch.empty(16)))")
    for value, expected in (("0", "False False"), ("1", "True True")):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env={**os.environ, "LEARNOPT_SMALL_BLOCK_ALLOCATOR": value},
                                timeout=120)
        assert result.stdout.split("\n")[-2] == expected, result.stderr
