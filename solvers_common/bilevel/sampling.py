"""Mini-batches of sample indices, drawn from a seeded ``torch.Generator``.

The samples are split once into ``n_batches`` contiguous blocks of nearly
equal sizes (they differ by at most one); each epoch visits the blocks in a
fresh random order (random reshuffling). Contiguous blocks are slices, so a
mini-batch of a tensor is a view, not a copy; the datasets shuffle their
samples once so that contiguous blocks are random subsets. Fixed blocks also
give the variance-reduction tables of SABA one row per block.
"""
import torch


def check_positive(name, value, integer=False):
    """Raise ValueError naming ``name`` unless ``value`` is a positive number
    (a positive integer when ``integer``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    if integer and int(value) != value:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {value!r}.")


class MinibatchSampler:
    """Random mini-batches of ``range(n_samples)``.

    Parameters
    ----------
    n_samples : int
    batch_size : int
        At most ``n_samples``.
    generator : torch.Generator
        Source of the random block order (any device; draws happen on the
        CPU side of the generator's device, once per epoch).

    ``sample()`` returns ``(batch, batch_id)``: a slice and its block number;
    ``weights[batch_id]`` is the block's share of the samples.
    """

    def __init__(self, n_samples, batch_size, generator):
        check_positive("batch_size", batch_size, integer=True)
        if batch_size > n_samples:
            raise ValueError(f"batch_size={batch_size} is larger than the data "
                             f"({n_samples} samples); accepted: 1 to {n_samples}.")
        self.n_samples, self.batch_size = int(n_samples), int(batch_size)
        self.n_batches = -(-self.n_samples // self.batch_size)
        bounds = torch.linspace(0, self.n_samples, self.n_batches + 1).round().long().tolist()
        self.batches = [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]
        self.weights = [(stop - start) / self.n_samples for start, stop in zip(bounds[:-1],
                                                                                bounds[1:])]
        self.generator = generator
        self._order, self._position = [], 0

    def sample(self):
        if self._position == len(self._order):
            self._order = torch.randperm(self.n_batches, generator=self.generator,
                                         device=self.generator.device).tolist()
            self._position = 0
        batch_id = self._order[self._position]
        self._position += 1
        return self.batches[batch_id], batch_id
