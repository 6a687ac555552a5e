"""Mini-batch sampling, step-size schedules and the SAGA memory."""
import pytest
import torch

from solvers_common.bilevel import MinibatchSampler, SagaMemory, StepSizeSchedule


def draws(seed, n_draws=12):
    sampler = MinibatchSampler(10, 3, torch.Generator().manual_seed(seed))
    return [sampler.sample() for _ in range(n_draws)]


def test_sampler_epochs_cover_every_sample_once():
    sampler = MinibatchSampler(10, 3, torch.Generator().manual_seed(0))
    assert sampler.n_batches == 4 and sum(sampler.weights) == pytest.approx(1)
    for _ in range(3):
        batches = [sampler.sample() for _ in range(sampler.n_batches)]
        covered = sorted(i for batch, _ in batches for i in range(10)[batch])
        assert covered == list(range(10))
        assert sorted(batch_id for _, batch_id in batches) == [0, 1, 2, 3]


def test_sampler_is_reproducible_and_depends_on_the_seed():
    assert draws(0) == draws(0)
    assert [i for _, i in draws(0)] != [i for _, i in draws(1)]


@pytest.mark.parametrize("batch_size", [0, -2, 1.5, 11])
def test_sampler_rejects_bad_batch_sizes(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        MinibatchSampler(10, batch_size, torch.Generator())


def test_step_size_schedule():
    assert StepSizeSchedule(0.5)(100) == 0.5
    assert StepSizeSchedule(1.0, 0.5)(3) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="outer_step"):
        StepSizeSchedule(0.0, name="outer_step")


def test_saga_memory_is_unbiased_and_exact_once_filled():
    weights = [0.5, 0.25, 0.25]
    values = [torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([6.0])]
    full = sum(w * v for w, v in zip(weights, values))
    memory = SagaMemory(weights, (1,))
    for i, value in enumerate(values):
        memory.direction(i, value)
    torch.testing.assert_close(memory.average, full)
    # Same values again: the direction is the full average, whatever block.
    for i in (2, 0):
        torch.testing.assert_close(memory.direction(i, values[i]), full)
    # Unbiased: the expectation over blocks (weights) of the direction for new
    # values is the new full average, given the current table.
    new = [v + 1.0 for v in values]
    expected = sum(w * (n - v + full) for w, n, v in zip(weights, new, values))
    torch.testing.assert_close(expected, sum(w * n for w, n in zip(weights, new)))
