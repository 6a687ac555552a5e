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


def check_fraction(name, value):
    """Raise ValueError naming ``name`` unless 0 < ``value`` <= 1 (a momentum
    weight or a fraction)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}.")


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
    ``sample_block_ids(n)`` returns the block numbers of the next ``n``
    mini-batches as one tensor on the generator's device, the same sequence
    as ``n`` calls of ``sample()``, for solvers that run a chunk of
    iterations in one call (no Python work per iteration).
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
        # The current epoch's block order, as a tensor and (made on demand,
        # which on CUDA waits for the device) as a list; the first draw
        # starts an epoch.
        self._order, self._order_list, self._position = None, None, self.n_batches

    def _start_epoch_if_done(self):
        if self._position == self.n_batches:
            self._order = torch.randperm(self.n_batches, generator=self.generator,
                                         device=self.generator.device)
            self._order_list, self._position = None, 0

    def sample(self):
        self._start_epoch_if_done()
        if self._order_list is None:
            self._order_list = self._order.tolist()
        batch_id = self._order_list[self._position]
        self._position += 1
        return self.batches[batch_id], batch_id

    def sample_block_ids(self, n_batches):
        pieces = []
        while n_batches > 0:
            self._start_epoch_if_done()
            taken = min(n_batches, self.n_batches - self._position)
            pieces.append(self._order[self._position:self._position + taken])
            self._position += taken
            n_batches -= taken
        if not pieces:  # SRBA's chunks of full passes draw none
            return torch.zeros(0, dtype=torch.int64, device=self.generator.device)
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces)
