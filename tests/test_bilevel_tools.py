"""Mini-batch sampling, step-size schedules and the SAGA memory."""
import copy

import pytest
import torch

from solvers_common.bilevel import (
    MinibatchSampler,
    RecursiveEstimator,
    SagaMemory,
    StepSizeSchedule,
    check_fraction,
)


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


class SagaMemoryUpdatingTheAverageFirst(SagaMemory):
    """A wrong SAGA: the average takes the new value before the direction is
    formed. The unbiasedness check below must reject it."""

    def direction(self, batch_id, value):
        difference = value - self.table[batch_id]
        self.average += self.weights[batch_id] * difference
        direction = difference + self.average
        self.table[batch_id] = value
        return direction


def saga_directions(memory, fresh):
    """The direction ``memory`` returns for block i with the fresh value
    fresh[i], for every i, each from the same state (a copy of ``memory``)."""
    return [copy.deepcopy(memory).direction(i, value) for i, value in enumerate(fresh)]


def filled_memory(memory_class, weights, generator):
    memory = memory_class(weights, (3,), dtype=torch.float64)
    for i in range(len(weights)):
        memory.direction(i, torch.randn(3, generator=generator, dtype=torch.float64))
    return memory


def test_saga_memory_direction_is_unbiased():
    """SAGA (Defazio et al. 2014): for a fixed table, the direction for block
    i is g_i - table[i] + sum_j w_j table[j] (the average before the update),
    so that its expectation over i drawn with the weights is the full average
    of the fresh values sum_i w_i g_i."""
    weights = [0.4, 0.3, 0.2, 0.1]
    generator = torch.Generator().manual_seed(0)
    memory = filled_memory(SagaMemory, weights, generator)
    # A state reached by updates, not only by the first fill.
    memory.direction(2, torch.randn(3, generator=generator, dtype=torch.float64))
    table, average = memory.table.clone(), memory.average.clone()
    torch.testing.assert_close(average, sum(w * row for w, row in zip(weights, table)))
    fresh = [torch.randn(3, generator=generator, dtype=torch.float64) for _ in weights]
    directions = saga_directions(memory, fresh)
    for i, direction in enumerate(directions):
        torch.testing.assert_close(direction, fresh[i] - table[i] + average)
    full = sum(w * g for w, g in zip(weights, fresh))
    torch.testing.assert_close(sum(w * d for w, d in zip(weights, directions)), full)
    # The state the copies started from is untouched; an update stores the
    # value and keeps the average equal to the weighted mean of the table.
    torch.testing.assert_close(memory.table, table)
    memory.direction(1, fresh[1])
    torch.testing.assert_close(memory.table[1], fresh[1])
    torch.testing.assert_close(memory.average,
                               sum(w * row for w, row in zip(weights, memory.table)))


def test_saga_unbiasedness_check_rejects_an_average_updated_first():
    """The check above discriminates: with the average updated before the
    direction is formed, the expectation is off by sum_i w_i^2 (g_i - table[i])."""
    weights = [0.4, 0.3, 0.2, 0.1]
    generator = torch.Generator().manual_seed(0)
    memory = filled_memory(SagaMemoryUpdatingTheAverageFirst, weights, generator)
    table = memory.table.clone()
    fresh = [torch.randn(3, generator=generator, dtype=torch.float64) for _ in weights]
    expectation = sum(w * d for w, d in zip(weights, saga_directions(memory, fresh)))
    full = sum(w * g for w, g in zip(weights, fresh))
    bias = sum(w ** 2 * (g - row) for w, g, row in zip(weights, fresh, table))
    torch.testing.assert_close(expectation - full, bias)
    assert float(bias.abs().max()) > 0.05


def test_saga_memory_is_exact_once_filled():
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


def test_recursive_estimator_sarah_tracks_a_linear_oracle_exactly():
    """For an oracle linear in z, g_k(z_k) - g_k(z_{k-1}) = A_k (z_k - z_{k-1}):
    SARAH (momentum 0) started from the full value tracks the full oracle up
    to the noise of the differences, and exactly when every batch sees the
    same matrix."""
    generator = torch.Generator().manual_seed(0)
    A = torch.randn(4, 4, generator=generator, dtype=torch.float64)
    z = torch.randn(4, generator=generator, dtype=torch.float64)
    estimator = RecursiveEstimator()
    estimator.reset(A @ z)
    for _ in range(5):
        z_new = z + torch.randn(4, generator=generator, dtype=torch.float64)
        noise = torch.randn(4, generator=generator, dtype=torch.float64)
        # The same per-batch offset at both points cancels in the difference.
        estimator.update(A @ z_new + noise, A @ z + noise)
        z = z_new
    torch.testing.assert_close(estimator.direction, A @ z)


def test_recursive_estimator_momentum_one_is_sgd_and_first_call_is_the_value():
    estimator = RecursiveEstimator()
    first = torch.tensor([1.0, 2.0])
    assert estimator.update(first, torch.tensor([9.0, 9.0]), 0.3) is first
    value = torch.tensor([5.0, -1.0])
    torch.testing.assert_close(estimator.update(value, torch.tensor([7.0, 7.0]), 1.0), value)
    # STORM: d = g(z_k) + (1 - a)(d_{k-1} - g(z_{k-1})).
    previous_direction = estimator.direction
    new, old = torch.tensor([2.0, 2.0]), torch.tensor([1.0, 0.0])
    torch.testing.assert_close(estimator.update(new, old, 0.25),
                               new + 0.75 * (previous_direction - old))


@pytest.mark.parametrize("value", [0, -0.1, 1.5, True, "0.5"])
def test_check_fraction_rejects_values_outside_the_unit_interval(value):
    with pytest.raises(ValueError, match="momentum"):
        check_fraction("momentum", value)


def test_sampler_block_ids_follow_the_same_sequence_as_sample():
    one_by_one = MinibatchSampler(10, 3, torch.Generator().manual_seed(4))
    chunked = MinibatchSampler(10, 3, torch.Generator().manual_seed(4))
    expected = [one_by_one.sample()[1] for _ in range(11)]
    # Chunks that cross epochs (4 blocks per epoch), then single draws.
    drawn = chunked.sample_block_ids(3).tolist() + chunked.sample_block_ids(6).tolist()
    drawn += [chunked.sample()[1] for _ in range(2)]
    assert drawn == expected
